"""The output side: a full disk, unwritable places, `--out` naming a file, a folder another
run holds, file permissions. One line naming the place, exit 1, nothing half-written."""

from __future__ import annotations

import errno
import io
import os
import stat

import numpy as np
import pytest
from PIL import Image

from piti_cli.io_utils import LOCK_NAME, atomic_path, atomic_write_text, output_lock
from tests.reliability.conftest import check_refused, colour_mask, invoke, nothing_finished, save

ROOT = os.geteuid() == 0  # root writes everywhere: chmod cannot make a folder unwritable


@pytest.fixture
def disk_full_after(monkeypatch):
    """PIL's PNG writer hits ENOSPC halfway through the n-th picture (0-based): half the bytes
    reach the file, then the write fails, as on a full disk."""

    def arm(n: int):
        original = Image.Image.save
        calls = [0]

        def save(self, fp, format=None, **params):
            calls[0] += 1
            if calls[0] <= n:
                return original(self, fp, format, **params)
            buf = io.BytesIO()
            original(self, buf, format or "PNG", **params)
            with open(fp, "wb") as f:
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

        monkeypatch.setattr(Image.Image, "save", save)

    return arm


def _no_temp_files(folder):
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _all_pngs_complete(folder):
    for p in folder.rglob("*.png"):
        with Image.open(p) as im:
            im.load()
    return True


def test_atomic_path_gives_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.json", "{}")
        assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoints_get_the_umask_permissions(tmp_path, suffix):
    """safetensors recreates its file as 0600 whatever the umask; a written checkpoint must
    still get the umask's permissions like every other file."""
    import torch

    from piti_cli.checkpoints.io import save_checkpoint

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / f"w{suffix}", {"a": torch.zeros(2)}, extra={"step": 1} if suffix == ".safetensors" else None)
        assert stat.S_IMODE((tmp_path / f"w{suffix}").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_a_failed_write_leaves_neither_temp_file_nor_half_file(tmp_path):
    (tmp_path / "old.bin").write_bytes(b"old")
    for target in (tmp_path / "new.bin", tmp_path / "old.bin"):
        with pytest.raises(OSError):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half")
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]
    assert (tmp_path / "old.bin").read_bytes() == b"old"


def test_sample_on_a_full_disk(tmp_path, mask_base, disk_full_after):
    for name in "abc":
        colour_mask(tmp_path / "in" / f"{name}.png")
    disk_full_after(1)
    out = tmp_path / "out"
    result = invoke("sample", "--cond", tmp_path / "in", "--base", mask_base, "--base-only", "--steps", "1",
                    "--batch-size", "1", "--out", out)
    line = check_refused(result, str(out / "b.png"), code=1)
    assert "disk full" in line
    assert _no_temp_files(out) and _all_pngs_complete(out)
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png"] and not (out / "piti_sample.json").exists()


@pytest.mark.parametrize("command", ["degrade", "masks"])
def test_prep_on_a_full_disk(command, tmp_path, disk_full_after):
    for name in "abc":
        if command == "masks":
            save(np.full((8, 8), 3, np.uint8), tmp_path / "in" / f"{name}.png")
        else:
            save(np.full((8, 8, 3), 90, np.uint8), tmp_path / "in" / f"{name}.png")
    disk_full_after(1)
    extra = ["--sf", "1"] if command == "degrade" else []
    result = invoke("prep", command, tmp_path / "in", tmp_path / "out", *extra)
    check_refused(result, str(tmp_path / "out" / "b.png"), code=1)
    assert _no_temp_files(tmp_path / "out") and _all_pngs_complete(tmp_path / "out")


def test_prep_pack_on_a_full_disk_stops_cleanly_and_resumes(tmp_path, monkeypatch):
    import h5py

    from tests.reliability import bad_files as B

    good = B.write_mask_pack(tmp_path / "ref" / "masks.h5", rows=4)
    src = good.parent / "pack_src"
    args = ["prep", "pack", "generic", src / "img", tmp_path / "packs", "--conditions", src / "cond",
            "--condition", "mask"]
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    result = invoke(*args)
    line = check_refused(result, "generic_all.h5.partial", code=1)
    assert "no space left" in line
    partial = tmp_path / "packs" / "generic_all.h5.partial"
    assert not (tmp_path / "packs" / "generic_all.h5").exists()
    with h5py.File(partial) as f:
        assert not f.attrs["complete"] and int(f.attrs["count"]) == 0
    monkeypatch.setattr(shutil, "disk_usage", real)
    assert invoke(*args).exit_code == 0
    with h5py.File(tmp_path / "packs" / "generic_all.h5") as f, h5py.File(good) as g:
        assert np.array_equal(f["images"][()], g["images"][()])
        assert np.array_equal(f["conditions/mask"][()], g["conditions/mask"][()])


def _a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("a file, not a folder")
    return path


@pytest.mark.parametrize("place", ["names-a-file", "under-a-file"])
def test_sample_out_that_cannot_be_a_folder(place, tmp_path, mask_base):
    target = _a_file(tmp_path) if place == "names-a-file" else _a_file(tmp_path) / "sub"
    result = invoke("sample", "--cond", colour_mask(tmp_path / "c.png"), "--base", mask_base, "--base-only",
                    "--steps", "1", "--out", target)
    check_refused(result, str(target.parent if place == "under-a-file" else target), code=1)
    assert (tmp_path / "taken").read_text() == "a file, not a folder"


