"""`piti prep pack`: one dataset split -> one HDF5 file (layout in `piti_cli.data.schema`).

Work happens in ``OUT.partial``; every `commit_every` source pairs the arrays are resized and
written, progress attributes updated and the file flushed.  An interrupted pack, rerun with
the same configuration, reopens the partial file and continues after the last commit, so the
result equals an uninterrupted pack.  When all pairs are done the file is marked complete and
renamed onto OUT (``os.replace``).  (`piti_cli.io_utils.atomic_path` is not used because its
temporary name is random and removed on failure — resuming needs a stable partial file.)

Validation: unmatched files (an image without condition or the reverse) and unreadable files
are skipped and listed in the report and the ``skipped`` attribute; ``strict=True`` raises
`InputError` at the first one instead.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from piti_cli.data_prep.pack_sources import DATASET_CONDITION, GENERIC_CONDITIONS, discover, load_pair
from piti_cli.data import palettes
from piti_cli.data.schema import (
    ARRAY_SPECS, FORMAT_NAME, FORMAT_VERSION, RESIZE_POLICY, SIZE, condition_paths,
)
from piti_cli.errors import InputError


@dataclass
class PackReport:
    path: Path
    written: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resumed_from: int = 0
    already_complete: bool = False
    seconds: float = 0.0


def pack_config(dataset: str, root, split: str, condition: str | None, conditions_dir, palette: str | None) -> dict:
    """The configuration stored in the file; a partial file is resumed only if it matches."""
    if dataset in DATASET_CONDITION:
        kind = DATASET_CONDITION[dataset]
        if condition not in (None, kind):
            raise InputError(f"{dataset} packs hold {kind} conditions, not {condition}")
        palette = dataset if kind == "mask" else None
    else:
        kind = condition or "sketch"
        if kind not in GENERIC_CONDITIONS:
            raise InputError(f"unknown condition {kind!r}; choose {', '.join(GENERIC_CONDITIONS)}")
        palette = (palette or "coco-stuff") if kind == "mask" else None
    if palette is not None and palette not in palettes.PALETTES:
        raise InputError(f"unknown palette {palette!r}; choose coco-stuff or ade20k")
    return {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": dataset, "split": split,
        "condition": kind, "palette": palette, "size": SIZE,
        "root": str(Path(root).resolve()),
        "conditions_dir": str(Path(conditions_dir).resolve()) if conditions_dir else None,
    }


def _arrays(kind: str) -> list[str]:
    return ["images", *condition_paths(kind)]


def _create(path: Path, config: dict):
    import h5py

    f = h5py.File(path, "w")
    kind = config["condition"]
    for name in _arrays(kind):
        shape, dtype = ARRAY_SPECS[name]
        f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(1, *shape))
    f.create_dataset("source_ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(256,))
    f.create_dataset("original_sizes", shape=(0, 2), maxshape=(None, 2), dtype="int32", chunks=(256, 2))
    if config["palette"]:
        f["meta/palette"] = palettes.PALETTES[config["palette"]]()
        f["meta/class_names"] = np.array(palettes.class_names(config["palette"]), dtype=h5py.string_dtype())
        f["meta/class_names"].attrs["ignore_index"] = 255 if config["palette"] == "coco-stuff" else -1
    f.attrs.update({
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": config["dataset"],
        "split": config["split"], "condition": kind, "resize_policy": RESIZE_POLICY,
        "config": json.dumps(config, sort_keys=True), "count": 0, "n_done": 0,
        "complete": False, "skipped": "[]",
    })
    return f


def _open_partial(path: Path, config: dict):
    """Reopen a matching partial file, else None (a stale or broken one is removed)."""
    import h5py

    try:
        f = h5py.File(path, "r+")
    except OSError:
        path.unlink()
        return None
    if (f.attrs.get("config") != json.dumps(config, sort_keys=True) or "n_done" not in f.attrs
            or bool(f.attrs.get("complete", False))):
        f.close()  # another configuration, or a file whose final rename never happened
        path.unlink()
        return None
    count = int(f.attrs["count"])
    for name in [*_arrays(config["condition"]), "source_ids", "original_sizes"]:
        f[name].resize(count, axis=0)  # drop rows written after the last commit
    return f


def pack_split(
    dataset: str,
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    condition: str | None = None,
    conditions_dir: str | os.PathLike | None = None,
    palette: str | None = None,
    strict: bool = False,
    overwrite: bool = False,
    workers: int = 2,
    commit_every: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> PackReport:
    """Pack one split of `dataset` under `root` into the HDF5 file `out` (resumable)."""
    t0 = time.perf_counter()
    out = Path(out)
    config = pack_config(dataset, root, split, condition, conditions_dir, palette)
    report = PackReport(out)
    if out.exists() and not overwrite:
        report.already_complete = True
        return report
    pairs, missing = discover(dataset, root, split, conditions_dir)
    if strict and missing:
        key, why = missing[0]
        raise InputError(f"{root}: {len(missing)} unmatched file(s), e.g. {key}: {why} (--strict)")
    if not pairs:
        raise InputError(f"{root}: no {dataset} pairs found for split {split!r}")
    kind = config["condition"]
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    f = _open_partial(partial, config) if partial.exists() else None
    if f is None:
        f = _create(partial, config)
    try:
        n_done, count = int(f.attrs["n_done"]), int(f.attrs["count"])
        skipped = [tuple(s) for s in json.loads(f.attrs["skipped"])]
        report.resumed_from = n_done
        names = _arrays(kind)
        if progress:
            progress(n_done, len(pairs))
        with ThreadPoolExecutor(max(1, workers)) as pool:
            while n_done < len(pairs):
                block = pairs[n_done : n_done + commit_every]
                results = list(pool.map(lambda p: _try_load(p, dataset, kind, config["palette"]), block))
                good = []
                for pair, res in zip(block, results):
                    if isinstance(res, InputError):
                        if strict:
                            raise res
                        skipped.append((pair.source_id, str(res)))
                    else:
                        good.append((pair, res))
                if good:
                    _check_space(partial, len(good), names)
                    n = count + len(good)
                    for name in [*names, "source_ids", "original_sizes"]:
                        f[name].resize(n, axis=0)
                    for name in names:
                        f[name][count:n] = np.stack([r[name] for _, r in good])
                    f["original_sizes"][count:n] = np.stack([r["original_sizes"] for _, r in good])
                    f["source_ids"][count:n] = [p.source_id for p, _ in good]
                    count = n
                n_done += len(block)
                f.attrs.update({"count": count, "n_done": n_done, "skipped": json.dumps(skipped)})
                f.flush()
                if progress:
                    progress(n_done, len(pairs))
        all_skipped = [tuple(m) for m in missing] + skipped
        if count == 0:  # an empty pack trains nothing: refuse, leave no file behind
            f.close()
            partial.unlink(missing_ok=True)
            first = all_skipped[0]
            raise InputError(f"{root}: all {len(pairs)} pairs of split {split!r} failed, nothing packed "
                             f"(first: {first[0]}: {first[1]})")
        f.attrs.update({"complete": True, "skipped": json.dumps(all_skipped)})
        del f.attrs["n_done"]
    finally:
        f.close()
    os.replace(partial, out)
    report.written = count
    report.skipped = all_skipped
    report.seconds = time.perf_counter() - t0
    return report


# room kept free beyond the rows themselves (attributes, chunk index, HDF5 metadata)
SPACE_MARGIN = 4 << 20


def _check_space(path: Path, rows: int, names: list[str]) -> None:
    """Refuse a block the disk cannot hold, before h5py tries: HDF5 does not recover from a
    failed write (its caches break, and Python can crash at exit). The partial file stays
    as committed so far, so a rerun with space resumes it."""
    import errno
    import shutil

    need = SPACE_MARGIN + rows * (sum(int(np.prod(ARRAY_SPECS[n][0])) * np.dtype(ARRAY_SPECS[n][1]).itemsize
                                      for n in names) + 1024)
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(errno.ENOSPC, f"no space left on the device ({free >> 20} MiB free, the next "
                      f"{rows} rows need {need >> 20} MiB); free some and rerun to resume", str(path))


def _try_load(pair, dataset, kind, palette_name):
    try:
        return load_pair(pair, dataset, kind, palette_name)
    except InputError as err:
        return err
    except Exception as err:  # anything else a broken file can raise while decoding
        return InputError(f"{pair.image}: {type(err).__name__}: {err}")
