"""`piti prep depth`: DIODE scans -> the official 6-channel depth condition pictures.

DIODE layout: ``{train,val}/{indoors,outdoor}/scene_*/scan_*/`` holding, per view,
``X.png``, ``X_depth.npy`` (H, W, 1), ``X_depth_mask.npy`` (H, W) and ``X_normal.npy``
(H, W, 3).  As in PITI's preprocess_depth: the image is squash-resized to 256 (bicubic), depth,
mask and normals with nearest neighbour; then ``X_normal.png`` = ``(n - min) / 2`` and
``X_depth.png`` = jet of log depth (see `piti_cli.data.conditions`).  The model condition is
the 6 channels normal RGB + depth RGB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from piti_cli.data.images import read_image, resize_bicubic, resize_nearest, save_png
from piti_cli.data.conditions import depth_to_rgb, normal_to_rgb
from piti_cli.errors import InputError

SUFFIXES = {"depth": "_depth.npy", "mask": "_depth_mask.npy", "normal": "_normal.npy"}


def list_diode(root: str | os.PathLike) -> list[Path]:
    """Sorted view stems (path without suffix) of every ``*_depth.npy`` under `root`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    return sorted(Path(str(p)[: -len(SUFFIXES["depth"])]) for p in root.rglob("*" + SUFFIXES["depth"]))


def diode_missing(stem: Path) -> list[str]:
    """Names of the files of view `stem` that do not exist."""
    files = [stem.with_name(stem.name + ".png")] + [stem.with_name(stem.name + s) for s in SUFFIXES.values()]
    return [f.name for f in files if not f.is_file()]


def _load_npy(path: Path) -> np.ndarray:
    """A numeric array from `path`, or one InputError (unreadable, pickled, strings, …)."""
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as err:
        raise InputError(f"{path}: unreadable array ({type(err).__name__}: {err})") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{path}: holds {array.dtype} values, not numbers")
    return array


def load_diode_256(stem: Path) -> dict:
    """One DIODE view, resized: image uint8 (256,256,3), depth f32, depth_valid u8, normal f32 (.,.,3)."""
    missing = diode_missing(stem)
    if missing:
        raise InputError(f"{stem}: missing {', '.join(missing)}")
    rgb = read_image(stem.with_name(stem.name + ".png"), "RGB")
    depth = _load_npy(stem.with_name(stem.name + SUFFIXES["depth"])).astype(np.float32).squeeze()
    mask = _load_npy(stem.with_name(stem.name + SUFFIXES["mask"])).astype(np.float32).squeeze()
    normal = _load_npy(stem.with_name(stem.name + SUFFIXES["normal"])).astype(np.float32)
    if depth.ndim != 2 or mask.shape != depth.shape or normal.shape != depth.shape + (3,):
        raise InputError(f"{stem}: depth {depth.shape}, mask {mask.shape}, normal {normal.shape} do not match")
    for name, arr in (("depth", depth), ("mask", mask), ("normal", normal)):
        # the depth picture's scale is a percentile of the whole map: one NaN spoils every pixel
        bad = int(arr.size - np.isfinite(arr).sum())
        if bad:
            raise InputError(f"{stem.with_name(stem.name + SUFFIXES[name])}: {bad} of {arr.size} values "
                             "are NaN or infinite")
    return {
        "image": resize_bicubic(rgb, 256),
        "original_size": rgb.shape[:2],
        "depth": resize_nearest(depth, 256).astype(np.float32),
        "depth_valid": (resize_nearest(mask, 256) > 0).astype(np.uint8),
        "normal": resize_nearest(normal, 256).astype(np.float32),
    }


@dataclass
class DepthReport:
    written: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def convert_depth(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DepthReport:
    """Write ``X.png``, ``X_depth.png``, ``X_normal.png`` (256x256) per DIODE view, mirrored under `out`."""
    src, out = Path(src), Path(out)
    stems = list_diode(src)
    if not stems:
        raise InputError(f"{src}: no DIODE views (*_depth.npy) found")
    report = DepthReport()
    for i, stem in enumerate(stems):
        base = out / stem.relative_to(src)
        targets = [base.with_name(base.name + s) for s in (".png", "_depth.png", "_normal.png")]
        if not overwrite and all(t.exists() for t in targets):
            report.skipped_existing += 1
        else:
            try:
                v = load_diode_256(stem)
            except InputError as err:
                if strict:
                    raise
                report.failed.append((str(stem), str(err)))
            else:
                # the image last: its presence marks a finished view
                save_png(normal_to_rgb(v["normal"]), targets[2])
                save_png(depth_to_rgb(v["depth"], v["depth_valid"]), targets[1])
                save_png(v["image"], targets[0])
                report.written += 1
        if progress:
            progress(i + 1, len(stems))
    return report
