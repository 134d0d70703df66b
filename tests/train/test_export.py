from dataclasses import replace

import pytest
import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.errors import InputError
from piti_cli.train.loop import train
from piti_cli.train.state import export_ema, latest_checkpoint, load_state, young_ema
from tests.train.conftest import base_config


def test_export_writes_the_ema_in_loadable_files(scenes_pack, glide_base, tmp_path):
    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=1, ema_rates=(0.5,)))
    ema = load_state(latest_checkpoint(run))["ema"]["0.5"]
    export_ema(run, tmp_path / "ema.safetensors")
    model, config = load_model(tmp_path / "ema.safetensors")  # config stored: tiny preset identified
    assert config.name == "piti-base-mask-tiny"
    export_ema(run, tmp_path / "ema.pt")  # official plain layout: a tiny one needs --preset
    plain = torch.load(tmp_path / "ema.pt", weights_only=True)
    assert set(plain) == set(ema) and "format" not in plain
    model_pt, _ = load_model(tmp_path / "ema.pt", preset="piti-base-mask-tiny")
    for k, v in ema.items():
        assert torch.equal(model.state_dict()[k], v) and torch.equal(model_pt.state_dict()[k], v)
    with pytest.raises(InputError):
        export_ema(run, tmp_path / "ema.bin")


def test_a_young_ema_is_named_on_export(scenes_pack, glide_base, tmp_path):
    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=2, ema_rates=(0.9,)))
    said = []
    export_ema(run, tmp_path / "ema.safetensors", warn=said.append)
    assert len(said) == 1 and "2 updates, fewer than 1/(1 − rate) = 10" in said[0] and "0.81" in said[0]  # 0.9²
    said.clear()
    export_ema(run, tmp_path / "raw.safetensors", raw=True, warn=said.append)
    assert said == []  # the trained weights: nothing to warn about
    assert young_ema(0.9, 10) is None and young_ema(0.9999, 9999) is not None


def test_raw_export_writes_the_trained_weights_not_the_ema(scenes_pack, glide_base, tmp_path):
    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=1, ema_rates=(0.9,)))
    state = load_state(latest_checkpoint(run))
    export_ema(run, tmp_path / "raw.safetensors", raw=True)
    model, _ = load_model(tmp_path / "raw.safetensors")
    differs = 0
    for k, v in state["model"].items():
        assert torch.equal(model.state_dict()[k], v)
        differs += not torch.equal(v, state["ema"]["0.9"][k])
    assert differs > 0  # after one step at rate 0.9 the EMA is still mostly the initial weights


def test_a_model_that_is_not_its_preset_exports_only_with_its_config(scenes_pack, glide_base, tmp_path):
    """A plain .pt keeps no config: a model with a departure from its preset (here the demo's
    grid position) would load as the preset, so .pt is refused and .safetensors named."""
    from piti_cli.models.config import ModelConfig
    from piti_cli.train.state import save_state

    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=1, ema_rates=(0.5,)))
    ckpt = latest_checkpoint(run)
    state = load_state(ckpt)
    config = ModelConfig.from_dict(state["model_config"])
    departed = replace(config, unet=replace(config.unet, grid_attention=True))
    save_state(ckpt, {k: v for k, v in state.items() if k != "format"} | {"model_config": departed.to_dict()})
    with pytest.raises(InputError, match=r"ema.pt: a .pt file keeps no config.*export to ema.safetensors"):
        export_ema(run, tmp_path / "ema.pt")
    assert not (tmp_path / "ema.pt").exists()
    export_ema(run, tmp_path / "ema.safetensors")
    _, loaded = load_model(tmp_path / "ema.safetensors")
    assert loaded.unet.grid_attention
