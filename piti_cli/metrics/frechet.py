"""Fréchet distance between two Gaussians fitted to feature sets, in float64.

d² = ‖μ1 − μ2‖² + tr(Σ1) + tr(Σ2) − 2·tr((Σ1^½ Σ2 Σ1^½)^½)

The trace of the matrix square root is computed from the eigenvalues of the symmetric
positive semi-definite matrix Σ1^½ Σ2 Σ1^½ (same spectrum as Σ1 Σ2), so no general
`sqrtm` and no complex round-off are involved. Tiny negative eigenvalues from round-off
are clamped to zero, and so is the final distance.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (N−1) of an (N, D) feature array, in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {feats.shape}")
    if feats.shape[0] < 2:
        raise ValueError("at least 2 feature vectors are needed for a covariance")
    mu = feats.mean(axis=0)
    sigma = np.cov(feats, rowvar=False)
    return mu, np.atleast_2d(sigma)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix via eigh; negative round-off eigenvalues → 0."""
    sym = (matrix + matrix.T) / 2.0
    vals, vecs = np.linalg.eigh(sym)
    vals = np.clip(vals, 0.0, None)
    return (vecs * np.sqrt(vals)) @ vecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((Σ1 Σ2)^½) computed as Σ sqrt(eig(Σ1^½ Σ2 Σ1^½))."""
    root1 = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    inner = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    inner = (inner + inner.T) / 2.0
    vals = np.linalg.eigvalsh(inner)
    return float(np.sqrt(np.clip(vals, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance (the squared 2-Wasserstein distance) between N(μ1,Σ1) and N(μ2,Σ2)."""
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in length: {mu1.shape[0]} vs {mu2.shape[0]}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)


def frechet_distance_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    mu1, s1 = feature_statistics(feats1)
    mu2, s2 = feature_statistics(feats2)
    return frechet_distance(mu1, s1, mu2, s2)
