"""Image file helpers shared by the prep producers: listing, decoding, resizing, saving."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from piti_cli.errors import InputError
from piti_cli.io_utils import atomic_path

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
SIZE = 256


def list_images(root: str | os.PathLike, exts: Iterable[str] = IMAGE_EXTS) -> list[Path]:
    """Image files under `root` (recursive), sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    exts = tuple(e.lower() for e in exts)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; InputError names the file if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except Exception as err:  # PIL raises many types for broken files
        raise InputError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as raw (H, W) indices — never through a greyscale conversion.

    'L', 'P' (palette index), 'I' and 'I;16' images give their stored values; an RGB image is
    refused because its values are colours, not class ids.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                arr = np.asarray(img)
            elif img.mode in ("RGB", "RGBA"):
                arr = np.asarray(img)[..., :3]
                if (arr == arr[..., :1]).all():
                    arr = arr[..., 0]  # ids saved as grey-in-RGB: every channel carries the id
                else:
                    raise InputError(f"{path}: colour image, expected a label map of class ids")
            else:
                raise InputError(f"{path}: unsupported label PNG mode {img.mode}")
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: unreadable label map ({type(err).__name__}: {err})") from None
    return arr.astype(np.int64)


def resize_image(rgb: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Squash-resize (no crop) an RGB uint8 image to size x size, bicubic (PIL)."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC))


def resize_nearest(arr: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Squash-resize a label/depth/normal map with nearest neighbour (OpenCV's rule, as upstream)."""
    import cv2

    a = np.asarray(arr)
    if a.dtype == np.int64:
        a = a.astype(np.int32)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    out = cv2.resize(a, (size, size), interpolation=cv2.INTER_NEAREST)
    if a.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_png(arr: np.ndarray, target: str | os.PathLike) -> None:
    """Write a uint8 array as PNG atomically (temp file + rename)."""
    data = png_bytes(np.ascontiguousarray(arr))
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
