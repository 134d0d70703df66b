"""The Python API (`piti_cli.api`) against `piti sample` itself: the same seed and settings give
byte-identical pictures and the same settings records; bad input raises piti's own errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from piti_cli import PitiPipeline
from piti_cli.api import Cancelled
from piti_cli.data.images import png_text, to_uint8
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


def test_step_callback_and_cancel(pipe):
    seen = []
    out = pipe(EXAMPLES[0], callback=seen.append, **SETTINGS)
    assert [(i.stage, i.step, i.total) for i in seen] == [("base", k, 4) for k in range(1, 5)] + [
        ("upsampler", k, 3) for k in range(1, 4)]
    assert [i.t for i in seen[:4]] == sorted((i.t for i in seen[:4]), reverse=True) and seen[3].t < seen[0].t
    last_base = seen[3]
    # the base's last state is the 64-px picture the call returns (DDIM's last step returns x̂0)
    assert np.array_equal(to_uint8(last_base.x[0]), np.asarray(out.low_res[0]))
    assert torch.equal(last_base.x, last_base.x0)
    assert last_base.preview()[0].size == (64, 64)
    with pytest.raises(Cancelled):
        pipe(EXAMPLES[0], cancel=lambda: True, **SETTINGS)


def test_edit_makes_the_bytes_piti_edit_writes(pipe, tmp_path):
    result = invoke("edit", "--cond", EXAMPLES[0], "--edited", EXAMPLES[1], "--out", tmp_path, "--steps", "ddim4",
                    "--guidance", "2", "--seed", "3", "--precision", "fp32", "--device", "cpu")
    assert result.exit_code == 0, result.output
    steps = []
    pictures = pipe.edit(EXAMPLES[0], Image.open(EXAMPLES[1]), seed=3, guidance_scale=2.0, num_inference_steps="ddim4",
                         callback=lambda info: steps.append(info.step))
    # one count: both 4-step DDIM runs, then the upsampler's 25 steps for each picture, the two
    # pictures in lock step (blended DDIM: two network steps at a time)
    assert sorted(pictures) == ["edited", "original"] and steps == list(range(2, 2 * 4 + 2 * 25 + 1, 2))
    for name, picture in pictures.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB")), np.asarray(picture)), name


def test_prep_helpers_are_the_prep_commands(tmp_path):
    from piti_cli.api import colour_mask, sketch_from_photo
    from piti_cli.data.palettes import coco_stuff_palette, voc_colormap

    labels = np.array([[0, 5], [181, 255]], dtype=np.uint8)
    cmap = voc_colormap(256)  # COCO-Stuff id c is colour-map entry c + 1, unlabeled black
    assert np.array_equal(np.asarray(colour_mask(labels)), np.stack([[cmap[1], cmap[6]], [cmap[182], [0, 0, 0]]]))
    assert np.array_equal(coco_stuff_palette()[labels], np.asarray(colour_mask(labels)))
    photo = (np.random.default_rng(0).random((80, 120, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    result = invoke("prep", "hed", tmp_path / "photo.png", tmp_path / "sketches", "--backend", "gradient")
    assert result.exit_code == 0, result.output
    made = sketch_from_photo(tmp_path / "photo.png", backend="gradient")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sketches" / "photo.png")), np.asarray(made))
    with pytest.raises(InputError, match="photo"):
        sketch_from_photo(np.zeros((4, 4), np.float32), backend="gradient")


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
    code = code.replace('edits["edited"].save("edited.png")', f'edits["edited"].save({str(tmp_path / "edited.png")!r})')
    assert code.count(str(tmp_path)) == 2  # the block still saves where the test can look
    exec(compile(code, "README.md", "exec"), {})
    assert Image.open(tmp_path / "scene_0.png").size == Image.open(tmp_path / "edited.png").size == (256, 256)
