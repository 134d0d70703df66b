"""L0 gradient minimisation smoothing (Xu, Lu, Xu & Jia, SIGGRAPH Asia 2011).

Minimises ``|S - I|^2 + lambda * #{p : grad S(p) != 0}`` by half-quadratic splitting: beta
starts at ``2 * lambda`` and is multiplied by ``kappa`` until it exceeds ``beta_max``; each
round zeroes the (circular forward-difference) gradients whose squared norm, summed over the
colour channels, is below ``lambda / beta``, then solves for S in the Fourier domain:

    S = F^-1[ (F(I) + beta * F(dx^T h + dy^T v)) / (1 + beta * (|F(dx)|^2 + |F(dy)|^2)) ]

``mode="correct"`` works on [0, 1] data (lambda in the paper's units for [0, 1] images).
``mode="piti-compat"`` reproduces the official PITI code, which scales its input by 1/256 as
if it were 0..255 although it is given [0, 1] floats, and truncates ``S * 256`` to uint8 on
the way out: the result is (almost) all zeros — a black image — returned here as float 0/1.
"""

from __future__ import annotations

import numpy as np

L0_MODES = ("correct", "piti-compat")


def _mtf(h: int, w: int) -> np.ndarray:
    """|F(dx)|^2 + |F(dy)|^2 for circular forward differences on an h x w grid."""
    fy = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(h) / h)
    fx = 2.0 - 2.0 * np.cos(2.0 * np.pi * np.arange(w) / w)
    return fy[:, None] + fx[None, :]


def _smooth(image: np.ndarray, lam: float, kappa: float, beta_max: float) -> np.ndarray:
    s = np.asarray(image, dtype=np.float64)
    if s.ndim == 2:
        s = s[:, :, None]
    h, w, _ = s.shape
    fi = np.fft.fft2(s, axes=(0, 1))
    mtf = _mtf(h, w)[:, :, None]
    beta = 2.0 * lam
    while beta < beta_max:
        gx = np.roll(s, -1, axis=1) - s
        gy = np.roll(s, -1, axis=0) - s
        small = (gx**2 + gy**2).sum(axis=2, keepdims=True) < lam / beta
        gx = np.where(small, 0.0, gx)
        gy = np.where(small, 0.0, gy)
        # adjoint of the forward differences: backward differences with a sign flip
        div = (np.roll(gx, 1, axis=1) - gx) + (np.roll(gy, 1, axis=0) - gy)
        fs = (fi + beta * np.fft.fft2(div, axes=(0, 1))) / (1.0 + beta * mtf)
        s = np.fft.ifft2(fs, axes=(0, 1)).real
        beta *= kappa
    return s.reshape(np.shape(image))


def l0_smooth(
    image: np.ndarray,
    lam: float = 2e-3,
    *,
    kappa: float = 2.0,
    beta_max: float = 1e5,
    mode: str = "correct",
) -> np.ndarray:
    """Smooth an (H, W, C) or (H, W) float image in [0, 1]; returns float32 in [0, 1]."""
    if mode == "correct":
        return np.clip(_smooth(image, lam, kappa, beta_max), 0.0, 1.0).astype(np.float32)
    if mode == "piti-compat":
        s = _smooth(np.asarray(image, dtype=np.float32) / 256.0, lam, kappa, beta_max)
        return np.floor(np.clip(s * 256.0, 0.0, 255.0)).astype(np.uint8).astype(np.float32)
    raise ValueError(f"unknown L0 mode {mode!r}; choose one of {', '.join(L0_MODES)}")
