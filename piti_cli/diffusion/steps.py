"""Single steps of the samplers: (model output, state x at ``index``) → state at ``index − 1``.

Each public step function is one update of a whole-run sampler in ``samplers.py``,
which is nothing but a loop over it, so a trajectory can be replayed, inspected or
teacher-forced one step at a time (in the spirit of diffusers'
``scheduler.step(model_output, t, sample)``):

    out = denoiser(x, process.network_t(index))          # or pass the denoiser itself
    x, x0, _ = ddim_step(out, process, x, index, eta=1.0, noise=recorded[k])

``output`` is the raw denoiser output at (x, index) — ``[B, 2C, H, W]`` (ε, v) or
``[B, C, H, W]`` (ε) — or a denoiser, which is then called once at (x, index).
``noise`` is the standard-normal draw of a stochastic step: a tensor shaped like x,
or a callable ``noise(x)`` that makes one (called only when the step adds noise,
so a generator-backed source is consumed exactly as the whole-run sampler does).
A step that adds noise and gets ``noise=None`` raises ``ValueError``.

Every step returns ``Step(x, x0, history)``: the state at index − 1 (at index 0: the
final sample), the (clipped) x̂_0 the update used, and the multistep history
(None for the single-step samplers; see ``dpm_solver.py``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from .gaussian import GaussianDiffusion

Denoiser = Callable[[Tensor, Tensor], Tensor]
NoiseSampler = Callable[[Tensor], Tensor]
Noise = Tensor | NoiseSampler | None


class Step(NamedTuple):
    """What one sampler step returns."""

    x: Tensor  # state at index − 1; the final sample after the step at index 0
    x0: Tensor  # the x̂_0 prediction the update used (after clipping / thresholding)
    history: Any = None  # the multistep solvers' state for the next step


def model_output(output: Tensor | Denoiser, process: GaussianDiffusion, x: Tensor, index: int) -> Tensor:
    """``output`` itself, or the denoiser called at (x, network t of ``index``), in x's dtype."""
    if isinstance(output, Tensor):
        return output.to(x.dtype)
    idx = torch.full((x.shape[0],), index, dtype=torch.long, device=x.device)
    return output(x, process.network_t(idx)).to(x.dtype)


def step_noise(noise: Noise, x: Tensor, index: int) -> Tensor:
    """The standard-normal draw for a step that adds noise (see module doc)."""
    if noise is None:
        raise ValueError(f"the step at index {index} adds noise: pass noise= (a tensor like x or a callable)")
    z = noise if isinstance(noise, Tensor) else noise(x)
    if z.shape != x.shape:
        raise ValueError(f"step noise has shape {tuple(z.shape)}; expected {tuple(x.shape)}")
    return z


def dynamic_threshold(x0: Tensor, percentile: float) -> Tensor:
    """Imagen's dynamic thresholding: per sample s = max(1, quantile(|x0|, p)); clamp to ±s, divide by s."""
    s = torch.quantile(x0.abs().flatten(1).float(), percentile, dim=1).clamp(min=1.0).to(x0.dtype)
    s = s.reshape(-1, *([1] * (x0.ndim - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def predict(
    output: Tensor, process: GaussianDiffusion, x: Tensor, index: int, clip_denoised: bool,
    threshold: float | None = None,
) -> tuple[Tensor, Tensor]:
    """(ε, x̂_0) at ``index`` from a raw output; ε is recomputed from x̂_0 wherever clipping changed x̂_0."""
    eps, _ = process.split_output(output, x.shape[1])
    x0 = process.x0_from_eps(x, index, eps)
    if threshold is not None:
        x0c = dynamic_threshold(x0, threshold)
    elif clip_denoised:
        x0c = x0.clamp(-1.0, 1.0)
    else:
        return eps, x0
    eps = torch.where(x0c == x0, eps, process.eps_from_x0(x, index, x0c))
    return eps, x0c


def ancestral_step(
    output: Tensor | Denoiser,
    process: GaussianDiffusion,
    x: Tensor,
    index: int,
    *,
    clip_denoised: bool = True,
    fixed_variance: str = "large",
    noise: Noise = None,
) -> Step:
    """x_{t−1} = μ_θ(x_t, t) + exp(½·log σ²_t)·z, no noise at index 0 (DDPM ``p_sample``).

    μ_θ is the posterior mean of q(x_{t−1} | x_t, x̂_0); the variance is the learned
    range for a 2C-channel output, else ``"large"`` (β_t) or ``"small"`` (β̃_t).
    """
    out = process.p_mean_variance(model_output(output, process, x, index), x, index, clip_denoised, fixed_variance)
    x_next = out["mean"]
    if index > 0:
        x_next = x_next + torch.exp(0.5 * out["log_variance"]) * step_noise(noise, x_next, index)
    return Step(x_next, out["pred_x0"])


def ddim_sigma(process: GaussianDiffusion, index: int, eta: float) -> float:
    """σ = η·sqrt((1 − ᾱ_{t−1}) / (1 − ᾱ_t))·sqrt(1 − ᾱ_t / ᾱ_{t−1}) at ``index``."""
    ab, ab_prev = float(process.alphas_cumprod[index]), float(process.alphas_cumprod_prev[index])
    return eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)


def ddim_step(
    output: Tensor | Denoiser,
    process: GaussianDiffusion,
    x: Tensor,
    index: int,
    *,
    eta: float = 0.0,
    clip_denoised: bool = True,
    noise: Noise = None,
) -> Step:
    """x_{t−1} = sqrt(ᾱ_{t−1})·x̂_0 + sqrt(1 − ᾱ_{t−1} − σ²)·ε̂ + σ·z (Song et al. 2021).

    σ from ``ddim_sigma``; no noise at index 0 or when σ = 0 (η = 0: deterministic).
    Uses ε only (variance channels are ignored).
    """
    eps, x0 = predict(model_output(output, process, x, index), process, x, index, clip_denoised)
    ab_prev = float(process.alphas_cumprod_prev[index])
    sigma = ddim_sigma(process, index, eta)
    x_next = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if index > 0 and sigma > 0:
        x_next = x_next + sigma * step_noise(noise, x_next, index)
    return Step(x_next, x0)
