"""Names from inside files never leave `--out`, outputs never replace inputs, colliding names and
damaged records are refused before any work, and every reader of a model config validates it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piti_cli.checkpoints.io import save_checkpoint
from piti_cli.data.scenes import make_scenes, write_pack
from piti_cli.models.config import get_preset
from piti_cli.names import confined_name, is_confined
from tests.reliability.conftest import check_refused, colour_mask, invoke, nothing_finished, save


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab./\\:\x00\n\u202e ") + ["..", "/abs", "c:"]), max_size=12).map("".join))
def test_a_confined_name_stays_inside_the_folder(name):
    root = Path("/tmp/piti-root/out")
    if is_confined(name):
        joined = os.path.normpath(os.path.join(root, name))
        assert joined.startswith(str(root) + os.sep), name
        assert ".." not in name.split("/") and not any(ord(c) < 32 for c in name)
    else:
        with pytest.raises(Exception, match="would leave the output folder"):
            confined_name(name, "here")


@pytest.mark.parametrize("bad_id", ["/abs/NAME", "../../NAME", "a/../../b", "line\nbreak", ""])
def test_pack_ids_that_would_leave_out_are_refused(tmp_path, bad_id):
    images, masks = make_scenes(3, seed=1)
    pack = write_pack(tmp_path / "pack.h5", images, masks)
    with h5py.File(pack, "r+") as f:
        ids = [s.decode() for s in f["source_ids"][:]]
        ids[1] = bad_id
        del f["source_ids"]
        f.create_dataset("source_ids", data=np.array(ids, dtype=h5py.string_dtype()))
    out = tmp_path / "deep" / "a" / "b" / "out"
    result = invoke("sample", "--cond", f"{pack}:0-3", "--out", out, "--steps", "2", "--upsample-steps", "2")
    check_refused(result, [str(pack), "row 1"], code=1)
    assert nothing_finished(tmp_path / "deep")
    assert not Path("/abs/NAME.png").exists()


@pytest.mark.parametrize("command", ["masks", "degrade"])
@pytest.mark.parametrize("place", ["same", "inside", "around"])
def test_prep_never_writes_into_its_input(tmp_path, command, place):
    src = tmp_path / "in"
    picture = np.random.default_rng(0).integers(0, 180, (32, 32), dtype=np.uint8)
    first = save(picture if command == "masks" else np.stack([picture] * 3, -1), src / "a.png")
    before = first.read_bytes()
    out = {"same": src, "inside": src / "sub", "around": tmp_path}[place]
    result = invoke("prep", command, src, out, "--overwrite")
    check_refused(result, "must not be, contain or lie inside", code=1)
    assert first.read_bytes() == before and sorted(p.name for p in src.rglob("*")) == ["a.png"]


def test_prep_writes_beside_its_input_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save(np.zeros((8, 8), np.uint8) + 3, tmp_path / "labels" / "a.png")
    result = invoke("prep", "masks", "labels")
    assert result.exit_code == 0, result.output
    assert "writing to labels_masks" in result.output
    assert (tmp_path / "labels_masks" / "a.png").is_file()


def test_every_input_failing_ends_with_one_error_line(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        (src / f"{name}.png").write_bytes(b"not a picture")
    result = invoke("prep", "degrade", src, tmp_path / "out")
    line = check_refused(result, "all 2 inputs failed", code=1)
    assert "nothing written" in line


def test_prep_degrade_sf_has_a_range(tmp_path):
    save(np.zeros((8, 8, 3), np.uint8), tmp_path / "in" / "a.png")
    check_refused(invoke("prep", "degrade", tmp_path / "in", tmp_path / "out", "--sf", "1000"), "--sf", code=2)


def test_pack_refuses_two_files_for_one_sample(tmp_path):
    images, conds = tmp_path / "images", tmp_path / "sketches"
    picture = np.zeros((16, 16, 3), np.uint8)
    save(picture, images / "p0000.png")
    save(picture, images / "p0000.jpg")
    save(picture[..., 0], conds / "p0000.png")
    result = invoke("prep", "pack", "generic", images, tmp_path / "out", "--conditions", conds)
    check_refused(result, ["p0000.png", "p0000.jpg"], code=1)
    assert nothing_finished(tmp_path / "out")


def test_pack_whose_every_pair_failed_exits_1_and_leaves_no_pack(tmp_path):
    images, conds = tmp_path / "images", tmp_path / "sketches"
    for name in ("p0", "p1"):
        (images / f"{name}.png").parent.mkdir(parents=True, exist_ok=True)
        (images / f"{name}.png").write_bytes(b"broken")
        save(np.zeros((16, 16), np.uint8), conds / f"{name}.png")
    result = invoke("prep", "pack", "generic", images, tmp_path / "out", "--conditions", conds)
    check_refused(result, "all 2 pairs", code=1)
    assert nothing_finished(tmp_path / "out")


def test_a_damaged_run_record_is_refused_before_sampling(tmp_path):
    mask = colour_mask(tmp_path / "in" / "m.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "piti_sample.json").write_text(json.dumps({"format": "piti-sample-record", "runs": [], "pictures": []}))
    result = invoke("sample", "--cond", mask, "--out", out, "--steps", "2", "--upsample-steps", "2")
    check_refused(result, "piti_sample.json", code=1)
    assert sorted(p.name for p in out.iterdir()) == ["piti_sample.json"]


@pytest.mark.parametrize("field,value", [("diffusion.schedule", "bogus"), ("unet.norm_groups", 7),
                                         ("diffusion.steps", 0), ("encoder.heads", 3)])
def test_an_invalid_stored_config_is_refused_by_every_reader(tmp_path, field, value):
    from piti_cli.models.piti import build_model

    config = get_preset("piti-base-mask-tiny")
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, build_model(config).state_dict(), config)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    stored = json.loads(meta["piti_config"])
    part, key = field.split(".")
    stored[part][key] = value
    save_file(tensors, str(path), metadata={**meta, "piti_config": json.dumps(stored)})
    check_refused(invoke("weights", "inspect", path), str(path), code=1)
    check_refused(invoke("sample", "--cond", colour_mask(tmp_path / "m.png"), "--out", tmp_path / "o",
                         "--base", path, "--base-only", "--steps", "2"), str(path), code=1)
