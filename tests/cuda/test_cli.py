"""The commands on CUDA, through the real CLI: `piti sample` with fp16/bf16 on the example
masks, `piti finetune` (+ `--resume`) and `piti upsample-train` with fp16 loss scaling and
bf16 autocast on a tiny scene pack, and full-size files in the official layout."""

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.cli.main import app
from piti_cli.models.config import PRESETS
from piti_cli.models.piti import build_model
from tests.cuda.conftest import CUDA, PRECISIONS
from tests.train.conftest import glide_base, glide_upsample, scenes_pack  # noqa: F401  (fixtures)

pytestmark = CUDA
runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mask"


def piti(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def logged(run, key="loss"):
    return [json.loads(line)[key] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("precision", PRECISIONS[1:])
def test_sample_on_cuda(tmp_path, precision):
    piti("sample", "--cond", EXAMPLES, "--out", tmp_path, "--device", "cuda", "--precision", precision)
    assert len(list(tmp_path.glob("*.png"))) == len(list(EXAMPLES.glob("*.png")))


@pytest.mark.parametrize("precision", PRECISIONS[1:])
def test_finetune_and_resume_on_cuda(tmp_path, scenes_pack, glide_base, precision):
    run = tmp_path / "run"
    common = ["--run-dir", run, "--device", "cuda", "--precision", precision]
    piti("finetune", "--data", scenes_pack, *common, "--stage", "joint", "--init", glide_base, "--preset",
         "glide-base-tiny", "--batch-size", 8, "--lr", 1e-4, "--max-steps", 20, "--save-every", 10, "--log-every", 1)
    piti("finetune", *common, "--resume", "--max-steps", 30)
    losses = logged(run)
    assert len(losses) == 30 and all(math.isfinite(v) and abs(v) < 1e3 for v in losses)


def test_upsample_train_on_cuda(tmp_path, scenes_pack, glide_upsample):
    run = tmp_path / "up"
    piti("upsample-train", "--data", scenes_pack, "--run-dir", run, "--device", "cuda", "--precision", "fp16",
         "--init", glide_upsample, "--preset", "glide-upsample-tiny", "--perceptual", "none", "--aux-start", 2,
         "--batch-size", 4, "--max-steps", 6, "--save-every", 3, "--log-every", 1)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 6 and all(math.isfinite(last[k]) for k in ("loss", "adv", "d_loss"))


@pytest.mark.slow
def test_full_size_official_files_sample_on_cuda(tmp_path):
    files = {}
    for role, preset in (("base", "piti-base-mask"), ("upsampler", "piti-upsample-mask")):
        with torch.device("cuda"):
            model = build_model(PRESETS[preset])
        files[role] = tmp_path / f"full_{role}.pt"
        save_checkpoint(files[role], {k: v.cpu() for k, v in model.state_dict().items()})
        del model
    out = tmp_path / "samples"
    piti("sample", "--cond", EXAMPLES, "--out", out, "--device", "cuda", "--precision", "fp16",
         "--base", files["base"], "--upsampler", files["upsampler"], "--batch-size", 4)
    assert len(list(out.glob("*.png"))) == len(list(EXAMPLES.glob("*.png")))
