"""Procedural scenes whose label mask determines the picture (the demo models' data, tests).

Each scene is a background class plus a few rectangles and discs of other classes. Every
class has its own colour and texture (flat, horizontal stripes, checker, dots), so a model
that follows its condition paints each masked region with that class's colour. Scenes are
rendered at 256×256 (the pack's size; the base model sees them at 64×64) and written as a
`piti prep pack`-style HDF5 file (layout: `piti_cli.data.schema`) with a colour-mask palette.
`colour_accuracy` measures how well pictures follow their masks. `caption` is the scenes'
stand-in for a text caption (what a tiny GLIDE is pretrained on): the names of the classes in
a coarse grid, read row by row — "sky sky sky sky / grass brick …" — the way a real caption
says "a brick wall below the sky" without drawing the outline. A pack from the command
line: `python -m recipes.scenes OUT.h5 --count 512`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from piti_cli.data.schema import FORMAT_NAME, FORMAT_VERSION, RESIZE_POLICY
from piti_cli.io_utils import atomic_path

CLASS_NAMES = ("sky-other", "grass", "wall-brick", "sand")
# Their COCO-Stuff ids: the colour masks use those classes' COCO colours, so scene masks are
# valid inputs for `piti sample` (which checks mask colours against the COCO-Stuff palette).
COCO_IDS = (156, 123, 170, 153)
# image colours of the classes (RGB), far apart so the nearest one names the class
CLASS_COLOURS = np.array([[40, 90, 220], [40, 170, 50], [190, 50, 40], [230, 210, 90]], dtype=np.float64)
# condition palette (the colour mask): PASCAL-VOC colour-map entry id + 1, as COCO-Stuff masks
MASK_COLOURS = np.array([[192, 96, 128], [96, 64, 192], [192, 160, 64], [64, 224, 0]], dtype=np.uint8)
SIZE = 256


def texture(cls: int, size: int = SIZE) -> np.ndarray:
    """(size, size) multiplicative texture in [0.8, 1.2] for class `cls`."""
    y, x = np.mgrid[0:size, 0:size]
    if cls == 0:
        return np.ones((size, size))
    if cls == 1:
        return 1.0 + 0.2 * np.sign(np.sin(2 * np.pi * y / 32))
    if cls == 2:
        return 1.0 + 0.2 * ((x // 32 + y // 32) % 2 * 2 - 1)
    return 1.0 + 0.2 * ((((x % 32) - 16) ** 2 + ((y % 32) - 16) ** 2 < 64) * 2 - 1)


def random_mask(rng: np.random.Generator, size: int = SIZE, k: int = len(CLASS_NAMES)) -> np.ndarray:
    mask = np.full((size, size), rng.integers(k), dtype=np.uint8)
    y, x = np.mgrid[0:size, 0:size]
    for _ in range(rng.integers(2, 5)):
        cls = rng.integers(k)
        if rng.random() < 0.5:
            h, w = rng.integers(48, 160, size=2)
            top, left = rng.integers(0, size - h), rng.integers(0, size - w)
            mask[top:top + h, left:left + w] = cls
        else:
            r = rng.integers(32, 90)
            cy, cx = rng.integers(0, size, size=2)
            mask[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = cls
    return mask


def render(mask: np.ndarray) -> np.ndarray:
    """Class mask (H, W) -> uint8 RGB picture (H, W, 3)."""
    out = np.zeros((*mask.shape, 3))
    for cls in range(len(CLASS_NAMES)):
        where = mask == cls
        out[where] = CLASS_COLOURS[cls] * texture(cls, mask.shape[0])[where][:, None]
    return np.clip(out, 0, 255).astype(np.uint8)


def palette() -> np.ndarray:
    pal = np.zeros((256, 3), dtype=np.uint8)
    pal[: len(MASK_COLOURS)] = MASK_COLOURS
    return pal


CAPTION_GRID = 4  # 4 × 4 words: the tiny GLIDE's 16-token context


def caption(mask: np.ndarray, grid: int = CAPTION_GRID) -> np.ndarray:
    """Token ids (grid², int32) of a mask's caption: the most common class of each cell of a
    grid × grid partition, row by row; token id = class id + 1 (0 is never used)."""
    size = mask.shape[0]
    cells = mask.reshape(grid, size // grid, grid, size // grid).transpose(0, 2, 1, 3).reshape(grid * grid, -1)
    counts = np.stack([(cells == c).sum(1) for c in range(len(CLASS_NAMES))], axis=1)
    return (counts.argmax(1) + 1).astype(np.int32)


def write_pack(path: str | Path, images: np.ndarray, masks: np.ndarray, *, pal: np.ndarray | None = None,
               class_names=CLASS_NAMES, dataset: str = "generic", captions: np.ndarray | None = None) -> Path:
    """A complete mask pack in the schema of `piti_cli.data.schema`, written atomically;
    `captions` (N, L) int32 token ids, -1 padded, are stored when given."""
    path = Path(path)
    n = len(images)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images, chunks=(1, *images.shape[1:]))
        f.create_dataset("conditions/mask", data=masks, chunks=(1, *masks.shape[1:]))
        f.create_dataset("source_ids", data=np.array([f"scene_{i:05d}" for i in range(n)], dtype=h5py.string_dtype()))
        f.create_dataset("original_sizes", data=np.full((n, 2), images.shape[1], dtype=np.int32))
        if captions is not None:
            f.create_dataset("captions", data=np.asarray(captions, dtype=np.int32))
        f["meta/palette"] = palette() if pal is None else pal
        f["meta/class_names"] = np.array(list(class_names), dtype=h5py.string_dtype())
        f.attrs.update({
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": dataset, "split": "train",
            "condition": "mask", "resize_policy": RESIZE_POLICY, "config": json.dumps({"source": "scenes"}),
            "count": n, "complete": True, "skipped": "[]",
        })
    return path


def make_scenes(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.stack([random_mask(rng) for _ in range(count)])
    images = np.stack([render(m) for m in masks])
    return images, masks


def layout_bound(masks: np.ndarray, grid: int, size: int = 64) -> float:
    """The `colour_accuracy` of pictures that paint each cell of a grid × grid partition with
    the cell's most common class (its `caption` word): the best a model that knows the layout
    only on that grid can score. masks (B, S, S) class ids; scored at `size` px."""
    step = masks.shape[-1] // size
    scores = []
    for mask in masks:
        words = (caption(mask, grid) - 1).reshape(grid, grid)
        painted = np.repeat(np.repeat(words, size // grid, 0), size // grid, 1)
        scores.append((painted == mask[step // 2::step, step // 2::step]).mean())
    return float(np.mean(scores))


def colour_accuracy(images: torch.Tensor, masks: np.ndarray) -> float:
    """images (B, 3, 64, 64) in [-1, 1]; masks (B, 256, 256) class ids."""
    rgb = ((images.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).double().numpy()
    dist = ((rgb[..., None, :] - CLASS_COLOURS[None, None, None]) ** 2).sum(-1)
    pred = dist.argmin(-1)
    step = masks.shape[-1] // images.shape[-1]
    small = masks[:, step // 2::step, step // 2::step]
    return float((pred == small).mean())


def colour_kept(pictures: torch.Tensor, originals: torch.Tensor, masks: np.ndarray) -> float:
    """How much of the originals' colour the pictures keep: the chroma (max − min of R, G, B)
    of each class region's mean colour, area-weighted, in `pictures` over `originals`; both
    (B, 3, H, W) in [-1, 1], `masks` (B, S, S) class ids (sampled to H × W as in
    `colour_accuracy`). Pale or grey pictures score below 1; pixel noise averages out."""
    step = masks.shape[-1] // pictures.shape[-1]
    small = masks[:, step // 2::step, step // 2::step]

    def chroma(x: torch.Tensor) -> float:
        x = x.double().clamp(-1, 1).numpy()
        total = 0.0
        for picture, mask in zip(x, small):
            for cls in np.unique(mask):
                mean = picture[:, mask == cls].mean(1)
                total += (mean.max() - mean.min()) * (mask == cls).sum()
        return total
    return chroma(pictures) / chroma(originals)
