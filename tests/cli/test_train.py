"""`piti finetune` / `piti finetune export` end to end on a tiny pack (subprocesses and CliRunner)."""

import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from piti_cli.checkpoints.convert import load_model
from piti_cli.cli.main import app
from piti_cli.train.state import list_checkpoints
from tests.train.conftest import glide_base, glide_upsample, scenes_pack  # noqa: F401  (fixtures)


runner = CliRunner()


def piti(*args):
    return subprocess.run([sys.executable, "-m", "piti_cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_finetune_resume_and_export_from_the_cli(tmp_path, scenes_pack, glide_base):
    run = tmp_path / "run"
    common = ["--data", str(scenes_pack), "--run-dir", str(run), "--init", str(glide_base),
              "--preset", "glide-base-tiny", "--stage", "encoder", "--batch-size", "2", "--device", "cpu",
              "--save-every", "1", "--sample-every", "2", "--sample-steps", "ddim2", "--log-every", "1"]
    first = piti("finetune", *common, "--max-steps", "2")
    assert first.returncode == 0, first.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["stage"] == "encoder" and config["input_kind"] is None and config["lr"] == 3.5e-5  # resolved
    assert "adv_weight" not in config  # a base run records no upsampler-only field
    assert Image.open(run / "samples" / "step_0000002.png").size == (4 * 64, 3 * 64)
    again = piti("finetune", *common, "--max-steps", "3")
    assert again.returncode == 1 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = piti("finetune", "--run-dir", str(run), "--resume", "--max-steps", "3")
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    out = tmp_path / "model.safetensors"
    exported = piti("finetune", "export", str(run), str(out))
    assert exported.returncode == 0, exported.stderr
    model, config = load_model(out)
    assert config.name == "piti-base-mask-tiny"


def _metric_steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_resume_keeps_the_runs_own_length_unless_max_steps_is_given(tmp_path, scenes_pack, glide_base):
    """Through the real CLI in this process: `--resume` alone must not count the options left
    at their defaults (`--max-steps 1000`, `--batch-size 16`, ...) as given."""
    run = tmp_path / "run"
    first = runner.invoke(app, [
        "finetune", "--data", str(scenes_pack), "--run-dir", str(run), "--init", str(glide_base),
        "--preset", "glide-base-tiny", "--stage", "joint", "--batch-size", "2", "--device", "cpu",
        "--max-steps", "3", "--save-every", "1", "--log-every", "1", "--keep-checkpoints", "3"])
    assert first.exit_code == 0, first.output
    config = (run / "config.json").read_text()
    assert json.loads(config)["max_steps"] == 3 and _metric_steps(run) == [1, 2, 3]
    (run / "checkpoints" / "step_0000003.pt").unlink()  # as if killed after step 2

    resumed = runner.invoke(app, ["finetune", "--run-dir", str(run), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert [step for step, _ in list_checkpoints(run)] == [1, 2, 3]
    assert (run / "config.json").read_text() == config
    assert _metric_steps(run) == [1, 2, 3]  # step 3 logged once: the line after the checkpoint was dropped

    extended = runner.invoke(app, ["finetune", "--run-dir", str(run), "--resume", "--max-steps", "4"])
    assert extended.exit_code == 0, extended.output
    assert list_checkpoints(run)[-1][0] == 4 and _metric_steps(run) == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text()) == {**json.loads(config), "max_steps": 4}

    refused = runner.invoke(app, ["finetune", "--run-dir", str(run), "--resume", "--stage", "encoder"])
    assert refused.exit_code == 1 and "--stage encoder: cannot change when resuming" in refused.stderr
    assert list_checkpoints(run)[-1][0] == 4


def test_pretrain_then_convert_from_the_cli(tmp_path, glide_upsample):
    """`--stage pretrain` on a pack with captions, then the GLIDE → PITI step from its run
    folder with `--condition-size`; a pack without captions is one line, exit 1."""
    import numpy as np

    from piti_cli.data.scenes import caption, make_scenes, write_pack

    images, masks = make_scenes(4, seed=2)
    pack = write_pack(tmp_path / "c.h5", images, masks, captions=np.stack([caption(m) for m in masks]))
    common = ["--data", str(pack), "--batch-size", "2", "--device", "cpu", "--max-steps", "1",
              "--perceptual", "none", "--crop-size", "64"]
    pre = runner.invoke(app, ["upsample-train", *common, "--run-dir", str(tmp_path / "pre"), "--init",
                              str(glide_upsample), "--preset", "glide-upsample-tiny", "--stage", "pretrain",
                              "--no-flip", "--degradation", "bicubic"])
    assert pre.exit_code == 0, pre.output
    config = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert config["stage"] == "pretrain" and config["degradation"] == "bicubic"
    piti_run = runner.invoke(app, ["upsample-train", *common, "--run-dir", str(tmp_path / "up"), "--init",
                                   str(tmp_path / "pre"), "--input-kind", "mask", "--condition-size", "128"])
    assert piti_run.exit_code == 0, piti_run.output
    out = tmp_path / "up.safetensors"
    assert runner.invoke(app, ["finetune", "export", str(tmp_path / "up"), str(out)]).exit_code == 0
    _, cfg = load_model(out)
    assert cfg.family == "piti" and cfg.is_upsampler and cfg.encoder.input_size == 128
    plain = write_pack(tmp_path / "plain.h5", images, masks)
    refused = runner.invoke(app, ["upsample-train", *common, "--data", str(plain), "--run-dir", str(tmp_path / "x"),
                                  "--init", str(glide_upsample), "--preset", "glide-upsample-tiny",
                                  "--stage", "pretrain"])
    assert refused.exit_code == 1 and "no /captions" in refused.output and "Traceback" not in refused.output
