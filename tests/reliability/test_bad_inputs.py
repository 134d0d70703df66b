"""Broken inputs of every kind (pictures, label maps, depth arrays, checkpoints, packs), over
the commands that read each kind: exit code, no traceback, one line naming the file, and
nothing that looks finished written for it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reliability import bad_files as B
from tests.metrics.conftest import fake_extractors  # noqa: F401  (fixture)
from tests.reliability.conftest import check_refused, colour_mask, invoke, nothing_finished, save


def _one_warning_for(result, bad_path, good_output, bad_output):
    """Batch policy: the good input was written, the bad one skipped (one line), exit 1."""
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if bad_path.name in line]
    assert len(lines) == 1 and lines[0].startswith("warning: skipped"), result.output
    assert "wrote 1 " in result.output and ", 1 skipped" in result.output, result.output
    assert good_output.is_file() and not bad_output.exists()


@pytest.mark.parametrize("case", B.IMAGE_CASES)
def test_sample_refuses_a_broken_picture(case, tmp_path, mask_base):
    bad = B.bad_image(tmp_path / "in", case)
    result = invoke("sample", "--cond", bad, "--base", mask_base, "--base-only", "--steps", "1", "--out", tmp_path / "out")
    check_refused(result, str(bad), code=1)
    assert not (tmp_path / "out").exists()


def _folder_with_bad_pictures(folder):
    colour_mask(folder / "good.png")
    bad = [B.bad_image(folder, case, name=case) for case in B.IMAGE_CASES]
    bad.append(save(np.zeros((32, 32), np.uint8), folder / "grey.png"))
    bad.append(save(np.full((32, 32, 3), 7, np.uint8), folder / "off-palette.png"))
    return bad


def test_sample_strict_lists_every_broken_picture_of_a_folder_before_sampling(tmp_path, mask_base):
    bad = _folder_with_bad_pictures(tmp_path / "in")
    result = invoke("sample", "--cond", tmp_path / "in", "--base", mask_base, "--base-only", "--steps", "1",
                    "--out", tmp_path / "out", "--strict")
    line = check_refused(result, [p.name for p in bad], code=1)
    assert "7 of 8 inputs are unusable" in line
    assert not (tmp_path / "out").exists()


def test_sample_over_a_folder_samples_the_good_and_lists_the_skipped(tmp_path, mask_base):
    bad = _folder_with_bad_pictures(tmp_path / "in")
    out = tmp_path / "out"
    result = invoke("sample", "--cond", tmp_path / "in", "--base", mask_base, "--base-only", "--steps", "1", "--out", out)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    for path in bad:
        assert len([line for line in result.output.splitlines() if f"skipped {path}:" in line]) == 1, path
    assert "wrote 1 image to" in result.output
    assert sorted(p.name for p in out.glob("*.png")) == ["good.png"]


@pytest.mark.parametrize("command", ["hed", "degrade"])
@pytest.mark.parametrize("case", B.IMAGE_CASES)
def test_prep_skips_a_broken_picture_and_fails(command, case, tmp_path):
    save(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8), tmp_path / "in" / "good.png")
    bad = B.bad_image(tmp_path / "in", case)
    extra = ["--backend", "gradient"] if command == "hed" else ["--sf", "1"]
    result = invoke("prep", command, tmp_path / "in", tmp_path / "out", *extra)
    _one_warning_for(result, bad, tmp_path / "out" / "good.png", tmp_path / "out" / "bad.png")


def test_prep_strict_stops_at_the_first_broken_picture(tmp_path):
    bad = B.bad_image(tmp_path / "in", "truncated", name="a")
    save(np.zeros((40, 40, 3), np.uint8), tmp_path / "in" / "b.png")
    result = invoke("prep", "degrade", tmp_path / "in", tmp_path / "out", "--sf", "1", "--strict")
    check_refused(result, str(bad), code=1)
    assert nothing_finished(tmp_path / "out")


@pytest.mark.parametrize("case", B.LABEL_CASES)
def test_prep_masks_skips_a_broken_label_map(case, tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 5], [181, 255]], np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "in").mkdir()
    (tmp_path / "good.png").rename(tmp_path / "in" / "good.png")
    bad = B.bad_label_map(tmp_path / "in", case)
    result = invoke("prep", "masks", tmp_path / "in", tmp_path / "out")
    _one_warning_for(result, bad, tmp_path / "out" / "good.png", tmp_path / "out" / bad.name)


@pytest.mark.parametrize("case", B.DEPTH_CASES)
def test_prep_depth_skips_a_broken_view(case, tmp_path):
    B.diode_view(tmp_path / "diode" / "scene" / "scan", "good")
    bad = B.diode_view(tmp_path / "diode" / "scene" / "scan", "bad", case)
    result = invoke("prep", "depth", tmp_path / "diode", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if "bad" in line.replace("good", "")]
    assert len(lines) == 1 and lines[0].startswith("warning: skipped") and str(bad) in lines[0], result.output
    assert (tmp_path / "out" / "scene" / "scan" / "good.png").is_file()
    assert not list((tmp_path / "out" / "scene" / "scan").glob("bad*"))


@pytest.mark.parametrize("case", B.DEPTH_CASES)
def test_prep_pack_diode_never_stores_a_broken_view(case, tmp_path):
    import h5py

    B.diode_view(tmp_path / "diode" / "val" / "indoors" / "scan", "good")
    bad = B.diode_view(tmp_path / "diode" / "val" / "indoors" / "scan", "bad", case)
    result = invoke("prep", "pack", "diode", tmp_path / "diode", tmp_path / "packs", "--split", "val")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert len([line for line in result.output.splitlines() if "skipped" in line and "bad" in line]) == 1
    with h5py.File(tmp_path / "packs" / "diode_val.h5") as f:
        ids = [s.decode() for s in f["source_ids"][()]]
        assert ids == ["indoors/scan/good"] and np.isfinite(f["conditions/depth"][()]).all()
    strict = invoke("prep", "pack", "diode", tmp_path / "diode", tmp_path / "strict", "--split", "val", "--strict")
    check_refused(strict, bad.name, code=1)
    assert nothing_finished(tmp_path / "strict")


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory, mask_base):
    folder = tmp_path_factory.mktemp("broken_ck")
    return {case: B.bad_checkpoint(folder, case, mask_base) for case in B.CHECKPOINT_CASES}


@pytest.mark.parametrize("case", B.CHECKPOINT_CASES)
def test_sample_refuses_a_broken_checkpoint(case, broken_checkpoints, tmp_path):
    path = broken_checkpoints[case]
    cond = colour_mask(tmp_path / "c.png")
    result = invoke("sample", "--cond", cond, "--base", path, "--base-only", "--steps", "1", "--out", tmp_path / "out")
    line = check_refused(result, str(path), code=1)
    if "nan" in case or "inf" in case:
        assert "NaN or infinite" in line
    if "code" in case:
        assert "code execution" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", [c for c in B.CHECKPOINT_CASES if "nan" not in c and "inf" not in c])
def test_weights_inspect_refuses_a_broken_checkpoint(case, broken_checkpoints):
    path = broken_checkpoints[case]
    check_refused(invoke("weights", "inspect", path), str(path), code=1)


@pytest.mark.parametrize("case", ["nan-tensor.safetensors", "inf-tensor.pt"])
def test_weights_inspect_never_calls_a_nan_file_an_exact_match(case, broken_checkpoints):
    result = invoke("weights", "inspect", broken_checkpoints[case], env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "exact match" not in result.output and "unusable" in result.output
    assert [line for line in result.output.splitlines() if line.startswith("NaN/Inf")] != []


@pytest.fixture(scope="module")
def mask_pack(tmp_path_factory):
    return B.write_mask_pack(tmp_path_factory.mktemp("pack") / "masks.h5", rows=10)


@pytest.mark.parametrize("command", ["sample", "finetune"])
@pytest.mark.parametrize("case", B.PACK_CASES)
def test_a_broken_pack_is_refused(command, case, mask_pack, mask_base, tmp_path):
    path = B.bad_pack(tmp_path, case, mask_pack)
    out = tmp_path / "out"
    if command == "sample":
        args = ["sample", "--cond", path, "--base", mask_base, "--base-only", "--steps", "1", "--out", out]
    else:
        args = ["finetune", "--data", path, "--run-dir", out, "--init", mask_base, "--stage", "joint",
                "--batch-size", "2", "--device", "cpu", "--max-steps", "1"]
    check_refused(invoke(*args), str(path), code=1)
    assert not out.exists()


@pytest.mark.parametrize("rows", ["5-2", "100-200", "3-3", "8-11", "x-2", "-1"])
def test_sample_refuses_a_pack_range_outside_the_pack(rows, mask_pack, mask_base, tmp_path):
    result = invoke("sample", "--cond", f"{mask_pack}:{rows}", "--base", mask_base, "--base-only", "--steps", "1",
                    "--out", tmp_path / "out")
    check_refused(result, str(mask_pack), code=1)
    assert not (tmp_path / "out").exists()


def test_depth_normal_condition_with_nan_is_refused(tmp_path):
    from piti_cli.errors import InputError
    from piti_cli.pipeline.inputs import load_conditions

    arr = np.zeros((6, 16, 16), np.float32)
    arr[2, 3, 3] = np.nan
    np.save(tmp_path / "c.npy", arr)
    with pytest.raises(InputError, match="c.npy.*non-finite"):
        load_conditions(tmp_path / "c.npy", "depth-normal")


@pytest.mark.parametrize("case", ["bomb-header", "truncated", "random-bytes"])
def test_eval_fid_refuses_a_broken_picture(case, tmp_path, monkeypatch, fake_extractors):
    monkeypatch.setenv("PITI_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for name in ("gen", "ref"):
        for i in range(3):
            save(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8), tmp_path / name / f"{i}.png")
    bad = B.bad_image(tmp_path / "gen", case)
    result = invoke("eval", "fid", tmp_path / "gen", "--ref", tmp_path / "ref", "--no-cache")
    check_refused(result, str(bad), code=1)


@pytest.mark.parametrize("case", ["random-bytes.pt", "no-tensors.pt", "inf-tensor.pt"])
def test_weights_verify_checks_a_file_without_checksum_loads_with_the_preset_layout(case, broken_checkpoints, tmp_path):
    from piti_cli.checkpoints.registry import get_entry

    entry = get_entry("glide-base")
    assert entry.sha256 is None and entry.size is None  # nothing to compare: the layout is the check
    (tmp_path / entry.filename).write_bytes(broken_checkpoints[case].read_bytes())
    result = invoke("weights", "verify", "glide-base", "--weights-dir", tmp_path, env={"COLUMNS": "300"})
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "broken" in result.output and "unverified" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and entry.filename in errors[0]


@pytest.mark.parametrize("name", ["mps", "tpu", "xla", "cuda:x", "cpu:1", "vulkan"])
def test_resolve_device_names_the_choices(name):
    from piti_cli.errors import PitiError
    from piti_cli.runtime import resolve_device

    with pytest.raises(PitiError, match=f"--device {name}: unknown device; choose one of auto, cpu, cuda, cuda:N"):
        resolve_device(name)


@pytest.mark.parametrize("case", ["random-bytes.pt", "zip-without-tensors.pt", "pickle-runs-code.pt",
                                  "wrapper-bad-config.pt", "nan-tensor.safetensors"])
def test_finetune_refuses_a_broken_init_checkpoint(case, broken_checkpoints, mask_pack, tmp_path):
    path = broken_checkpoints[case]
    result = invoke("finetune", "--data", mask_pack, "--run-dir", tmp_path / "run", "--init", path, "--stage", "joint",
                    "--batch-size", "2", "--device", "cpu", "--max-steps", "1")
    check_refused(result, str(path), code=1)
    assert not (tmp_path / "run").exists()
