"""`piti prep hed`: photos -> binary white-on-black sketch PNGs, as PITI's preprocess_sketch.

Each image is squash-resized to 256x256 (bicubic), run through HED (or the weight-free
gradient backend), binarised with ``p > 0.6`` and saved as an 8-bit PNG (edges 255, rest 0)
at the same relative path under OUT with a .png suffix.  Finished outputs are skipped, so an
interrupted run resumes; unreadable inputs are skipped and reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from piti_cli.data.images import list_images, read_image, resize_bicubic, save_png
from piti_cli.errors import InputError

THRESHOLD = 0.6
BACKENDS = ("hed", "gradient")


@dataclass
class SketchReport:
    written: int = 0
    skipped_existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    weights: str | None = None


def edges_from_probabilities(prob: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Probabilities -> uint8 white-on-black edge picture (255 where prob > threshold)."""
    return np.where(prob > threshold, 255, 0).astype(np.uint8)


def make_sketches(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backend: str = "hed",
    weights: str | None = "auto",
    device: str = "cpu",
    batch_size: int = 8,
    threshold: float = THRESHOLD,
    overwrite: bool = False,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SketchReport:
    """Write a sketch PNG for every image under `src` (a folder or one file) into `out`."""
    src, out = Path(src), Path(out)
    if backend not in BACKENDS:
        raise InputError(f"unknown HED backend {backend!r}; choose {', '.join(BACKENDS)}")
    if src.is_file():
        pairs = [(src, out / (src.stem + ".png"))]
    else:
        pairs = [(p, out / p.relative_to(src).with_suffix(".png")) for p in list_images(src)]
    if not pairs:
        raise InputError(f"{src}: no images found")
    report = SketchReport()
    todo = []
    for p, t in pairs:
        if t.exists() and not overwrite:
            report.skipped_existing += 1
        else:
            todo.append((p, t))
    total, done = len(pairs), report.skipped_existing
    if progress:
        progress(done, total)
    if not todo:
        return report

    model, dev = _hed(backend, weights, device)
    report.weights = getattr(model, "weights_path", None)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        imgs, targets = [], []
        for p, t in chunk:
            try:
                imgs.append(resize_bicubic(read_image(p, "RGB"), 256))
                targets.append(t)
            except InputError as err:
                if strict:
                    raise
                report.failed.append((str(p), str(err)))
        if imgs:
            for edge, t in zip(_edges(np.stack(imgs), model, dev, threshold), targets):
                save_png(edge, t)
                report.written += 1
        done += len(chunk)
        if progress:
            progress(done, total)
    return report


def _hed(backend: str, weights, device):
    """(the HED network or None for the gradient backend, its device)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown HED backend {backend!r}; choose {', '.join(BACKENDS)}")
    if backend != "hed":
        return None, None
    from piti_cli.data_prep.hed import load_hed
    from piti_cli.runtime import resolve_device

    dev = resolve_device(device)
    return load_hed(weights, dev), dev


def _edges(batch: np.ndarray, model, dev, threshold: float) -> np.ndarray:
    if model is not None:
        from piti_cli.data_prep.hed import hed_probabilities

        return edges_from_probabilities(hed_probabilities(model, batch, dev), threshold)
    from piti_cli.data_prep.hed import gradient_probabilities

    return edges_from_probabilities(gradient_probabilities(batch), threshold)


def sketch_batch(photos: np.ndarray, backend: str = "hed", weights: str | None = "auto", device: str = "cpu",
                 threshold: float = THRESHOLD) -> np.ndarray:
    """(B, H, W, 3) uint8 photos → (B, 256, 256) uint8 sketches, as `make_sketches` writes them."""
    model, dev = _hed(backend, weights, device)
    return _edges(np.stack([resize_bicubic(np.ascontiguousarray(p), 256) for p in photos]), model, dev, threshold)
