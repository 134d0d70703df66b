"""No non-finite model is trained on, saved, resumed from or exported; a damaged training
checkpoint or metrics file is one plain error (or, for a torn last metrics line, tolerated)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from piti_cli.errors import CheckpointError, PitiError
from piti_cli.train.loop import train
from piti_cli.train.metrics import read_metrics, truncate_metrics
from piti_cli.train.state import export_ema, latest_checkpoint, load_state, save_state
from tests.reliability.conftest import check_refused, invoke
from tests.train.conftest import base_config, glide_base, scenes_pack  # noqa: F401 (fixtures)


def test_a_diverging_run_stops_naming_the_step_and_saves_nothing_non_finite(scenes_pack, glide_base, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(PitiError, match=r"step \d+: \w+ is (nan|inf)"):
        train(base_config(scenes_pack, glide_base, run, lr=1e30, max_steps=6, save_every=1, timestep_sampler="uniform"))
    for path in (run / "checkpoints").glob("*.pt"):
        state = load_state(path)  # refuses non-finite tensors itself
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    for row in read_metrics(run / "metrics.jsonl"):
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    json.loads("[" + ",".join((run / "metrics.jsonl").read_text().splitlines()) + "]")  # strict JSON lines


def _nan_checkpoint(scenes_pack, glide_base, tmp_path, part: str):
    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=1))
    path = latest_checkpoint(run)
    state = torch.load(path, weights_only=True)
    tensors = state["model"] if part == "model" else next(iter(state["ema"].values()))
    name = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_state(path, {k: v for k, v in state.items() if k != "format"})
    return run, path


@pytest.mark.parametrize("part", ["model", "ema"])
def test_non_finite_checkpoints_are_neither_resumed_nor_exported(scenes_pack, glide_base, tmp_path, part):
    run, path = _nan_checkpoint(scenes_pack, glide_base, tmp_path, part)
    with pytest.raises(CheckpointError, match="not finite"):
        train(base_config(scenes_pack, glide_base, run, max_steps=2), resume=True)
    check_refused(invoke("finetune", "export", run, tmp_path / "out.safetensors"), [str(path), "not finite"], code=1)
    assert not (tmp_path / "out.safetensors").exists()


def test_a_checkpoint_without_its_ema_is_one_line(scenes_pack, glide_base, tmp_path):
    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=1))
    path = latest_checkpoint(run)
    state = torch.load(path, weights_only=True)
    del state["ema"]
    save_state(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="missing ema"):
        export_ema(run, tmp_path / "x.safetensors")


def test_a_checkpoint_of_another_architecture_is_one_line(scenes_pack, glide_base, tmp_path):
    run = tmp_path / "run"
    train(base_config(scenes_pack, glide_base, run, max_steps=1))
    path = latest_checkpoint(run)
    state = torch.load(path, weights_only=True)
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("encoder.")}
    save_state(path, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="does not fit"):
        train(base_config(scenes_pack, glide_base, run, max_steps=2), resume=True)


def test_a_torn_last_metrics_line_is_tolerated(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]
    truncate_metrics(path, 2)
    assert path.read_text() == '{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n'


def test_export_of_what_is_no_training_checkpoint_is_one_line(tmp_path):
    """Text, a missing path and a picture: each one plain line naming the file (exit 1, not a
    bug report), and no output file."""
    from tests.reliability.conftest import check_refused, colour_mask, invoke

    (tmp_path / "fake.pth").write_text("hello\n")
    cases = {tmp_path / "fake.pth": "not a torch checkpoint", tmp_path / "nothere": "no such run folder",
             colour_mask(tmp_path / "m.png"): "not a torch checkpoint"}
    for source, words in cases.items():
        check_refused(invoke("finetune", "export", source, tmp_path / "out.pt"), [str(source), words], 1)
    assert not (tmp_path / "out.pt").exists()
