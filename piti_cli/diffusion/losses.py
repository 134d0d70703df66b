"""Training losses: the improved-DDPM hybrid loss (MSE on ε + variational bound).

For a learned-range model (output = ε and v), per sample:

    loss = mse + vb
    mse  = mean over (C, H, W) of (ε − ε̂)²
    vb   = (num_timesteps / 1000) · L_t  in bits per dimension, where L_t is
           KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t))            for t > 0
           −log p(x_0 | x_1) under a discretized Gaussian (255 bins)  for t = 0,
           computed with a stop-gradient on ε̂ so it trains only the variance.

(The official RESCALED_MSE weighting.) For an ε-only model, vb is 0. The t = 0 term uses the
official Gaussian CDF, GLIDE's and guided-diffusion's tanh approximation
0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³))); `cdf="exact"` (a departure, `--nll-cdf exact`)
takes Φ itself (`torch.special.ndtr`), which moves the t = 0 loss by ~1e-3 relative
(docs/training.md).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from piti_cli import choices
from piti_cli.choices import check_table

from .gaussian import GaussianDiffusion


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the first."""
    return x.flatten(1).mean(dim=1)


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: Tensor) -> Tensor:
    """The official codes' Φ: 0.5·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


# The standard normal CDF of the t = 0 term: one table, the first entry is the official one.
NORMAL_CDFS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": approx_standard_normal_cdf, "exact": torch.special.ndtr}
check_table(NORMAL_CDFS, choices.NLL_CDFS, "normal CDFs")


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor, cdf: str = "tanh") -> Tensor:
    """Elementwise log-probability (nats) of data x in [-1, 1] quantized to 256 levels
    (bin half-width 1/255) under N(mean, e^{2·log_scale}); the edge bins extend to ±∞.
    `cdf` names the Φ of `NORMAL_CDFS` (default: the official tanh approximation)."""
    phi = NORMAL_CDFS[cdf]
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = phi(inv_std * (centered + 1.0 / 255.0))
    cdf_min = phi(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def vb_terms_bpd(
    process: GaussianDiffusion, model_mean: Tensor, model_log_var: Tensor, x0: Tensor, x_t: Tensor, t: Tensor,
    cdf: str = "tanh",
) -> Tensor:
    """Per-sample L_t in bits/dim: posterior KL for t > 0, decoder NLL for t = 0."""
    true_mean, _, true_log_var = process.q_posterior(x0, x_t, t)
    kl = mean_flat(normal_kl(true_mean, true_log_var, model_mean, model_log_var)) / math.log(2.0)
    nll = -mean_flat(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var, cdf)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def hybrid_loss(
    process: GaussianDiffusion, model_output: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, noise: Tensor,
    cdf: str = "tanh",
) -> dict[str, Tensor]:
    """Per-sample {"loss", "mse", "vb"} from a raw model output at indices t (`cdf`: the Φ of
    the t = 0 term, see `NORMAL_CDFS`)."""
    eps, v = process.split_output(model_output, x0.shape[1])
    mse = mean_flat((noise - eps) ** 2)
    if v is None:
        vb = torch.zeros_like(mse)
    else:
        frozen = torch.cat([eps.detach(), v], dim=1)
        out = process.p_mean_variance(frozen, x_t, t, clip_denoised=False)
        vb = vb_terms_bpd(process, out["mean"], out["log_variance"], x0, x_t, t, cdf)
        vb = vb * (process.num_timesteps / 1000.0)
    return {"loss": mse + vb, "mse": mse, "vb": vb}


def training_losses(
    process: GaussianDiffusion,
    model_output_fn: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    t: Tensor,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    cdf: str = "tanh",
) -> dict[str, Tensor]:
    """Diffuse x0 to x_t = q_sample(x0, t, noise), call ``model_output_fn(x_t, network_t)``
    (a denoiser, see ``samplers``) and return the per-sample hybrid loss terms.

    ``t`` holds process indices ([B], long); ``noise`` defaults to a draw from
    ``generator`` on x0's device.
    """
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = process.q_sample(x0, t, noise)
    out = model_output_fn(x_t, process.network_t(t))
    return hybrid_loss(process, out.to(x0.dtype), x0, x_t, t, noise, cdf)
