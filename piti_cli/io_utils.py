"""Crash-safe file writing (write beside the target, then rename over it) and output-folder locks."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from piti_cli.errors import InputError, PitiError

LOCK_NAME = ".piti.lock"
# Output folders of the runs in progress, most recent last (the CLI names them on an interrupt).
active_outputs: list[Path] = []


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` on success.

    A crash, an exception or a signal leaves the old `target` untouched and removes the
    temporary file, so a checkpoint or packed dataset is never half-written. The final file
    gets the permissions the umask gives a new file (0644 under umask 022).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The name is known before the file exists, so the cleanup below covers every moment after
    # it is created, an interrupt included. os.open applies the umask (0644 under umask 022).
    tmp_path = owned = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # another file holds this random name: not ours to remove
            owned = None
            raise
        os.close(fd)
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as err:
        if str(err.filename) == str(tmp_path):  # name the file the user asked for, not the temporary
            raise OSError(err.errno, err.strerror, str(target)) from err
        raise
    finally:
        if owned is not None:
            with contextlib.suppress(FileNotFoundError):
                owned.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def read_tagged_json(path: str | os.PathLike, fmt: str, key: str) -> dict:
    """`data[key]` of a small state file `{"format": fmt, key: {...}}` (piti's caches and pins);
    {} when it is missing, unreadable, or not of that format: such a file counts as empty."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != fmt or not isinstance(data.get(key), dict):
        return {}
    return data[key]


def atomic_torch_save(obj, target: str | os.PathLike) -> None:
    import torch  # only here: the rest of this module (prep, the CLI's locks) runs without torch

    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, option: str = "--out", *, worth_keeping: str | None = None) -> Iterator[Path]:
    """Hold `folder/.piti.lock` for the length of a run; a second run into the same folder is
    refused at once with a `PitiError` naming the folder. The OS drops the lock when the
    process ends, however it ends (SIGKILL included), so a crashed run never blocks the next;
    a run that ends normally removes the lock file.
    The folder is created if needed (an unwritable place fails here, before any work). When
    the run fails (an exception, not an interrupt) in a folder this call created, the folder is
    removed if it holds nothing but the lock, or, when `worth_keeping` names a subfolder (a
    run's checkpoints/), whatever it holds as long as that subfolder holds no file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PitiError(f"{option} {folder}: is a file, not a folder")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PitiError(f"{option} {folder}: another piti run is writing into this folder "
                        f"(lock {folder / LOCK_NAME}); wait for it to finish or choose another folder") from None
    except OSError:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    active_outputs.append(folder)
    try:
        yield folder
    except Exception as err:
        active_outputs.remove(folder)
        if created:
            _remove_failed(folder, worth_keeping)
        _name_the_place(err, folder)
        raise
    except BaseException:
        raise  # an interrupt: the folder stays listed, so the message can name it
    else:
        active_outputs.remove(folder)
    finally:
        # Removed while still held, so no folder is left with an empty lock file. A run that
        # opened the old file in that instant finds it locked and is refused as usual.
        with contextlib.suppress(OSError):
            (folder / LOCK_NAME).unlink()
        lock.release()


@contextlib.contextmanager
def writing_into(folder: str | os.PathLike) -> Iterator[Path]:
    """Name `folder` as where a run writes (no lock: for commands whose every output is one
    atomic, skip-if-present file), so an interrupt message can say where the finished files are."""
    folder = Path(folder)
    active_outputs.append(folder)
    try:
        yield folder
    except Exception as err:
        active_outputs.remove(folder)
        _name_the_place(err, folder)
        raise
    else:  # an interrupt (a BaseException) leaves the folder listed, so its message names it
        active_outputs.remove(folder)


def _name_the_place(err: Exception, folder: Path) -> None:
    """A file-system error that names no file (h5py's, torch.save's) names the run's folder."""
    if isinstance(err, OSError) and err.filename is None:
        err.filename = str(folder)


def _remove_failed(folder: Path, worth_keeping: str | None) -> None:
    with contextlib.suppress(OSError):
        if worth_keeping and not any(p.is_file() for p in (folder / worth_keeping).rglob("*")):
            shutil.rmtree(folder)
        elif [p.name for p in folder.iterdir()] == [LOCK_NAME]:
            (folder / LOCK_NAME).unlink()
            folder.rmdir()


def separate_folders(src: str | os.PathLike, out: str | os.PathLike, src_option: str, out_option: str) -> None:
    """`InputError` when the output folder is, contains or lies inside the input folder (or
    file): a command that reads every file under `src` must never read or replace what it
    writes. Both are compared as resolved paths (symlinks followed)."""
    a, b = Path(src).resolve(), Path(out).resolve()
    if a == b or a in b.parents or b in a.parents:
        raise InputError(f"{out_option} {out}: must not be, contain or lie inside {src_option} {src} "
                         "(its inputs would be overwritten or read back); choose a folder beside it")


def keep_inputs(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], out_option: str = "--out") -> None:
    """`InputError` before any work when writing into the folder `out` could replace or be read
    back as an input: `out` is an input folder or lies inside one, or is the folder of an input
    picture (written over by its own output: `a.png` → `a.png`; an HDF5 pack's folder is
    fine, its pictures are inside it); `out` that exists as a file."""
    target = Path(out).resolve()
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"{out_option} {out}: exists and is not a folder")
    for option, src in inputs.items():
        if src is None or not Path(src).exists():
            continue
        path = Path(src).resolve()
        if path.is_file() and path.suffix.lower() in (".h5", ".hdf5"):
            continue
        folder = path if path.is_dir() else path.parent
        if target == folder or (path.is_dir() and folder in target.parents):
            where = "is" if target == folder else "lies inside"
            raise InputError(f"{out_option} {out}: {where} the folder of {option} {src} (its inputs would be "
                             "overwritten or read back); choose another folder")


def beside(src: str | os.PathLike, suffix: str) -> Path:
    """The default output folder of a prep command: next to its input, `coco/` → `coco_hed/`
    (an input file `a.jpg` → `a_hed/`)."""
    path = Path(src)
    stem = path.stem if path.is_file() else path.name or path.resolve().name
    return path.parent / f"{stem}_{suffix}"

