"""The training loop on tiny models. (The loss-second-moment sampler's weights are checked
against their definition in tests/diffusion/test_timestep_samplers.py; here we check the loop
feeds it every sample's loss and restores it on resume.)"""

import json

import pytest
import torch

from piti_cli.errors import InputError
from piti_cli.train.loop import train
from piti_cli.train.state import initial_model, latest_checkpoint, load_state
from tests.train.conftest import base_config


def load(run_dir):
    return load_state(latest_checkpoint(run_dir))


def test_stage_encoder_moves_only_the_encoder(scenes_pack, glide_base, tmp_path):
    init, _ = initial_model(str(glide_base), preset="glide-base-tiny", input_kind="mask", glide=None)
    before = {k: v.clone() for k, v in init.state_dict().items()}
    train(base_config(scenes_pack, glide_base, tmp_path / "run", stage="encoder", max_steps=2))
    after = load(tmp_path / "run")["model"]
    decoder = [k for k in before if k.startswith("decoder.")]
    encoder = [k for k in before if k.startswith("encoder.")]
    assert decoder and encoder
    assert all(torch.equal(before[k], after[k]) for k in decoder)
    weights = [k for k in encoder if before[k].is_floating_point() and before[k].numel() > 1]
    moved = [k for k in weights if not torch.equal(before[k], after[k])]
    assert len(moved) == len(weights), set(weights) - set(moved)


def test_resume_is_exact(scenes_pack, glide_base, tmp_path):
    common = dict(max_steps=4, save_every=2, batch_size=2, timestep_sampler="loss-second-moment", ema_rates=(0.9, 0.5))
    full = train(base_config(scenes_pack, glide_base, tmp_path / "full", **common))
    assert full.step == 4
    train(base_config(scenes_pack, glide_base, tmp_path / "cut", **{**common, "max_steps": 2}))
    resumed = train(base_config(scenes_pack, glide_base, tmp_path / "cut", **common), resume=True)
    assert resumed.step == 4
    a, b = load(tmp_path / "full"), load(tmp_path / "cut")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for rate in a["ema"]:
        for k in a["ema"][rate]:
            assert torch.equal(a["ema"][rate][k], b["ema"][rate][k]), (rate, k)
    for key in ("loss_history", "loss_counts"):
        assert torch.equal(a["timestep_sampler"][key], b["timestep_sampler"][key])
    assert int(a["timestep_sampler"]["loss_counts"].sum()) == 4 * 2  # every sample's loss recorded
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_gradient_accumulation_equals_the_whole_batch(scenes_pack, glide_base, tmp_path):
    train(base_config(scenes_pack, glide_base, tmp_path / "whole", max_steps=1, timestep_sampler="uniform"))
    train(base_config(scenes_pack, glide_base, tmp_path / "acc", max_steps=1, microbatch=1, timestep_sampler="uniform"))
    # compare the gradients (Adam's first moment after one step is 0.1·g): Adam's first step is
    # ±lr for any gradient, so weights would amplify summation-order noise in near-zero gradients
    a, b = load(tmp_path / "whole")["optimizer"]["state"], load(tmp_path / "acc")["optimizer"]["state"]
    scale = max(float(s["exp_avg"].abs().max()) for s in a.values())
    for i in a:
        torch.testing.assert_close(a[i]["exp_avg"], b[i]["exp_avg"], rtol=1e-3, atol=1e-5 * scale)


def test_existing_run_needs_resume(scenes_pack, glide_base, tmp_path):
    train(base_config(scenes_pack, glide_base, tmp_path / "run", max_steps=1))
    with pytest.raises(InputError, match="--resume"):
        train(base_config(scenes_pack, glide_base, tmp_path / "run", max_steps=2))
