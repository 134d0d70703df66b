"""Conditions for sampling: from an image file, a folder, or a packed HDF5 split.

Preprocessing follows the official loaders, per input kind:
- mask: an RGB colour mask (COCO-Stuff colours), squash-resized to 256 with nearest;
- sketch: binary edges (white on black), nearest-resized to 256, then the L1 distance
  transform of the inverted sketch, one channel;
- depth-normal: a `.npy` holding the 6-channel picture (normals RGB then depth-jet RGB, uint8
  (H, W, 6), or float (6, H, W) in [-1, 1]).
Every condition becomes float32 (C, 256, 256) in [-1, 1], then the encoder's input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from piti_cli.data import conditions as C
from piti_cli.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
SIZE = 256
PACK_KINDS = {"mask": "mask", "sketch": "sketch", "depth": "depth-normal", "rgb": "mask"}


@dataclass
class Condition:
    name: str  # output files are named after it
    array: np.ndarray  # float32 (C, 256, 256) in [-1, 1]


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputError(f"{path}: unreadable image ({type(err).__name__})") from None


def _resize_nearest(arr: np.ndarray, size: int = SIZE) -> np.ndarray:
    import cv2

    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    return cv2.resize(arr, (size, size), interpolation=cv2.INTER_NEAREST)


def mask_from_file(path: Path) -> np.ndarray:
    from piti_cli.data.palettes import decode_color_mask

    rgb = _read_image(path)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InputError(f"{path}: a mask must be an RGB colour mask, got {rgb.shape[-1] if rgb.ndim == 3 else 1} channel(s)")
    rgb = np.ascontiguousarray(rgb[..., :3])
    try:
        decode_color_mask(rgb, "coco-stuff")
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None
    return C.to_unit_range(_resize_nearest(rgb))


def sketch_from_file(path: Path) -> np.ndarray:
    arr = _read_image(path)
    if arr.ndim == 3:
        channels = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
        if not (channels == channels[..., :1]).all():
            raise InputError(f"{path}: a sketch must be a grey (white-on-black) image, got {arr.shape[2]} differing channels")
        arr = channels[..., 0]
    edges = _resize_nearest(arr.astype(np.uint8)) > 127
    return C.sketch_condition(edges)


def depth_normal_from_file(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable .npy ({err})") from None
    if arr.ndim == 3 and arr.shape[-1] == 6 and arr.dtype == np.uint8:
        return C.to_unit_range(_resize_nearest(arr))
    if arr.ndim == 3 and arr.shape[0] == 6 and np.issubdtype(arr.dtype, np.floating):
        hwc = np.ascontiguousarray(arr.transpose(1, 2, 0).astype(np.float32))
        return np.ascontiguousarray(_resize_nearest(hwc).transpose(2, 0, 1))
    raise InputError(f"{path}: depth-normal input must be uint8 (H, W, 6) or float (6, H, W), got {arr.dtype} {arr.shape}")


_READERS = {"mask": mask_from_file, "sketch": sketch_from_file, "depth-normal": depth_normal_from_file}


def _suffixes(kind: str) -> set[str]:
    return {".npy"} if kind == "depth-normal" else IMAGE_SUFFIXES


def load_conditions(spec: str | Path, kind: str, limit: int | None = None) -> list[Condition]:
    """Conditions from a file, a folder (sorted by name), or `pack.h5` / `pack.h5:N-M`."""
    text = str(spec)
    path = Path(text.split(":")[0] if ".h5" in text else text)
    if path.suffix in (".h5", ".hdf5"):
        return _from_pack(path, text, kind, limit)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _suffixes(kind))
        if not files:
            raise InputError(f"{path}: no {kind} inputs ({', '.join(sorted(_suffixes(kind)))}) in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"{path}: no such file or folder")
    files = files[:limit] if limit else files
    return [Condition(p.stem, _READERS[kind](p)) for p in files]


def _from_pack(path: Path, spec: str, kind: str, limit: int | None) -> list[Condition]:
    from piti_cli.data.reader import PackedDataset

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    dataset = PackedDataset(path)
    pack_kind = PACK_KINDS.get(dataset.kind)
    if pack_kind != kind:
        raise InputError(f"{path}: holds {dataset.kind} conditions, but the model takes {kind}")
    start, stop = 0, len(dataset)
    if ":" in spec.split(".h5", 1)[1]:
        rng = spec.rsplit(":", 1)[1]
        try:
            start, stop = (int(x) for x in rng.split("-")) if "-" in rng else (int(rng), int(rng) + 1)
        except ValueError:
            raise InputError(f"{spec}: expected pack.h5:START-STOP") from None
    indices = range(max(0, start), min(stop, len(dataset)))
    if limit:
        indices = indices[:limit]
    out = []
    for i in indices:
        item = dataset[i]
        out.append(Condition(str(item.get("source_id", i)), dataset.condition_tensor(item["condition"]).numpy()))
    return out


def fit_to_encoder(array: np.ndarray, size: int) -> np.ndarray:
    """Resize a 256×256 condition to the encoder's input size (tiny presets use less)."""
    if array.shape[-1] == size:
        return array
    return np.ascontiguousarray(_resize_nearest(array.transpose(1, 2, 0), size).reshape(size, size, -1).transpose(2, 0, 1))
