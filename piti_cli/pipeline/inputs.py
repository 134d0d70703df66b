"""Conditions for sampling: from a picture file, a folder of them, or a packed HDF5 split.

How each input kind's file becomes a model condition (the official preprocessing, PIL
resizes) is the business of `piti_cli.data.kinds`; this module finds the files, reads a pack
range, and fits conditions to the encoder's input size. Every condition is float32
(C, 256, 256) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from piti_cli.data.images import resize_nearest_chw
from piti_cli.data.kinds import get_kind, kind_for_pack
from piti_cli.data.reader import PackedDataset
from piti_cli.errors import InputError


@dataclass
class Condition:
    name: str  # output files are named after it
    array: np.ndarray  # float32 (C, 256, 256) in [-1, 1]


def load_conditions(spec: str | Path, kind: str, limit: int | None = None,
                    skipped: list[tuple[str, str]] | None = None) -> list[Condition]:
    """Conditions from a file, a folder (sorted by name), or `pack.h5` / `pack.h5:N-M`.

    Every input is read and checked before the caller samples anything. Unusable files of a
    folder are appended to `skipped` as (path, why) when a list is given (the batch policy:
    the good ones are used), else one `InputError` lists all of them (not just the first);
    a folder with no usable file at all is always an `InputError`."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be at least 1")
    text = str(spec)
    path = Path(text.split(":")[0] if ".h5" in text else text)
    if path.suffix in (".h5", ".hdf5"):
        return _from_pack(path, text, kind, limit)
    reader = get_kind(kind)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in reader.suffixes)
        if not files:
            raise InputError(f"{path}: no {kind} inputs ({', '.join(sorted(reader.suffixes))}) in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{path}: no such file or folder")
    files = files[:limit] if limit else files
    conditions, problems = [], []
    for p in files:
        try:
            conditions.append(Condition(p.stem, _checked(p, reader.read(p))))
        except InputError as err:
            problems.append((p, str(err)))
    if problems and skipped is not None and conditions:
        skipped.extend((str(p), why) for p, why in problems)
        return conditions
    if problems:
        problems = [why for _, why in problems]
        head = "" if len(files) == 1 else f"{len(problems)} of {len(files)} inputs are unusable: "
        raise InputError(head + "; ".join(problems[:20]) + (" ..." if len(problems) > 20 else ""))
    return conditions


def _checked(where, array: np.ndarray) -> np.ndarray:
    """A condition with NaN/Inf never reaches the sampler (it would become a black picture)."""
    if not np.isfinite(array).all():
        raise InputError(f"{where}: the condition holds non-finite values (NaN/Inf)")
    return array


def _from_pack(path: Path, spec: str, kind: str, limit: int | None) -> list[Condition]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    dataset = PackedDataset(path)
    if kind_for_pack(dataset.kind).name != kind:
        raise InputError(f"{path}: holds {dataset.kind} conditions, but the model takes {kind}")
    start, stop = 0, len(dataset)
    if ":" in spec.split(".h5", 1)[1]:
        rng = spec.rsplit(":", 1)[1]
        try:
            start, stop = (int(x) for x in rng.split("-")) if "-" in rng else (int(rng), int(rng) + 1)
        except ValueError:
            raise InputError(f"{spec}: expected pack.h5:START-STOP") from None
    if not 0 <= start < stop <= len(dataset):
        raise InputError(f"{spec}: rows {start}-{stop} are not a range of this pack's {len(dataset)} rows "
                         f"(START-STOP with 0 <= START < STOP <= {len(dataset)})")
    indices = range(start, stop)
    if limit:
        indices = indices[:limit]
    out = []
    for i in indices:
        item = dataset[i]
        array = _checked(f"{path} row {i}", dataset.condition_tensor(item["condition"]).numpy())
        out.append(Condition(str(item.get("source_id", i)), array))
    return out


def fit_to_encoder(array: np.ndarray, size: int) -> np.ndarray:
    """Resize a 256×256 condition to the encoder's input size (tiny presets use less)."""
    return resize_nearest_chw(array, size)
