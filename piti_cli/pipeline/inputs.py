"""Conditions for sampling: from a picture file, a folder of them, or a packed HDF5 split.

How each input kind's file becomes a model condition (the official preprocessing, PIL
resizes) is the business of `piti_cli.data.kinds`; this module finds the inputs (files or a
pack range), checks them, and fits conditions to the encoder's input size. An input is read
when it is needed (`Condition.read`): float32 (C, 256, 256) in [-1, 1].
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from piti_cli.data.kinds import get_kind, kind_for_pack
from piti_cli.data.reader import PackedDataset
from piti_cli.errors import InputError
from piti_cli.names import confined_name


@dataclass(frozen=True)
class Condition:
    """One input, by where it lives: read on demand, so a run over a dataset never holds all
    of its conditions, and each torchrun rank reads only the inputs it checks and samples."""

    name: str  # output files are named after it
    path: str
    kind: str  # the model input kind
    row: int | None = None  # a pack's row, else a picture file
    digest: str = ""  # sha256 of the float32 array, set once `check` has read it

    @property
    def where(self) -> str:
        return self.path if self.row is None else f"{self.path} row {self.row}"

    def read(self) -> np.ndarray:
        """float32 (C, 256, 256) in [-1, 1]; `InputError` naming the input if it is unusable,
        or if it has changed since `check` read it (the digest the run records must be the
        condition it samples)."""
        if self.row is None:
            array = get_kind(self.kind).read(Path(self.path))
        else:
            pack = _open_pack(self.path)
            array = pack.condition_tensor(pack.stored_condition(self.row)).numpy()
        if not np.isfinite(array).all():  # NaN/Inf never reaches the sampler (a black picture)
            raise InputError(f"{self.where}: the condition holds non-finite values (NaN/Inf)")
        if self.digest and condition_digest(array) != self.digest:
            raise InputError(f"{self.where}: changed since this run checked it; rerun to sample it as it is now")
        return array


def condition_digest(array: np.ndarray) -> str:
    """sha256 of a condition as float32 bytes: what a run records and checks it against."""
    return hashlib.sha256(np.ascontiguousarray(array, np.float32).tobytes()).hexdigest()


def find_inputs(spec: str | Path, kind: str, limit: int | None = None) -> list[Condition]:
    """The inputs of a file, a folder (sorted by name), or `pack.h5` / `pack.h5:N-M`, unread.

    `InputError` for what can be told without reading them: no such file, an empty folder,
    a pack of another kind, a bad row range."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be at least 1")
    text = str(spec)
    path, rows = _split_rows(text)
    if path.suffix in (".h5", ".hdf5"):
        return _pack_rows(path, text, rows, kind, limit)
    reader = get_kind(kind)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in reader.suffixes)
        if not files:
            raise InputError(f"{path}: no {kind} inputs ({', '.join(sorted(reader.suffixes))}) in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{path}: no such file or folder")
    return [Condition(p.stem, str(p), kind) for p in (files[:limit] if limit else files)]


Problem = tuple[str, str]  # (where, why)


def check(inputs: list[Condition]) -> list[Condition | Problem]:
    """Read each input once: the input with its digest, or (where, why) it is unusable."""
    out: list[Condition | Problem] = []
    for c in inputs:
        try:
            array = c.read()
        except InputError as err:
            out.append((c.where, str(err)))
        else:
            out.append(replace(c, digest=condition_digest(array)))
    return out


def settle(checked: list[Condition | Problem], skipped: list[tuple[str, str]] | None = None) -> list[Condition]:
    """The usable inputs, by the batch policy: unusable files of a folder are appended to
    `skipped` as (path, why) when a list is given and some input is usable; otherwise one
    `InputError` lists all the problems (not just the first). A pack's bad row always refuses."""
    good = [c for c in checked if isinstance(c, Condition)]
    problems = [c for c in checked if not isinstance(c, Condition)]
    if not problems:
        return good
    if skipped is not None and good and all(c.row is None for c in good):
        skipped.extend(problems)
        return good
    why = [w for _, w in problems]
    head = "" if len(checked) == 1 else f"{len(problems)} of {len(checked)} inputs are unusable: "
    raise InputError(head + "; ".join(why[:20]) + (" ..." if len(why) > 20 else ""))


def load_conditions(spec: str | Path, kind: str, limit: int | None = None,
                    skipped: list[tuple[str, str]] | None = None) -> list[Condition]:
    """`find_inputs`, then every input read and checked (`check`, `settle`) before the caller
    samples anything; a folder with no usable file at all is always an `InputError`."""
    return settle(check(find_inputs(spec, kind, limit)), skipped)


@functools.lru_cache(maxsize=4)
def _open_pack(path: str) -> PackedDataset:
    return PackedDataset(path)


def _split_rows(text: str) -> tuple[Path, str | None]:
    """(path, "START-STOP" or "N" or None) of `pack.h5:START-STOP`; a path that exists as
    written is a path, colons included (`/data/a:b/pack.h5`)."""
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    head, _, tail = text.rpartition(":")
    if Path(head).suffix in (".h5", ".hdf5"):
        return Path(head), tail
    return Path(text), None


def _pack_rows(path: Path, spec: str, rng: str | None, kind: str, limit: int | None) -> list[Condition]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    dataset = PackedDataset(path)
    if kind_for_pack(dataset.kind).name != kind:
        raise InputError(f"{path}: holds {dataset.kind} conditions, but the model takes {kind}")
    start, stop = 0, len(dataset)
    if rng is not None:
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
    ids = dataset.source_ids(indices)
    dataset.close()
    return [Condition(confined_name(name, f"{path} row {i} (source_ids)"), str(path), kind, i) for name, i in zip(ids, indices)]

