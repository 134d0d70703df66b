"""Image sources for evaluation (folders, HDF5 packs) and the two preprocessing conventions.

Every source yields RGB uint8 (H, W, 3) arrays in a fixed (sorted / stored) order.
A bad file raises one-line `InputError`s naming it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from piti_cli.data.images import IMAGE_SUFFIXES as IMAGE_EXTENSIONS
from piti_cli.data.images import list_images, read_image
from piti_cli.errors import InputError
from piti_cli.metrics.clip import CLIP_MEAN, CLIP_STD

HDF5_EXTENSIONS = (".h5", ".hdf5")


class FolderSource:
    """All images under a folder (recursively), sorted by relative path."""

    kind = "folder"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root}: not a folder")
        self.files = list_images(self.root, IMAGE_EXTENSIONS)
        if not self.files:
            raise InputError(f"{self.root}: no images found ({', '.join(IMAGE_EXTENSIONS)})")

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        return read_image(self.files[index], "RGB")

    def fingerprint(self) -> list:
        """File names, sizes and modification times: changes when the folder does."""
        out = []
        for p in self.files:
            st = p.stat()
            out.append([str(p.relative_to(self.root)), st.st_size, st.st_mtime_ns])
        return out


class PackSource:
    """The `images` dataset of an HDF5 pack written by `piti prep pack` (one split per file)."""

    kind = "hdf5"

    def __init__(self, path: str | Path):
        self.root = Path(path)
        try:
            with h5py.File(self.root, "r") as f:
                if "images" not in f:
                    raise InputError(f"{self.root}: HDF5 file has no 'images' dataset")
                shape, dtype = f["images"].shape, f["images"].dtype
                attrs = dict(f.attrs)
        except OSError as err:
            raise InputError(f"{self.root}: cannot read HDF5 file ({err})") from None
        if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8:
            raise InputError(f"{self.root}: 'images' must be uint8 (N, H, W, 3), found {dtype} {shape}")
        if "complete" in attrs and not bool(attrs["complete"]):
            raise InputError(f"{self.root}: pack is incomplete; rerun `piti prep pack` to finish it")
        count = int(attrs["count"]) if "count" in attrs else shape[0]
        self.count = min(count, shape[0])
        if self.count == 0:
            raise InputError(f"{self.root}: pack holds no images")
        self._file = None

    def __len__(self) -> int:
        return self.count

    def read(self, index: int) -> np.ndarray:
        if self._file is None:
            self._file = h5py.File(self.root, "r")
        return np.asarray(self._file["images"][index])

    def fingerprint(self) -> list:
        st = self.root.stat()
        return [self.root.name, st.st_size, st.st_mtime_ns, self.count]


def open_source(path: str | Path):
    p = Path(path)
    if p.is_dir():
        return FolderSource(p)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.suffix.lower() in HDF5_EXTENSIONS:
        return PackSource(p)
    raise InputError(f"{p}: expected an image folder or an HDF5 pack (.h5)")


# --- preprocessing -------------------------------------------------------------------------

CLEAN_DESCRIPTION = "clean: PIL bicubic resize to 299x299 per channel on float32 (clean-fid), values in [0,255]"
CLIP_DESCRIPTION = (
    "clip: PIL bicubic resize of the shorter side to 224, centre crop 224, /255, "
    "normalise with CLIP mean/std"
)


def clean_resize(image: np.ndarray, size: int = 299) -> np.ndarray:
    """clean-fid "clean" mode: each channel as a float32 'F' image, bicubic, clip to [0, 255].

    Returns float32 (3, size, size).
    """
    out = np.empty((3, size, size), dtype=np.float32)
    for c in range(3):
        channel = Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32), mode="F")
        out[c] = np.asarray(channel.resize((size, size), resample=Image.BICUBIC))
    return np.clip(out, 0.0, 255.0, out=out)


def clip_preprocess(image: np.ndarray, size: int = 224) -> np.ndarray:
    """CLIP's transform: shorter side → size (bicubic, uint8), centre crop, scale, normalise."""
    im = Image.fromarray(np.asarray(image, dtype=np.uint8))
    w, h = im.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), resample=Image.BICUBIC)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(CLIP_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(CLIP_STD, dtype=np.float32)[:, None, None]
    return (x - mean) / std
