"""Pictures: the one place that reads, resizes, converts and writes them.

Every resize follows PIL's rules, because the official PITI loaders resize with PIL:
conditions (colour masks, label maps, sketches, depth/normal pictures) with
``Image.resize(..., NEAREST)``, photos with ``Image.resize(..., BICUBIC)`` on the uint8
picture, which stays uint8 (the base model's 64-px target is the 256² uint8 photo, PIL
BICUBIC to 64², then normalised). OpenCV's and torch's nearest sample other grids
(``cv2.INTER_NEAREST`` and torch ``mode="nearest"`` take ``floor(x·scale)``, PIL the pixel
centre ``floor((x + ½)·scale)``), so neither is used for model inputs.

Value conventions: a model picture is float32 (C, H, W) in [-1, 1], ``x / 127.5 − 1`` of the
8-bit picture (`to_unit`); back to 8 bits rounds as torchvision's ``save_image`` does,
``floor((x + 1)·127.5 + ½)`` clamped to [0, 255] (`to_uint8`), and refuses NaN/Inf: a
non-finite number never becomes a picture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, PngImagePlugin

from piti_cli.errors import InputError, PitiError
from piti_cli.io_utils import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm")
LABEL_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L")


def read_image(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """Decode a picture file to a numpy array; any failure is one `InputError` naming the file.

    ``mode=None`` keeps the stored channels (palette pictures become RGB): (H, W) or (H, W, C);
    ``mode="raw"`` keeps even palette indices. ``mode="RGB"`` / ``"L"`` converts. ``mode="labels"`` returns raw stored values (H, W) int64 of
    a label map ('L', 'P' indices, 'I', 'I;16', or grey-in-RGB), never through a colour conversion.
    Pictures whose header claims more pixels than PIL's decompression-bomb limit are refused
    before they are decoded.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if mode == "labels":
                return _labels(im, path)
            if mode == "raw":
                return np.asarray(im)
            if mode is not None:
                return np.asarray(im.convert(mode))
            if im.mode in ("P", "PA"):
                im = im.convert("RGB")
            return np.asarray(im)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{path}: picture too large (its header claims more than "
                         f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a picture") from None
    except MemoryError:
        raise InputError(f"{path}: picture too large to decode in memory") from None
    except Exception as err:  # PIL raises many types for broken files
        if err.__class__.__name__ == "UnidentifiedImageError":
            raise InputError(f"{path}: unreadable image (not a picture format PIL reads)") from None
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: unreadable image ({detail})") from None


def _labels(im: Image.Image, path) -> np.ndarray:
    if im.mode in LABEL_MODES:
        return np.asarray(im).astype(np.int64)
    if im.mode in ("RGB", "RGBA"):
        arr = np.asarray(im)[..., :3]
        if (arr == arr[..., :1]).all():
            return arr[..., 0].astype(np.int64)  # ids saved as grey-in-RGB
        raise InputError(f"{path}: colour image, expected a label map of class ids")
    raise InputError(f"{path}: unsupported label map mode {im.mode}")


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


def _pil_mode(dtype: np.dtype) -> tuple[str, np.dtype]:
    if dtype == np.uint8 or dtype == np.bool_:
        return "L", np.dtype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        return "I", np.dtype(np.int32)
    if np.issubdtype(dtype, np.floating):
        return "F", np.dtype(np.float32)
    raise TypeError(f"cannot resize arrays of {dtype}")


def resize_nearest(array: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """PIL NEAREST squash-resize of (H, W) or (H, W, C) to ``size`` (int → square, or (h, w)).

    Each channel goes through PIL itself in a mode that holds its values exactly ('L' for
    uint8/bool, 'I' for integers, 'F' for floats), so labels, 0/1 edges, 8-bit pictures and float
    conditions keep their values and dtype; only positions are resampled.
    """
    a = np.asarray(array)
    h, w = _hw(size)
    if a.shape[:2] == (h, w):
        return a
    if a.ndim == 3:
        return np.stack([resize_nearest(a[..., c], (h, w)) for c in range(a.shape[2])], axis=-1)
    mode, store = _pil_mode(a.dtype)
    out = Image.fromarray(np.ascontiguousarray(a.astype(store, copy=False)), mode).resize((w, h), Image.NEAREST)
    return np.asarray(out).astype(a.dtype, copy=False)


def resize_nearest_chw(array: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """`resize_nearest` for channel-first (C, H, W) or batched (B, C, H, W) arrays."""
    a = np.asarray(array)
    if a.ndim == 4:
        return np.stack([resize_nearest_chw(x, size) for x in a])
    if a.shape[1:] == _hw(size):
        return a
    return np.ascontiguousarray(resize_nearest(a.transpose(1, 2, 0), size).transpose(2, 0, 1))


def fit_condition(cond, size: int):
    """A condition (C, H, W) or a batch (B, C, H, W) at size × size, PIL nearest (values kept
    exactly): the one way every path (sampling, editing, training, the recipes) brings a 256²
    condition to an encoder's input size (the tiny presets take less; the official 256).
    A numpy array stays one; a torch tensor comes back with its dtype and device. Unchanged
    when it already fits."""
    if tuple(cond.shape[-2:]) == _hw(size):
        return cond
    if isinstance(cond, np.ndarray):
        return resize_nearest_chw(cond, size)
    return cond.new_tensor(resize_nearest_chw(cond.detach().float().cpu().numpy(), size))  # a torch tensor


def resize_bicubic(picture: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """PIL BICUBIC squash-resize of a uint8 (H, W) or (H, W, 3) picture; stays uint8."""
    a = np.asarray(picture)
    h, w = _hw(size)
    if a.dtype != np.uint8:
        raise TypeError(f"resize_bicubic takes uint8 pictures, got {a.dtype}")
    if a.shape[:2] == (h, w):
        return a
    return np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((w, h), Image.BICUBIC))


def to_unit(picture: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) → float32 (C, H, W) in [-1, 1]: ``x / 127.5 − 1``."""
    arr = np.asarray(picture, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1) / 127.5 - 1.0)


def to_uint8(x) -> np.ndarray:
    """(C, H, W) in [-1, 1] (tensor or array) → uint8 (H, W, C), rounding as torchvision's
    ``save_image``. Raises `PitiError` on NaN/Inf instead of making a black picture."""
    arr = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise PitiError("the model produced non-finite values (NaN/Inf); no picture written "
                        "(try --precision fp32, or check the checkpoint)")
    out = np.floor((np.clip(arr, -1.0, 1.0) + 1.0) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


def condition_picture(condition: np.ndarray) -> np.ndarray:
    """A (C, H, W) model condition in [-1, 1] shown as a uint8 RGB picture: a 1-channel
    sketch in grey, otherwise its first three channels (the mask colours, the normals)."""
    c = np.asarray(condition)
    c = np.repeat(c[:1], 3, axis=0) if c.shape[0] < 3 else c[:3]
    return to_uint8(c)


def make_grid(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Rows of uint8 (H, W, 3) pictures → one uint8 picture; every cell is nearest-resized to
    the largest picture's size, short rows are padded with black."""
    cells = [p for row in rows for p in row]
    if not cells:
        raise ValueError("make_grid needs at least one picture")
    h = max(p.shape[0] for p in cells)
    w = max(p.shape[1] for p in cells)
    columns = max(len(row) for row in rows)
    canvas = np.zeros((len(rows) * h, columns * w, 3), dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, pic in enumerate(row):
            pic = np.asarray(pic)
            pic = np.repeat(pic[..., None], 3, axis=2) if pic.ndim == 2 else pic[..., :3]
            canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = resize_nearest(pic, (h, w))
    return canvas


def png_info(text: dict[str, str] | None) -> PngImagePlugin.PngInfo | None:
    if not text:
        return None
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, str(value))  # tEXt, or iTXt where the value is not Latin-1
    return info


def save_png(picture: np.ndarray, path: str | os.PathLike, text: dict[str, str] | None = None) -> Path:
    """Write a uint8 picture as PNG atomically (temp file + rename); ``text`` goes into the
    PNG's text chunks (settings, provenance). Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(picture)).save(tmp, format="PNG", pnginfo=png_info(text))
    return path


def png_text(path: str | os.PathLike) -> dict[str, str]:
    """The text chunks of a PNG file ({} when it has none or cannot be read)."""
    try:
        with Image.open(path) as im:
            im.load()
            return dict(getattr(im, "text", {}) or {})
    except Exception:  # an unreadable or partial file simply carries no settings
        return {}


def list_images(root: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES, recursive: bool = True) -> list[Path]:
    """Picture files under a folder (by suffix, case-insensitive), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    suffixes = tuple(s.lower() for s in suffixes)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in suffixes)
