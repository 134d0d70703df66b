"""`piti prep masks`: label-id maps -> the colour masks the official mask models consume.

COCO-Stuff stuffthingmaps (ids 0..181, 255 unlabeled) and ADE20K annotations (0 other,
1..150) are read as raw indices and coloured with `piti_cli.data.palettes`.  Sizes are kept;
the pack step (or the model loader) does the 256x256 resize.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from piti_cli.data.images import list_images, read_image, save_png
from piti_cli.data.palettes import PALETTES
from piti_cli.errors import InputError

MAX_ID = {"coco-stuff": 181, "ade20k": 150}
IGNORE = {"coco-stuff": (255,), "ade20k": ()}


def labels_to_color(labels: np.ndarray, dataset: str, source: str = "labels") -> np.ndarray:
    """(H, W) raw ids -> (H, W, 3) uint8 colour mask; InputError on ids the dataset lacks."""
    if dataset not in PALETTES:
        raise InputError(f"unknown mask dataset {dataset!r}; choose coco-stuff or ade20k")
    labels = np.asarray(labels)
    bad = (labels > MAX_ID[dataset]) & ~np.isin(labels, IGNORE[dataset])
    if bad.any() or labels.min(initial=0) < 0:
        raise InputError(f"{source}: label id {int(labels[bad][0]) if bad.any() else int(labels.min())} "
                         f"is not a class of {dataset}")
    return PALETTES[dataset]()[labels]


def convert_masks(
    labels_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    dataset: str = "coco-stuff",
    *,
    overwrite: bool = False,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Colour every label PNG under `labels_dir` into `out_dir` (same relative paths, .png).

    Finished outputs are skipped unless `overwrite`; unreadable or out-of-range label maps are
    skipped and listed (`strict`: the first one raises). Returns
    ``{"written": n, "skipped": n, "total": n, "failed": [(path, why)]}``.
    """
    if dataset not in PALETTES:
        raise InputError(f"unknown mask dataset {dataset!r}; choose coco-stuff or ade20k")
    labels_dir, out_dir = Path(labels_dir), Path(out_dir)
    files = list_images(labels_dir, (".png",))
    if not files:
        raise InputError(f"{labels_dir}: no label PNGs found")
    written = skipped = 0
    failed: list[tuple[str, str]] = []
    for i, path in enumerate(files):
        target = out_dir / path.relative_to(labels_dir).with_suffix(".png")
        if target.exists() and not overwrite:
            skipped += 1
        else:
            try:
                colour = labels_to_color(read_image(path, "labels"), dataset, str(path))
            except InputError as err:
                if strict:
                    raise
                failed.append((str(path), str(err)))
            else:
                save_png(colour, target)
                written += 1
        if progress:
            progress(i + 1, len(files))
    return {"written": written, "skipped": skipped, "total": len(files), "failed": failed}
