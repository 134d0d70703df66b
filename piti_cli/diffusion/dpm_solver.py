"""DPM-Solver++ multistep steps (Lu et al. 2022), data prediction, on a process's discrete times.

With α = sqrt(ᾱ), σ = sqrt(1 − ᾱ) and λ = log(α/σ) (half the log-SNR), the
probability-flow ODE from index i (λ_i) to index i − 1 (λ_{i−1} = λ_i + h) is exactly

    x_{i−1} = (σ_{i−1}/σ_i)·x_i + σ_{i−1} ∫_{λ_i}^{λ_i + h} e^λ · x̂_0(λ) dλ.

A k-th order multistep solver replaces x̂_0(λ) by the polynomial through the last k
predictions (this one and ``history``) and integrates it exactly. Writing m_0, m_1,
m_2 for the predictions at λ_i, λ_i − r_0·h, λ_i − (r_0 + r_1)·h, the Taylor terms
integrate to

    x_{i−1} = (σ_{i−1}/σ_i)·x_i + α_{i−1}·[φ_1·m_0 + φ_2·D_1 + φ_3·D_2]
    φ_1 = 1 − e^{−h},  φ_2 = (h − 1 + e^{−h})/h,  φ_3 = (h²/2 − h + 1 − e^{−h})/h²

with D_1 ≈ h·x̂_0′ and D_2 ≈ h²·x̂_0″ from divided differences:

- order 1 (DDIM in λ): D_1 = D_2 = 0;
- order 2 (2M, the DPM-Solver++ paper's rule): D_1 = (m_0 − m_1)/r_0 with φ_1/2 in
  place of φ_2 (equal up to O(h²), which keeps the order at 2), i.e.
  x_{i−1} = (σ_{i−1}/σ_i)·x_i + α_{i−1}·φ_1·((1 + 1/(2r_0))·m_0 − m_1/(2r_0));
- order 3 (3M): D1_0 = (m_0 − m_1)/r_0, D1_1 = (m_1 − m_2)/r_1,
  D_1 = D1_0 + r_0/(r_0 + r_1)·(D1_0 − D1_1), D_2 = 2·(D1_0 − D1_1)/(r_0 + r_1),
  the exact integral of the quadratic through m_0, m_1, m_2.

The step at index 0 (to the clean image, λ = ∞) returns x̂_0.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

from .gaussian import GaussianDiffusion
from .steps import Denoiser, Step, model_output, predict


class History(NamedTuple):
    """The multistep state: earlier x̂_0 predictions and their λ, newest first (at most 2)."""

    x0: tuple[Tensor, ...] = ()
    lam: tuple[float, ...] = ()


def log_snr(process: GaussianDiffusion, index: int) -> float:
    """λ = log(α/σ) = ½·log(ᾱ / (1 − ᾱ)) at ``index`` of ``process``."""
    ab = float(process.alphas_cumprod[index])
    return math.log(math.sqrt(ab)) - math.log(math.sqrt(1.0 - ab))


def _update(x: Tensor, x0: Tensor, history: History, lam: float, h: float, order: int, alpha_next: float,
            sigma_ratio: float) -> Tensor:
    """x_{i−1} by the order-``order`` rule of the module doc."""
    if order < 3:
        d = x0
        if order == 2:
            r0 = (lam - history.lam[0]) / h
            d = (1 + 1 / (2 * r0)) * x0 - (1 / (2 * r0)) * history.x0[0]
        return sigma_ratio * x - alpha_next * math.expm1(-h) * d
    r0, r1 = (lam - history.lam[0]) / h, (history.lam[0] - history.lam[1]) / h
    d1_0 = (x0 - history.x0[0]) / r0
    d1_1 = (history.x0[0] - history.x0[1]) / r1
    d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    d2 = (2 / (r0 + r1)) * (d1_0 - d1_1)
    phi1 = -math.expm1(-h)
    phi2 = (h + math.expm1(-h)) / h
    phi3 = (h * h / 2 - h - math.expm1(-h)) / (h * h)
    return sigma_ratio * x + alpha_next * (phi1 * x0 + phi2 * d1 + phi3 * d2)


def dpmpp_step(
    output: Tensor | Denoiser,
    process: GaussianDiffusion,
    x: Tensor,
    index: int,
    history: History | None = None,
    *,
    order: int = 2,
    clip_denoised: bool = True,
    threshold: float | None = None,
) -> Step:
    """One DPM-Solver++ multistep step of order ``min(order, 1 + len(history))`` (module doc).

    ``history`` is the previous step's ``Step.history`` (None on the first step).
    x̂_0 is clipped to [-1, 1] unless ``clip_denoised=False``, or dynamically
    thresholded at percentile ``threshold`` (e.g. 0.995). Uses ε only.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"DPM-Solver++ order must be 1, 2 or 3, got {order}")
    history = history or History()
    _, x0 = predict(model_output(output, process, x, index), process, x, index, clip_denoised, threshold)
    if index == 0:
        return Step(x0, x0, History())
    lam, lam_next = log_snr(process, index), log_snr(process, index - 1)
    h = lam_next - lam
    k = min(order, 1 + len(history.x0))
    ab_next = float(process.alphas_cumprod[index - 1])
    sigma_ratio = math.sqrt(1.0 - ab_next) / math.sqrt(1.0 - float(process.alphas_cumprod[index]))
    x_next = _update(x, x0, history, lam, h, k, math.sqrt(ab_next), sigma_ratio)
    return Step(x_next, x0, History((x0,) + history.x0[:1], (lam,) + history.lam[:1]))

