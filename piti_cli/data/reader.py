"""Read a packed dataset (see `piti_cli.data.schema`) for training and sampling.

Typical use::

    ds = PackedDataset("coco_train.h5")            # opens nothing yet
    sample = ds[0]
    sample["image"]       # np.uint8 (256, 256, 3) RGB
    sample["condition"]   # stored form: mask -> uint8 (256, 256) class ids,
                          # sketch -> uint8 (256, 256) 0/1, rgb -> uint8 (256, 256, 3),
                          # depth -> {"depth": f32 (256,256), "depth_valid": u8, "normal": f32 (256,256,3)}
    ds.condition_tensor(sample["condition"])      # torch.float32 (C, 256, 256) in [-1, 1]
    image_tensor(sample["image"])                 # torch.float32 (3, 256, 256) in [-1, 1]

The HDF5 file is opened lazily on first access *in each process*, so the dataset can be handed
to a ``DataLoader`` with ``num_workers > 0`` (h5py handles must not cross a fork).  Pass
``as_tensors=True`` to get model-ready tensors computed in the workers.
"""

from __future__ import annotations

import contextlib

import os
from pathlib import Path
from typing import Any

import numpy as np

from piti_cli.data import conditions as cond
from piti_cli.data.images import to_unit
from piti_cli.data.schema import condition_paths, validate_open_pack
from piti_cli.errors import InputError, one_line


class PackedInfo:
    """Root attributes and /meta of a pack, read once (cheap, no sample data)."""

    def __init__(self, path: str | os.PathLike):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            what = "a folder, not an HDF5 pack" if self.path.is_dir() else "no such file"
            raise InputError(f"{self.path}: {what}")
        try:
            with h5py.File(self.path, "r") as f:
                attrs = validate_open_pack(f, self.path)
                self.count, self.dataset, self.split = attrs["count"], attrs["dataset"], attrs["split"]
                self.kind, self.config, self.skipped = attrs["kind"], attrs["config"], attrs["skipped"]
                self.caption_length = attrs["caption_length"]  # 0: the pack has no captions
                self.palette = _palette(f["meta/palette"][()], self.path) if "meta/palette" in f else None
                self.class_names = (
                    [s.decode() if isinstance(s, bytes) else str(s) for s in np.atleast_1d(f["meta/class_names"][()])]
                    if "meta/class_names" in f
                    else None
                )
        except InputError:
            raise
        except Exception as err:  # OSError for non-HDF5 bytes; h5py raises others on damaged files
            raise InputError(f"{self.path}: cannot read HDF5 file ({type(err).__name__}: {one_line(str(err))[:120]})") from None


def _palette(stored, path: Path) -> np.ndarray:
    """The pack's (N, 3) colour table as uint8, or InputError: NaN, fractions or values outside
    0..255 would be cast into garbage colours."""
    palette = np.asarray(stored)
    if palette.ndim != 2 or palette.shape[1] != 3 or not np.issubdtype(palette.dtype, np.number):
        raise InputError(f"{path}: /meta/palette is {palette.dtype} {palette.shape}, not an (N, 3) colour table")
    if not np.isfinite(palette).all() or (palette != np.round(palette)).any() or palette.min() < 0 or palette.max() > 255:
        raise InputError(f"{path}: /meta/palette holds values that are not colours (NaN, fractions, outside 0..255)")
    return palette.astype(np.uint8)


def condition_to_array(kind: str, stored: Any, palette: np.ndarray | None = None) -> np.ndarray:
    """Stored condition of one sample -> float32 (C, 256, 256) numpy array in [-1, 1].

    mask needs the pack's (256, 3) ``palette``; the other kinds need nothing.
    """
    if kind == "mask":
        if palette is None:
            raise ValueError("mask conditions need the pack palette")
        return cond.mask_condition(np.asarray(stored), palette)
    if kind == "sketch":
        return cond.sketch_condition(np.asarray(stored))
    if kind == "rgb":
        return to_unit(np.asarray(stored))
    if kind == "depth":
        return cond.depth_condition(stored["depth"], stored["depth_valid"], stored["normal"])
    raise ValueError(f"unknown condition kind {kind!r}")


