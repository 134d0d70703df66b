import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.pipeline.conftest import tiny_mask_models, tiny_sketch_base  # noqa: F401  (fixtures)


def piti(*args):
    return subprocess.run([sys.executable, "-m", "piti_cli", *args], capture_output=True, text=True, timeout=600)


def test_sample_end_to_end_and_same_seed_same_bytes(tmp_path, tiny_mask_models, reference_dir):
    base, up = tiny_mask_models
    masks = reference_dir / "piti_test_inputs" / "mask"
    common = ["--cond", str(masks), "--base", str(base), "--upsampler", str(up), "--limit", "2",
              "--steps", "4", "--upsample-steps", "2", "--guidance", "3", "--normalized", "--grid", "--save-64"]
    first = piti("sample", *common, "--out", str(tmp_path / "a"), "--seed", "7")
    assert first.returncode == 0, first.stderr
    second = piti("sample", *common, "--out", str(tmp_path / "b"), "--seed", "7")
    other = piti("sample", *common, "--out", str(tmp_path / "c"), "--seed", "8", "--limit", "1")
    names = sorted(p.stem for p in masks.glob("*.png"))[:2]
    for name in names:
        a = (tmp_path / "a" / f"{name}.png").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.png").read_bytes()
        assert Image.open(tmp_path / "a" / f"{name}.png").size == (256, 256)
        assert Image.open(tmp_path / "a" / "64" / f"{name}.png").size == (64, 64)
    assert (tmp_path / "a" / f"{names[0]}.png").read_bytes() != (tmp_path / "c" / f"{names[0]}.png").read_bytes()
    assert Image.open(tmp_path / "a" / "grid.png").size == (512, 512)  # condition | sample, one row each
    (sidecar,) = json.loads((tmp_path / "a" / "piti_sample.json").read_text())["runs"]
    assert sidecar["base"]["sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    assert sidecar["base"]["guidance"] == 3.0 and sidecar["base"]["normalized"] is True
    assert sidecar["upsampler"]["steps"] == 2 and sidecar["upsampler"]["init_scale"] == 0.997
    assert sidecar["written"] == [f"{n}.png" for n in names]


def test_base_only_with_ddim_and_dpmpp(tmp_path, tiny_sketch_base, reference_dir):
    sketch = sorted((reference_dir / "piti_test_inputs" / "sketch").glob("*.png"))[0]
    for sampler in ("ddim", "dpmpp-2m"):
        result = piti("sample", "--cond", str(sketch), "--base", str(tiny_sketch_base), "--base-only",
                      "--sampler", sampler, "--steps", "5", "-n", "2", "--out", str(tmp_path / sampler))
        assert result.returncode == 0, result.stderr
        outs = sorted(p.name for p in (tmp_path / sampler).glob("*.png"))
        assert outs == [f"{sketch.stem}_0.png", f"{sketch.stem}_1.png"]
        arr = np.asarray(Image.open(tmp_path / sampler / outs[0]))
        assert arr.shape == (64, 64, 3)


def test_bad_inputs_write_nothing(tmp_path, tiny_mask_models):
    base, up = tiny_mask_models
    folder = tmp_path / "in"
    folder.mkdir()
    img = np.zeros((64, 64, 3), np.uint8)
    Image.fromarray(img).save(folder / "a.png")
    img[3, 3] = (9, 9, 9)
    Image.fromarray(img).save(folder / "b.png")
    # --strict: an unusable file of the folder refuses the whole run (without it: skipped, listed)
    result = piti("sample", "--cond", str(folder), "--base", str(base), "--upsampler", str(up), "--out", str(tmp_path / "o"),
                  "--strict")
    assert result.returncode == 1
    assert "b.png: colour (9, 9, 9) is not in the coco-stuff palette" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    # A base model given as the upsampler is refused by name.
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
    result = piti("sample", "--cond", str(folder / "a.png"), "--base", str(base), "--upsampler", str(base), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "expected the upsampler" in result.stderr
    result = piti("sample", "--cond", str(folder / "a.png"), "--base", str(base), "--base-only", "--steps", "abc", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "'--steps'" in result.stderr and "abc" in result.stderr  # a value wrong on its own


def test_edit_from_the_cli(tmp_path, tiny_mask_models, reference_dir):
    base, up = tiny_mask_models
    masks = sorted((reference_dir / "piti_test_inputs" / "mask").glob("*.png"))
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((80, 80, 3)) * 255).astype(np.uint8)).save(photo)
    args = ["edit", "--cond", str(masks[0]), "--edited", str(masks[1]), "--image", str(photo),
            "--base", str(base), "--steps", "4", "--out", str(tmp_path / "e")]
    refused = piti(*args)  # a real base needs its upsampler, as in `piti sample`
    assert refused.returncode == 1 and "needs its own upsampler" in refused.stderr
    result = piti(*args, "--base-only")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["edited.png", "reconstruction.png"]
    for name in ("edited", "reconstruction"):
        assert Image.open(tmp_path / "e" / f"{name}.png").size == (64, 64)


def test_json_output_and_a_rerun_that_keeps_everything(tmp_path, tiny_mask_models):
    base, up = tiny_mask_models
    mask = tmp_path / "m.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(mask)
    args = ["sample", "--cond", str(mask), "--base", str(base), "--base-only", "--steps", "2", "--precision", "fp32",
            "--out", str(tmp_path / "o"), "--json"]
    first, second = piti(*args), piti(*args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["written"] == [str(tmp_path / "o" / "m.png")] and a["kept"] == [] and a["precision"] == "fp32"
    assert b["written"] == [] and b["kept"] == a["written"] and b["sidecar"] == str(tmp_path / "o" / "piti_sample.json")
    assert isinstance(a["seconds"], float)


def test_a_real_base_without_upsampler_is_one_line_naming_the_registry_id(tmp_path, tiny_mask_models):
    mask = tmp_path / "m.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(mask)
    result = piti("sample", "--cond", str(mask), "--base", str(tiny_mask_models[0]), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "add --upsampler piti-upsample-mask, or --base-only" in result.stderr


@pytest.mark.parametrize("bad", ["0", "1000", "-3", "half"])
def test_bad_upsample_start_is_one_clear_error(tmp_path, bad):
    result = piti("sample", "--cond", str(tmp_path), "--upsample-start", bad, "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "--upsample-start" in line]) == 1
    assert not (tmp_path / "o").exists()


def test_upsample_start_runs_fewer_steps_and_is_recorded(tmp_path, tiny_mask_models, reference_dir):
    base, up = tiny_mask_models
    mask = sorted((reference_dir / "piti_test_inputs" / "mask").glob("*.png"))[0]
    common = ["--cond", str(mask), "--base", str(base), "--upsampler", str(up), "--steps", "2", "--upsample-steps", "10"]
    started = piti("sample", *common, "--upsample-start", "450", "--out", str(tmp_path / "s"))
    assert started.returncode == 0, started.stderr
    record = json.loads((tmp_path / "s" / "piti_sample.json").read_text())["runs"][-1]
    assert record["upsampler"]["start"] == 450
    plain = piti("sample", *common, "--out", str(tmp_path / "p"))
    assert plain.returncode == 0, plain.stderr
    assert "start" not in json.loads((tmp_path / "p" / "piti_sample.json").read_text())["runs"][-1]["upsampler"]
    assert (tmp_path / "s" / mask.name).read_bytes() != (tmp_path / "p" / mask.name).read_bytes()
