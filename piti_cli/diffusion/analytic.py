"""An exact denoiser for Gaussian data, for tests and benchmarks of the samplers.

If every pixel of x_0 is i.i.d. N(μ, s²), then x_t = sqrt(ᾱ)·x_0 + sqrt(1 − ᾱ)·ε is
Gaussian too and the ideal (MMSE) predictions are closed-form:

    E[ε | x_t]   = sqrt(1 − ᾱ)·(x_t − sqrt(ᾱ)·μ) / (ᾱ·s² + 1 − ᾱ)
    E[x_0 | x_t] = μ + s²·sqrt(ᾱ)·(x_t − sqrt(ᾱ)·μ) / (ᾱ·s² + 1 − ᾱ)
    Var[x_0 | x_t] = s²·(1 − ᾱ) / (ᾱ·s² + 1 − ᾱ)

and the probability-flow ODE has an exact solution: with x̄ = x/sqrt(ᾱ) and
τ = sqrt((1 − ᾱ)/ᾱ), (x̄ − μ) / sqrt(s² + τ²) is constant along a trajectory.
The true reverse step p(x_{t−1} | x_t) of a (respaced) process is Gaussian with
variance β̃_t + coef1_t²·Var[x_0 | x_t], which ``GaussianDataDenoiser`` can report
as the learned-range v channel.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .gaussian import GaussianDiffusion


class GaussianDataDenoiser:
    """Denoiser ``(x_t, t) -> ε`` (or ``[ε, v]``) exact for data ~ N(mean, std²) per pixel.

    Args:
        base: the original (not respaced) process; network t is mapped back to its
            timestep as round(t · N / 1000).
        mean, std: the data distribution.
        variance_process: if given, also output the v channels that make the
            learned-range variance of *this* (respaced) process the true reverse variance.
    """

    def __init__(
        self, base: GaussianDiffusion, mean: float, std: float, variance_process: GaussianDiffusion | None = None
    ) -> None:
        self.base, self.mean, self.std = base, float(mean), float(std)
        self.variance_process = variance_process
        self.calls = 0

    def _alpha_bar(self, t: Tensor) -> Tensor:
        steps = torch.round(t.double() * self.base.num_timesteps / 1000.0).long().cpu()
        return torch.from_numpy(self.base.alphas_cumprod)[steps]

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        ab = self._alpha_bar(t).to(x.device).reshape(-1, 1, 1, 1)
        xd = x.double()
        denom = ab * self.std**2 + 1 - ab
        eps = torch.sqrt(1 - ab) * (xd - torch.sqrt(ab) * self.mean) / denom
        if self.variance_process is None:
            return eps.to(x.dtype)
        p = self.variance_process
        orig = torch.round(t.double() * p.original_num_steps / 1000.0).long().cpu().numpy()
        idx = np.searchsorted(p.timestep_map, orig)
        var_x0 = (self.std**2 * (1 - ab) / denom).cpu().numpy().reshape(-1)
        true_var = p.posterior_variance[idx] + p.posterior_mean_coef1[idx] ** 2 * var_x0
        lo, hi = p.posterior_log_variance_clipped[idx], p.log_betas[idx]
        v = 2 * (np.log(true_var) - lo) / (hi - lo) - 1
        v_t = torch.from_numpy(v).to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return torch.cat([eps.to(x.dtype), v_t.expand_as(x)], dim=1)


def flow_to_data(x_t: Tensor, alpha_bar_t: float, mean: float, std: float) -> Tensor:
    """Exact end point at t = 0 (clean data) of the probability-flow ODE from x_t."""
    tau = math.sqrt((1 - alpha_bar_t) / alpha_bar_t)
    xbar = x_t.double() / math.sqrt(alpha_bar_t)
    return (mean + (xbar - mean) * std / math.sqrt(std**2 + tau**2)).to(x_t.dtype)


def flow_from_data(x0: Tensor, alpha_bar_t: float, mean: float, std: float) -> Tensor:
    """Exact probability-flow ODE image at level ᾱ_t of a clean sample x0 (inverse of ``flow_to_data``)."""
    tau = math.sqrt((1 - alpha_bar_t) / alpha_bar_t)
    xbar = mean + (x0.double() - mean) * math.sqrt(std**2 + tau**2) / std
    return (xbar * math.sqrt(alpha_bar_t)).to(x0.dtype)