@pytest.mark.parametrize("command", ["hed", "degrade", "masks", "pack"])
def test_prep_out_under_a_file(command, tmp_path):
    save(np.full((8, 8, 3) if command != "masks" else (8, 8), 3, np.uint8), tmp_path / "in" / "a.png")
    out = _a_file(tmp_path) / "out"
    args = {"hed": ["hed", tmp_path / "in", out, "--backend", "gradient"], "degrade": ["degrade", tmp_path / "in", out],
            "masks": ["masks", tmp_path / "in", out],
            "pack": ["pack", "generic", tmp_path / "in", out, "--conditions", tmp_path / "in"]}[command]
    result = invoke("prep", *args)
    check_refused(result, str(tmp_path / "taken"), code=1)


def test_finetune_run_dir_under_a_file_leaves_nothing(tmp_path):
    run_dir = _a_file(tmp_path) / "run"
    result = invoke("finetune", "--run-dir", run_dir, "--data", tmp_path / "none.h5", "--init", tmp_path / "x.pt")
    check_refused(result, str(tmp_path / "taken"), code=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_finetune_failing_in_a_new_run_dir_removes_it(tmp_path):
    run_dir = tmp_path / "run"
    result = invoke("finetune", "--run-dir", run_dir, "--data", tmp_path / "none.h5", "--init", tmp_path / "x.pt")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not run_dir.exists()


@pytest.mark.skipif(ROOT, reason="root can write into a read-only folder")
def test_unwritable_out_folder(tmp_path, mask_base):
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = invoke("sample", "--cond", colour_mask(tmp_path / "c.png"), "--base", mask_base, "--base-only",
                        "--steps", "1", "--out", locked / "out")
        line = check_refused(result, str(locked), code=1)
        assert "permission denied" in line
    finally:
        locked.chmod(0o700)


def test_a_folder_in_use_is_refused(tmp_path, mask_base):
    out = tmp_path / "out"
    cond = colour_mask(tmp_path / "c.png")
    with output_lock(out):
        runs = {
            "sample": invoke("sample", "--cond", cond, "--base", mask_base, "--base-only", "--steps", "1", "--out", out),
            "pack": invoke("prep", "pack", "generic", tmp_path, out, "--conditions", tmp_path),
            "finetune": invoke("finetune", "--run-dir", out, "--data", tmp_path / "d.h5", "--init", mask_base),
        }
        for name, result in runs.items():
            line = check_refused(result, str(out), code=1)
            assert "another piti run" in line, name
    assert nothing_finished(out) and [p.name for p in out.iterdir()] == []  # the lock file goes with the lock
    # once released, the folder is free again
    with output_lock(out):
        pass


@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_a_failed_new_run_folder_is_removed_unless_it_holds_a_checkpoint(with_checkpoint, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(OSError):
        with output_lock(run, "--run-dir", worth_keeping="checkpoints"):
            (run / "config.json").write_text("{}")
            if with_checkpoint:
                (run / "checkpoints").mkdir()
                (run / "checkpoints" / "step_0000010.pt").write_bytes(b"x")
            raise OSError(errno.ENOSPC, "No space left on device", str(run / "metrics.jsonl"))
    assert run.exists() == with_checkpoint


@pytest.mark.parametrize("where", ["same", "inside", "file's folder"])
def test_sample_never_writes_over_or_into_its_inputs(where, tmp_path, mask_base):
    """`--out` the input folder (or inside it, or the folder of an input file) is refused
    before anything is loaded; the masks stay as they were, bit for bit."""
    masks = tmp_path / "m"
    colour_mask(masks / "a.png")
    colour_mask(masks / "b.png")
    before = {p.name: p.read_bytes() for p in masks.iterdir()}
    cond, out = {"same": (masks, masks), "inside": (masks, masks / "out"),
                 "file's folder": (masks / "a.png", masks)}[where]
    for extra in ([], ["--overwrite"]):  # the advice a refusal gives must not lead there either
        result = invoke("sample", "--cond", cond, "--out", out, "--base", mask_base, "--base-only", "--steps", "2",
                        *extra)
        check_refused(result, ["--out", "--cond"], 1)
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == before


def test_edit_takes_one_condition_file_and_checks_its_out_before_sampling(tmp_path, mask_base):
    a, b = colour_mask(tmp_path / "m" / "a.png"), colour_mask(tmp_path / "m" / "b.png")
    check_refused(invoke("edit", "--cond", tmp_path / "m", "--edited", b, "--base", mask_base, "--base-only",
                         "--out", tmp_path / "e"), ["--cond", "a folder"], 1)
    (tmp_path / "taken").write_text("x")
    check_refused(invoke("edit", "--cond", a, "--edited", b, "--base", mask_base, "--base-only",
                         "--out", tmp_path / "taken"), ["--out", "not a folder"], 1)
    assert (tmp_path / "taken").read_text() == "x" and not (tmp_path / "e").exists()


def test_a_packs_folder_may_hold_the_pictures(tmp_path):
    """Pictures sampled from `data.h5` cannot replace it: its folder is a fine `--out`; a
    picture's folder is not."""
    from piti_cli.errors import InputError
    from piti_cli.io_utils import keep_inputs

    (tmp_path / "data.h5").write_bytes(b"")
    keep_inputs(tmp_path, {"--cond": tmp_path / "data.h5"})
    colour_mask(tmp_path / "a.png")
    with pytest.raises(InputError, match="is the folder of --cond"):
        keep_inputs(tmp_path, {"--cond": tmp_path / "a.png"})
