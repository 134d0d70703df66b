"""Classifier-free guidance as a wrapper that turns a pair denoiser into a denoiser.

Scale convention (the official PITI/GLIDE sampler's, used everywhere in piti):

    ε = ε_u + s · (ε_c − ε_u)

so ``s = 1`` is the plain conditional prediction and ``s = 0`` the unconditional
one. The PITI paper writes the same thing as ε_c + w · (ε_c − ε_u); the two agree
for ``s = 1 + w`` (paper w = 2 ↔ s = 3).

Normalized guidance (PITI paper, eq. 8) then rescales each sample's guided ε to
the per-sample mean and standard deviation (over C, H, W) of ε_c:

    ε̂ = (ε − mean(ε)) / std(ε) · std(ε_c) + mean(ε_c)

Only the first C (ε) channels are guided; the variance channels, if any, are
taken from the conditional half.

Guidance interval (Kynkäänniemi et al. 2024, "Applying guidance in a limited
interval improves sample and distribution quality"): with ``interval=(lo, hi)``
guidance is applied only where the network timestep t (0..1000 scale, as the
denoiser receives it) lies in [lo, hi]; elsewhere the output is the plain
conditional prediction, computed by a separate conditional denoiser on the
single batch, so the null half is not run at all (a step outside the interval
costs one batch instead of two).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

PairDenoiser = Callable[[Tensor, Tensor], Tensor]


def _per_sample_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    flat = x.flatten(1)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return flat.mean(dim=1).reshape(shape), flat.std(dim=1, correction=0).reshape(shape)


def normalize_to(guided: Tensor, reference: Tensor, eps: float = 1e-12) -> Tensor:
    """Rescale each sample of ``guided`` to the per-sample mean/std of ``reference``."""
    g_mean, g_std = _per_sample_stats(guided)
    r_mean, r_std = _per_sample_stats(reference)
    return (guided - g_mean) / g_std.clamp(min=eps) * r_std + r_mean


def check_interval(interval: tuple[float, float]) -> tuple[float, float]:
    """``interval`` as two floats with 0 ≤ lo < hi ≤ 1000; ``ValueError`` otherwise."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"guidance interval must be two numbers lo, hi; got {interval!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi <= 1000.0):
        raise ValueError(f"guidance interval must satisfy 0 <= lo < hi <= 1000; got {lo:g}, {hi:g}")
    return lo, hi


def classifier_free(
    pair_denoiser: PairDenoiser,
    scale: float,
    normalized: bool = False,
    interval: tuple[float, float] | None = None,
    conditional: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Callable[[Tensor, Tensor], Tensor]:
    """A denoiser ``(x, t) -> out`` that applies classifier-free guidance.

    ``pair_denoiser(x2, t2)`` must evaluate the doubled batch ``x2 = cat([x, x])``
    in one forward pass, the first half conditional and the second half
    unconditional (the network side binds ``cat([cond, null])`` conditions).
    ``scale`` is s in ε = ε_u + s·(ε_c − ε_u) (paper's w = s − 1); ``normalized``
    enables the paper's normalized guidance.

    ``interval=(lo, hi)`` guides only samples whose t lies in [lo, hi] (module doc);
    it needs ``conditional(x, t)``, the conditional network alone on the single
    batch, which is called instead of the pair when no sample's t is inside. A batch
    with t both inside and outside runs the pair and keeps the conditional half
    for the samples outside.
    """
    if interval is not None:
        lo, hi = check_interval(interval)
        if conditional is None:
            raise ValueError("a guidance interval needs the conditional denoiser (conditional=...)")

    def guided(x: Tensor, t: Tensor) -> Tensor:
        if interval is not None:
            inside = (t >= lo) & (t <= hi)
            if not bool(inside.any()):
                return conditional(x, t)
        out = pair_denoiser(torch.cat([x, x]), torch.cat([t, t]))
        cond, uncond = out.chunk(2)
        c = x.shape[1]
        eps_c, eps_u = cond[:, :c], uncond[:, :c]
        eps = eps_u + scale * (eps_c - eps_u)
        if normalized:
            eps = normalize_to(eps, eps_c)
        if interval is not None and not bool(inside.all()):
            eps = torch.where(inside.reshape(-1, *([1] * (x.ndim - 1))), eps, eps_c)
        return torch.cat([eps, cond[:, c:]], dim=1)

    return guided
