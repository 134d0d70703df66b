import os
from pathlib import Path

import pytest
import torch

from piti_cli.checkpoints.convert import load_model
from piti_cli.checkpoints.io import read_checkpoint, save_checkpoint
from piti_cli.errors import CheckpointError
from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model


def _official_file(tmp_path: Path, preset: str, name="model.pt", prefix="", seed=0) -> dict:
    torch.manual_seed(seed)
    state = {prefix + k: torch.randn_like(v) for k, v in build_model(PRESETS[preset]).state_dict().items()}
    torch.save(state, tmp_path / name)  # a plain state dict, as the official files are
    return state


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_layout_file_loads_strictly_and_round_trips(tmp_path, prefix):
    state = _official_file(tmp_path, "piti-base-mask-tiny", prefix=prefix)
    model, config = load_model(tmp_path / "model.pt")
    assert config.name == "piti-base-mask-tiny"
    loaded = model.state_dict()
    assert set(loaded) == {k.removeprefix(prefix) for k in state}
    for k, v in state.items():
        assert torch.equal(loaded[k.removeprefix(prefix)], v)
    # Write it back in the official layout and compare bytes of every tensor.
    save_checkpoint(tmp_path / "again.pt", loaded)
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert all(torch.equal(again[k.removeprefix(prefix)], v) for k, v in state.items())


def test_safetensors_with_stored_config(tmp_path):
    config = PRESETS["piti-upsample-depth-normal-tiny"]
    state = {k: torch.randn_like(v) for k, v in build_model(config).state_dict().items()}
    save_checkpoint(tmp_path / "m.safetensors", state, config)
    ck = read_checkpoint(tmp_path / "m.safetensors")
    assert ck.config == config
    model, cfg = load_model(tmp_path / "m.safetensors")
    assert cfg == config and torch.equal(model.state_dict()["encoder.cls_token"], state["encoder.cls_token"])


def test_wrong_preset_gets_one_line_naming_file_and_closest(tmp_path):
    _official_file(tmp_path, "piti-base-sketch-tiny")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "model.pt", preset="piti-base-mask-tiny")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "model.pt") in message
    assert "most resembles piti-base-sketch-tiny" in message
    assert "1 mis-shaped" in message  # only the stem's first conv differs (3 vs 1 channels)


def test_unknown_layout_reports_counts(tmp_path):
    state = _official_file(tmp_path, "piti-base-mask-tiny")
    del state["decoder.out.2.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match=r"most resembles piti-base-mask-tiny \(1 missing, 1 unexpected, 0 mis-shaped"):
        load_model(tmp_path / "model.pt")


def test_truncated_file_is_refused(tmp_path):
    _official_file(tmp_path, "piti-base-mask-tiny")
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "cut.safetensors")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.zeros(1), "x": _Payload(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickle code execution"):
        read_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_encoder_only_stage1_file_needs_and_uses_glide(tmp_path):
    glide = _official_file(tmp_path, "glide-base-tiny", name="glide.pt")
    torch.manual_seed(3)
    encoder_state = {k: torch.randn_like(v) for k, v in build_model(PRESETS["piti-base-sketch-tiny"]).state_dict().items()
                     if k.startswith("encoder.")}
    torch.save(encoder_state, tmp_path / "stage1.pt")
    with pytest.raises(CheckpointError, match="only the condition encoder"):
        load_model(tmp_path / "stage1.pt")
    model, config = load_model(tmp_path / "stage1.pt", glide=tmp_path / "glide.pt")
    assert config.input_kind == "sketch"
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in encoder_state.items())
    assert torch.equal(state["decoder.out.2.weight"], glide["out.2.weight"])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty file"):
        read_checkpoint(tmp_path / "empty.pt")


def test_safetensors_bytes_do_not_depend_on_the_writing_process(tmp_path):
    # safetensors keeps metadata in a hash map whose order differs per process; piti sorts it,
    # so the same weights always hash the same (the manifest's sha256 of exported files).
    import subprocess
    import sys

    script = ("import sys, torch; from piti_cli.checkpoints.io import save_checkpoint; "
              "save_checkpoint(sys.argv[1], {'w': torch.arange(6.0)}, "
              "extra={k: i for i, k in enumerate('abcdefgh')})")
    outs = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for out in outs:
        subprocess.run([sys.executable, "-c", script, str(out)], check=True)
    assert outs[0].read_bytes() == outs[1].read_bytes() == outs[2].read_bytes()
    ck = read_checkpoint(outs[0])
    assert ck.extra == {k: str(i) for i, k in enumerate("abcdefgh")}
    assert torch.equal(ck.state_dict["w"], torch.arange(6.0))
