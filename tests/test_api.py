"""The Python API (`piti_cli.api`) against `piti sample` itself: the same seed and settings give
byte-identical pictures and the same settings records; bad input raises piti's own errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from piti_cli import PitiPipeline
from piti_cli.api import Cancelled
from piti_cli.data.images import png_text
from piti_cli.errors import InputError
from tests.reliability.conftest import invoke

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples" / "mask").glob("*.png"))[:2]
SETTINGS = dict(guidance_scale=3.0, num_inference_steps=4, upsample_steps=3)


@pytest.fixture(scope="module")
def pipe():
    return PitiPipeline.from_pretrained(device="cpu", precision="fp32")


def test_the_api_and_the_cli_make_the_same_bytes(pipe, tmp_path):
    result = invoke("sample", "--cond", EXAMPLES[0].parent, "--out", tmp_path, "--limit", "2", "--guidance", "3",
                    "--steps", "4", "--upsample-steps", "3", "--precision", "fp32", "--device", "cpu", "--seed", "7",
                    "--num-samples", "2", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    out = pipe(EXAMPLES, seed=7, num_images_per_prompt=2, batch_size=3, **SETTINGS)
    names = [f"{p.stem}_{k}.png" for p in EXAMPLES for k in range(2)]
    assert len(out.images) == 4
    for name, image, record in zip(names, out.images, out.records):
        written = tmp_path / name
        assert np.array_equal(np.asarray(Image.open(written).convert("RGB")), np.asarray(image)), name
        assert json.loads(png_text(written)["piti"]) == json.loads(json.dumps(record))


def test_pil_images_and_arrays_are_read_as_files_are(pipe):
    picture = Image.open(EXAMPLES[0]).convert("RGB")
    a = pipe(EXAMPLES[0], seed=1, **SETTINGS)
    b = pipe(picture, seed=1, **SETTINGS)
    c = pipe(np.asarray(picture), seed=1, **SETTINGS)
    # the same condition; the names differ (file stem vs position), so the noise does too
    assert a.records[0]["condition_sha256"] == b.records[0]["condition_sha256"] == c.records[0]["condition_sha256"]
    assert np.array_equal(np.asarray(b.images[0]), np.asarray(c.images[0]))


def test_progress_callback_and_cancel(pipe):
    seen = []
    pipe(EXAMPLES[0], callback=lambda stage, step, total: seen.append((stage, step, total)), **SETTINGS)
    assert seen[0] == ("base", 1, 4) and seen[3] == ("base", 4, 4)
    assert seen[4] == ("upsampler", 1, 3) and seen[-1] == ("upsampler", 3, 3) and len(seen) == 7
    with pytest.raises(Cancelled):
        pipe(EXAMPLES[0], cancel=lambda: True, **SETTINGS)


def test_bad_input_raises_pitis_own_errors(pipe, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        pipe(tmp_path / "missing.png")
    with pytest.raises(InputError, match=r"\(3, 256, 256\)"):
        pipe(np.zeros((3, 64, 64), np.float32))
    with pytest.raises(InputError, match="two conditions"):
        pipe([EXAMPLES[0], EXAMPLES[0]])


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    block = text.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(REPO)
    code = block.replace('out.images[0].save("scene_0.png")', f'out.images[0].save({str(tmp_path / "scene_0.png")!r})')
    assert code != block  # the block still saves where the test can look
    exec(compile(code, "README.md", "exec"), {})
    assert Image.open(tmp_path / "scene_0.png").size == (256, 256)
