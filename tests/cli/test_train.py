"""`piti finetune` / `piti finetune export` end to end on a tiny pack (subprocesses)."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from piti_cli.checkpoints.convert import load_model
from tests.train.conftest import glide_base, scenes_pack  # noqa: F401  (fixtures)


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
    assert config["stage"] == "encoder" and config["input_kind"] is None and config["lr"] is None
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