def condition_tensor(kind: str, stored: Any, palette: np.ndarray | None = None):
    """Like `condition_to_array` but returns a torch.float32 tensor (C, 256, 256)."""
    import torch

    return torch.from_numpy(condition_to_array(kind, stored, palette))


def image_tensor(image_uint8: np.ndarray):
    """(256, 256, 3) uint8 RGB -> torch.float32 (3, 256, 256) in [-1, 1] (model image range)."""
    import torch

    return torch.from_numpy(to_unit(image_uint8))


try:  # torch is a dependency, but keep this module importable for metadata-only users
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object  # type: ignore[misc,assignment]


class PackedDataset(_TorchDataset):
    """Map-style dataset over one pack; each item is a dict (numpy arrays, collatable).

    Keys: ``index`` (int), ``source_id`` (str), ``image`` (uint8 (256, 256, 3)),
    ``condition`` (stored form, see module docs) and, in a pack with captions, ``caption``
    (int64 token ids, its length varies).  With ``as_tensors=True`` items instead carry
    ``image`` float32 (3, 256, 256) and ``condition`` float32 (C, 256, 256), both in [-1, 1],
    computed in the worker — what the diffusion training loop consumes.
    """

    def __init__(self, path: str | os.PathLike, *, as_tensors: bool = False):
        self.info = PackedInfo(path)
        self.path = self.info.path
        self.kind = self.info.kind
        self.palette = self.info.palette
        self.as_tensors = as_tensors
        self._file = None
        self._pid = None

    def __len__(self) -> int:
        return self.info.count

    def _h5(self):
        # One handle per process: reopen after a fork (DataLoader worker).
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def condition_tensor(self, stored: Any):
        """This pack's stored condition -> torch.float32 (C, 256, 256) in [-1, 1]."""
        return condition_tensor(self.kind, stored, self.palette)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        with self._row_errors(index):
            f = self._h5()
            image = f["images"][index]
            sid = f["source_ids"][index]
            caption = f["captions"][index] if self.info.caption_length else None
        stored = self.stored_condition(index)
        item = {
            "index": index,
            "source_id": sid.decode() if isinstance(sid, bytes) else str(sid),
            "image": image,
            "condition": stored,
        }
        if caption is not None:
            item["caption"] = caption[caption >= 0].astype(np.int64)
        if self.as_tensors:
            item["image"] = image_tensor(image)
            item["condition"] = self.condition_tensor(stored)
        return item

    @contextlib.contextmanager
    def _row_errors(self, index: int):
        try:
            yield
        except Exception as err:  # a damaged chunk: h5py raises OSError and others
            raise InputError(f"{self.path}: row {index} is unreadable ({type(err).__name__}: "
                             f"{one_line(str(err))[:120]})") from None

    def stored_condition(self, index: int) -> Any:
        """Row `index`'s condition in its stored form (see module docs), without its picture."""
        with self._row_errors(index):
            f = self._h5()
            parts = {p.split("/", 1)[1]: f[p][index] for p in condition_paths(self.kind)}
        return parts[self.kind] if len(parts) == 1 else parts

    def source_ids(self, indices: range) -> list[str]:
        """The source ids of a range of rows, without reading their pictures."""
        try:
            raw = self._h5()["source_ids"][indices.start:indices.stop]
        except Exception as err:
            raise InputError(f"{self.path}: source ids unreadable ({type(err).__name__}: "
                             f"{one_line(str(err))[:120]})") from None
        return [s.decode() if isinstance(s, bytes) else str(s) for s in raw]

    def __getstate__(self):  # never pickle an open h5py handle into a worker
        state = dict(self.__dict__)
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
