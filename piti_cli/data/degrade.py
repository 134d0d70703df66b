"""BSR degradation as PITI trains its 64->256 upsampler with (bsrgan_light, "variant").

`degrade_bsr` maps a 256x256 uint8 RGB image to a 64x64 one (``sf=4``):

1. with p=0.25 a first halving (random cv2 interpolation, or antialiased bicubic), sf -> 2;
2. the steps below in random order, the "resize by a random factor" kept before the final
   resize: blur (p=0.8; anisotropic Gaussian, size 5..14, eigenvalues U(0, (4+sf)/4), or
   isotropic, size 5..7, sigma U(0, (2+0.2 sf)/4); mirror borders), resize by a random factor
   (p=0.8: 1/U(1, 2 sf) with random interpolation; else a shifted Gaussian blur and nearest
   subsampling by sf), the final resize to 1/sf of the size before that step, Gaussian noise
   sigma 1..2/255 (colour, grey or channel-correlated), JPEG quality 80..95 (p=0.5), L0
   smoothing (p=0.2, lambda U(1.2, 4) 1e-3, see `piti_cli.data.l0`);
3. round to uint8.

All randomness comes from the given ``numpy.random.Generator``: same seed, same output.
Kernels are built in log space (the peak is exactly 1 before normalising), so no parameter
draw can give an all-zero kernel.  Pure numpy / OpenCV / SciPy (no interp2d).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.linalg import orth

from piti_cli.data.l0 import L0_MODES, l0_smooth

INTERPOLATIONS = (1, 2, 3)  # cv2.INTER_LINEAR, INTER_CUBIC, INTER_AREA
BLUR_P, JPEG_P, HALVE_P, L0_P = 0.8, 0.5, 0.25, 0.2
_MIN_VAR = 1e-4


def _normalised(log_k: np.ndarray) -> np.ndarray:
    k = np.exp(log_k - log_k.max())
    return k / k.sum()


def anisotropic_gaussian(ksize: int, theta: float, l1: float, l2: float) -> np.ndarray:
    """ksize x ksize Gaussian with covariance eigenvalues l1, l2 along angle theta."""
    c, s = np.cos(theta), np.sin(theta)
    v = np.array([[c, s], [s, -c]])
    cov = v @ np.diag([max(l1, _MIN_VAR), max(l2, _MIN_VAR)]) @ v
    inv = np.linalg.inv(cov)
    coords = np.arange(ksize) - (ksize / 2.0 + 0.5) + 1.0
    x, y = np.meshgrid(coords, coords)
    q = inv[0, 0] * x * x + (inv[0, 1] + inv[1, 0]) * x * y + inv[1, 1] * y * y
    return _normalised(-0.5 * q)


def isotropic_gaussian(ksize: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian'): values below eps * max are zeroed, then normalised."""
    r = (ksize - 1) / 2.0
    x, y = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    k = _normalised(-(x * x + y * y) / (2.0 * max(sigma, np.sqrt(_MIN_VAR)) ** 2))
    k[k < np.finfo(float).eps * k.max()] = 0.0
    return k / k.sum()


