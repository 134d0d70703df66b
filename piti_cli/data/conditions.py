"""Turn stored conditions into the images and tensors the official PITI models consume.

Everything here is pure numpy (OpenCV for the sketch distance transform) and works on one
sample at a time, so DataLoader workers can call it.  Value conventions follow the official
data loaders: every model input is a float32 (C, H, W) array in [-1, 1] (``x / 127.5 - 1`` of
the 8-bit picture the official preprocessing saved).

* mask   -> (3, H, W): the colour mask ``palette[labels]``.
* sketch -> (1, H, W): L1 distance (3x3 mask) from each pixel to the nearest edge pixel,
  clipped to 255 — the official sketch loader computes it on the fly from the binary map.
* depth  -> (6, H, W): normals picture then depth picture (see `normal_to_rgb`,
  `depth_to_rgb`), the order of the official depth loader.
"""

from __future__ import annotations

import cv2
import numpy as np

from piti_cli.data.images import to_unit

# Piecewise-linear segments of the "jet" colour map (x, value) per channel.
_JET = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)

MIN_DEPTH = 0.5
MAX_DEPTH_CAP = 300.0


def jet_lut(n: int = 256) -> np.ndarray:
    """(n, 3) float64 lookup table of the jet colour map sampled at i / (n - 1)."""
    x = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(x, *zip(*seg)) for seg in _JET], axis=1)


_LUT = jet_lut(256)


def depth_to_rgb(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) metres + validity -> (H, W, 3) uint8 jet picture of log depth, invalid = black.

    Official recipe: ``max = min(300, 99th percentile of the whole map)``, depth clipped to
    [0.5, max], log taken, normalised by ``log(max + 1.01)`` (vmin 0) and coloured with a
    256-entry jet table; 8-bit values are truncated (``floor(v * 255)``) like the saved PNGs.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.asarray(valid) > 0
    max_depth = min(MAX_DEPTH_CAP, float(np.percentile(depth, 99)))
    clipped = np.clip(depth, MIN_DEPTH, max(max_depth, MIN_DEPTH))
    logd = np.log(np.where(valid, clipped, 1.0))
    norm = logd / np.log(max_depth + 1.01)
    idx = np.clip(np.floor(norm * 256), 0, 255).astype(np.int64)
    rgb = (_LUT[idx] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def normal_to_rgb(normal: np.ndarray) -> np.ndarray:
    """(H, W, 3) unit normals -> (H, W, 3) uint8 picture ``(n - min(n)) / 2`` clipped to [0, 1].

    As in the official script, pixels whose normal is all zero (no data) are first set to the
    global minimum so that they come out black; ``min`` is over the whole array.
    """
    n = np.asarray(normal, dtype=np.float32)
    lo = n.min()
    n = n + (n.sum(axis=2, keepdims=True) == 0).astype(np.float32) * lo
    viz = np.clip((n - n.min()) / 2.0, 0.0, 1.0)
    return (viz * 255).astype(np.uint8)


def sketch_distance(edges: np.ndarray) -> np.ndarray:
    """(H, W) binary edge map (non-zero = edge) -> uint8 L1 distance to the nearest edge, <= 255."""
    background = np.where(np.asarray(edges) > 0, 0, 255).astype(np.uint8)
    dist = cv2.distanceTransform(background, cv2.DIST_L1, 3)
    return np.clip(dist, 0, 255).astype(np.uint8)


def mask_condition(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) stored label ids -> (3, H, W) float32 colour-mask condition in [-1, 1]."""
    return to_unit(np.asarray(palette, dtype=np.uint8)[np.asarray(labels, dtype=np.int64)])


def sketch_condition(edges: np.ndarray) -> np.ndarray:
    """(H, W) binary edges -> (1, H, W) float32 distance-transform condition in [-1, 1]."""
    return to_unit(sketch_distance(edges))


def depth_condition(depth: np.ndarray, valid: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Depth (H, W), validity (H, W), normals (H, W, 3) -> (6, H, W) float32 in [-1, 1]."""
    return np.concatenate(
        [to_unit(normal_to_rgb(normal)), to_unit(depth_to_rgb(depth, valid))], axis=0
    )
