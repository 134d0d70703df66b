"""Input kinds: the one table of what each kind of semantic input is.

A *model kind* is what a PITI encoder takes (``mask``, ``sketch``, ``depth-normal``); a
*pack kind* is how `piti prep pack` stores conditions (``mask`` class ids, ``sketch`` 0/1
edges, ``rgb`` any colour picture, ``depth`` metres + normals; see `piti_cli.data.schema`).
Each row says how many channels the encoder takes, which pack kinds feed it, which files
`piti sample` reads for it and how one such file becomes a model condition: float32
(C, 256, 256) in [-1, 1], preprocessed as the official loaders do (resizes are PIL's, see
`piti_cli.data.images`). Adding a kind means one row here plus its file reader.

The null condition (classifier-free guidance, condition dropout) is the all-ones input of
`NULL_VALUE` for every kind, as the official models were trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from piti_cli.data import conditions
from piti_cli.data.images import IMAGE_SUFFIXES, read_image, resize_nearest, to_unit
from piti_cli.data.palettes import decode_color_mask
from piti_cli.errors import InputError

SIZE = 256  # conditions enter the encoder at 256² (tiny presets resize further)
NULL_VALUE = 1.0


def _finite(path: Path, array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise InputError(f"{path}: holds non-finite values (NaN/Inf)")
    return array


def read_mask(path: Path) -> np.ndarray:
    """An RGB colour mask (COCO-Stuff colours), PIL-nearest squashed to 256²."""
    rgb = read_image(path)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InputError(f"{path}: a mask must be an RGB colour mask, got {rgb.shape[-1] if rgb.ndim == 3 else 1} channel(s)")
    rgb = np.ascontiguousarray(rgb[..., :3])
    try:
        decode_color_mask(rgb, "coco-stuff")
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    return to_unit(resize_nearest(rgb, SIZE))


def read_sketch(path: Path) -> np.ndarray:
    """Binary edges (white on black), PIL-nearest to 256², then the L1 distance transform."""
    arr = read_image(path)
    if arr.ndim == 3:
        channels = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
        if not (channels == channels[..., :1]).all():
            raise InputError(f"{path}: a sketch must be a grey (white-on-black) picture, got {arr.shape[2]} differing channels")
        arr = channels[..., 0]
    if arr.dtype != np.uint8:
        raise InputError(f"{path}: a sketch must be an 8-bit picture, got {arr.dtype}")
    return conditions.sketch_condition(resize_nearest(arr, SIZE) > 127)


def read_depth_normal(path: Path) -> np.ndarray:
    """A `.npy` 6-channel picture (normals RGB then depth-jet RGB): uint8 (H, W, 6) or
    float (6, H, W) in [-1, 1]; PIL-nearest to 256²."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises ValueError, OSError, EOFError, … for broken files
        raise InputError(f"{path}: unreadable .npy ({type(err).__name__})") from None
    if arr.ndim == 3 and arr.shape[-1] == 6 and arr.dtype == np.uint8:
        return to_unit(resize_nearest(arr, SIZE))
    if arr.ndim == 3 and arr.shape[0] == 6 and np.issubdtype(arr.dtype, np.floating):
        hwc = _finite(path, np.ascontiguousarray(arr.transpose(1, 2, 0).astype(np.float32)))
        if np.abs(hwc).max(initial=0.0) > 1.0:
            raise InputError(f"{path}: float depth-normal values must lie in [-1, 1]")
        return np.ascontiguousarray(resize_nearest(hwc, SIZE).transpose(2, 0, 1))
    raise InputError(f"{path}: depth-normal input must be uint8 (H, W, 6) or float (6, H, W), got {arr.dtype} {arr.shape}")


@dataclass(frozen=True)
class InputKind:
    name: str  # the model kind
    channels: int  # encoder input channels
    pack_kinds: tuple[str, ...]  # stored pack conditions that feed this kind
    suffixes: tuple[str, ...]  # files `piti sample` reads for it
    read: Callable[[Path], np.ndarray]  # file -> float32 (channels, 256, 256) in [-1, 1]


KINDS: dict[str, InputKind] = {
    k.name: k
    for k in (
        InputKind("mask", 3, ("mask", "rgb"), IMAGE_SUFFIXES, read_mask),
        InputKind("sketch", 1, ("sketch",), IMAGE_SUFFIXES, read_sketch),
        InputKind("depth-normal", 6, ("depth",), (".npy",), read_depth_normal),
    )
}
CHANNELS: dict[str, int] = {k.name: k.channels for k in KINDS.values()}


def get_kind(name: str) -> InputKind:
    if name not in KINDS:
        raise InputError(f"unknown input kind {name!r}; choose one of {', '.join(KINDS)}")
    return KINDS[name]


def kind_for_pack(pack_kind: str) -> InputKind:
    """The model kind a pack's stored conditions feed."""
    for k in KINDS.values():
        if pack_kind in k.pack_kinds:
            return k
    raise InputError(f"pack condition kind {pack_kind!r} feeds no model input kind")


def kind_for_channels(channels: int) -> InputKind | None:
    return next((k for k in KINDS.values() if k.channels == channels), None)