def _convolve(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    return ndimage.convolve(img, k[:, :, None].astype(img.dtype), mode="mirror")


def _resize(img: np.ndarray, w: int, h: int, interp: int) -> np.ndarray:
    out = cv2.resize(img, (max(1, w), max(1, h)), interpolation=int(interp))
    return np.clip(out, 0.0, 1.0)


def _bicubic_half(img: np.ndarray) -> np.ndarray:
    """Antialiased bicubic halving (MATLAB imresize-like), per channel via PIL float images."""
    h, w = img.shape[:2]
    chans = [np.asarray(Image.fromarray(img[:, :, c]).resize((w // 2, h // 2), Image.BICUBIC))
             for c in range(img.shape[2])]
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0)


def add_blur(img: np.ndarray, sf: int, rng: np.random.Generator) -> np.ndarray:
    wd2, wd = (4.0 + sf) / 4.0, (2.0 + 0.2 * sf) / 4.0
    if rng.random() < 0.5:
        l1, l2 = wd2 * rng.random(), wd2 * rng.random()
        k = anisotropic_gaussian(int(rng.integers(2, 12)) + 3, rng.random() * np.pi, l1, l2)
    else:
        k = isotropic_gaussian(int(rng.integers(2, 5)) + 3, wd * rng.random())
    return _convolve(img, k)


def _shifted_kernel_downsample(img: np.ndarray, sf: int, rng: np.random.Generator) -> np.ndarray:
    k = isotropic_gaussian(25, rng.uniform(0.1, 0.6 * sf))
    shift = (sf - 1) * 0.5  # move the kernel centre up-left so nearest subsampling stays aligned
    grid = np.clip(np.arange(25, dtype=np.float64) + shift, 0, 24)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    k = ndimage.map_coordinates(k, [yy, xx], order=1, mode="nearest")
    img = _convolve(img, k / k.sum())
    return img[0::sf, 0::sf, :]


def add_gaussian_noise(img: np.ndarray, rng: np.random.Generator, lo: int = 1, hi: int = 2) -> np.ndarray:
    level = int(rng.integers(lo, hi + 1)) / 255.0
    r = rng.random()
    if r > 0.6:  # colour noise
        img = img + rng.normal(0.0, level, img.shape).astype(np.float32)
    elif r < 0.4:  # grey noise
        img = img + rng.normal(0.0, level, (*img.shape[:2], 1)).astype(np.float32)
    else:  # channel-correlated noise, covariance |L^2 U^T D U|
        big = hi / 255.0
        u = orth(rng.random((3, 3)))
        cov = np.abs(big**2 * (u.T @ np.diag(rng.random(3)) @ u))
        w, v = np.linalg.eigh(cov)
        a = v * np.sqrt(np.clip(w, 0.0, None))
        img = img + (rng.standard_normal((*img.shape[:2], 3)) @ a.T).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def add_jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(80, 96))
    u8 = np.uint8((np.clip(img, 0, 1) * 255.0).round())
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    dec = cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return dec.astype(np.float32) / 255.0


def degrade_bsr(
    img_uint8_256: np.ndarray, rng: np.random.Generator, sf: int = 4, l0_mode: str = "correct"
) -> np.ndarray:
    """(H, W, 3) uint8 (256x256 in PITI) -> (H/sf, W/sf, 3) uint8 BSR-degraded image."""
    img = np.asarray(img_uint8_256)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"degrade_bsr expects (H, W, 3) uint8, got {img.shape} {img.dtype}")
    if l0_mode not in L0_MODES:
        raise ValueError(f"unknown L0 mode {l0_mode!r}; choose one of {', '.join(L0_MODES)}")
    h0, w0 = img.shape[0] - img.shape[0] % sf, img.shape[1] - img.shape[1] % sf
    x = img[:h0, :w0].astype(np.float32) / 255.0
    out_h, out_w = h0 // sf, w0 // sf

    if sf == 4 and rng.random() < HALVE_P:
        if rng.random() < 0.5:
            x = _resize(x, x.shape[1] // 2, x.shape[0] // 2, rng.choice(INTERPOLATIONS))
        else:
            x = _bicubic_half(x)
        sf = 2

    order = list(rng.permutation(7))
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:  # the random resize must come before the final one
        order[i2], order[i3] = 3, 2
    before = x.shape[:2]
    for step in order:
        if step == 0:
            if rng.random() < BLUR_P:
                x = add_blur(x, sf, rng)
        elif step == 2:
            before = x.shape[:2]
            if rng.random() < 0.8:
                f = rng.uniform(1.0, 2.0 * sf)
                x = _resize(x, int(x.shape[1] / f), int(x.shape[0] / f), rng.choice(INTERPOLATIONS))
            else:
                x = np.clip(_shifted_kernel_downsample(x, sf, rng), 0.0, 1.0)
        elif step == 3:
            x = _resize(x, int(before[1] / sf), int(before[0] / sf), rng.choice(INTERPOLATIONS))
        elif step == 4:
            x = add_gaussian_noise(x, rng)
        elif step == 5:
            if rng.random() < JPEG_P:
                x = add_jpeg(x, rng)
        elif step == 6:
            if rng.random() < L0_P:
                x = l0_smooth(x, rng.uniform(1.2, 4.0) * 1e-3, mode=l0_mode)
        x = x.astype(np.float32, copy=False)
    out = np.uint8((np.clip(x, 0.0, 1.0) * 255.0).round())
    assert out.shape[:2] == (out_h, out_w), (out.shape, out_h, out_w)
    return out
