"""The Gaussian diffusion process q(x_t | x_0) and the model's reverse step.

Everything is precomputed in float64 (numpy) and cast to the dtype of the tensors
it multiplies. A process may be *respaced* (see ``respace.py``): then index ``i`` of
this process stands for original timestep ``timestep_map[i]`` of an
``original_num_steps``-step process, and the network sees that original step
rescaled to the 0..1000 range (GLIDE's ``rescale_timesteps``), see ``network_t``.

Model output convention (GLIDE / improved DDPM, epsilon prediction):
``[B, 2C, H, W]`` = ε (first C channels) and v in [-1, 1] (last C channels) that
interpolates the log-variance between the posterior variance (v = -1) and β_t
(v = +1); or ``[B, C, H, W]`` = ε only, in which case a fixed variance is used.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

Timesteps = Tensor | int


class GaussianDiffusion:
    """A discrete Gaussian diffusion process given by its betas.

    Args:
        betas: 1-D array of β_t in (0, 1], index 0 = least noise.
        timestep_map: for a respaced process, the original timestep of each index
            (defaults to ``range(len(betas))``).
        original_num_steps: step count of the process the map refers to
            (defaults to ``len(betas)``).
    """

    def __init__(
        self,
        betas: Sequence[float] | np.ndarray,
        timestep_map: Sequence[int] | np.ndarray | None = None,
        original_num_steps: int | None = None,
    ) -> None:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) == 0:
            raise ValueError("betas must be a non-empty 1-D array")
        if not ((betas > 0).all() and (betas <= 1).all()):
            raise ValueError("betas must lie in (0, 1]")
        n = len(betas)
        self.num_timesteps = n
        self.timestep_map = np.arange(n) if timestep_map is None else np.asarray(timestep_map, dtype=np.int64)
        if self.timestep_map.shape != (n,):
            raise ValueError("timestep_map must have one entry per beta")
        self.original_num_steps = n if original_num_steps is None else int(original_num_steps)

        self.betas = betas
        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)

        # q(x_{t-1} | x_t, x_0) = N(coef1·x_0 + coef2·x_t, posterior_variance)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # The variance is 0 at t = 0; its log is clipped by repeating entry 1.
        clipped = np.append(self.posterior_variance[1], self.posterior_variance[1:]) if n > 1 else betas
        self.posterior_log_variance_clipped = np.log(clipped)
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.log_betas = np.log(betas)
        # "fixed large" variance for ε-only models: β_t, with entry 0 = posterior var at 1.
        large = np.append(self.posterior_variance[1], betas[1:]) if n > 1 else betas
        self.fixed_large_log_variance = np.log(large)

    # ------------------------------------------------------------------ helpers
    def extract(self, arr: np.ndarray, t: Timesteps, like: Tensor) -> Tensor:
        """``arr[t]`` as a tensor broadcastable against ``like`` ([B, 1, 1, ...])."""
        if isinstance(t, int):
            return torch.tensor(float(arr[t]), dtype=like.dtype, device=like.device)
        # index on the CPU in float64, then cast: works on devices without float64 (MPS)
        vals = torch.from_numpy(arr)[t.long().cpu()].to(dtype=like.dtype).to(like.device)
        return vals.reshape(-1, *([1] * (like.ndim - 1)))

    def network_t(self, t: Tensor) -> Tensor:
        """Float timesteps the network sees for process indices ``t``.

        ``timestep_map[t] · 1000 / original_num_steps`` (GLIDE's rescale_timesteps).
        """
        mapped = torch.from_numpy(self.timestep_map)[t.long().cpu()]
        return (mapped.double() * (1000.0 / self.original_num_steps)).float().to(t.device)

    # ---------------------------------------------------------- forward process
    def q_sample(self, x0: Tensor, t: Timesteps, noise: Tensor) -> Tensor:
        """Sample x_t ~ q(x_t | x_0) = N(sqrt(ᾱ_t)·x_0, (1 − ᾱ_t)·I) with the given noise."""
        return self.extract(self.sqrt_alphas_cumprod, t, x0) * x0 + self.extract(
            self.sqrt_one_minus_alphas_cumprod, t, x0
        ) * noise

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Timesteps) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
        mean = self.extract(self.posterior_mean_coef1, t, x_t) * x0 + self.extract(
            self.posterior_mean_coef2, t, x_t
        ) * x_t
        var = self.extract(self.posterior_variance, t, x_t)
        log_var = self.extract(self.posterior_log_variance_clipped, t, x_t)
        return mean, var.expand_as(x_t), log_var.expand_as(x_t)

    def x0_from_eps(self, x_t: Tensor, t: Timesteps, eps: Tensor) -> Tensor:
        return self.extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - self.extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t
        ) * eps

    def eps_from_x0(self, x_t: Tensor, t: Timesteps, x0: Tensor) -> Tensor:
        return (self.extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / self.extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t
        )

    # ----------------------------------------------------------- reverse model
    def learned_log_variance(self, v: Tensor, t: Timesteps) -> Tensor:
        """Learned-range log-variance: frac·log β_t + (1 − frac)·log β̃_t, frac = (v + 1)/2."""
        frac = (v + 1.0) / 2.0
        max_log = self.extract(self.log_betas, t, v)
        min_log = self.extract(self.posterior_log_variance_clipped, t, v)
        return frac * max_log + (1.0 - frac) * min_log

    def split_output(self, model_output: Tensor, channels: int) -> tuple[Tensor, Tensor | None]:
        """(ε, v or None) from a raw model output with ``channels`` image channels."""
        if model_output.shape[1] == 2 * channels:
            return model_output[:, :channels], model_output[:, channels:]
        if model_output.shape[1] == channels:
            return model_output, None
        raise ValueError(
            f"model output has {model_output.shape[1]} channels; expected {channels} or {2 * channels}"
        )

    def p_mean_variance(
        self,
        model_output: Tensor,
        x_t: Tensor,
        t: Timesteps,
        clip_denoised: bool = True,
        fixed_variance: str = "large",
    ) -> dict[str, Tensor]:
        """The model's p(x_{t-1} | x_t) from its raw output.

        Returns a dict with ``mean``, ``log_variance``, ``pred_x0`` (clipped to
        [-1, 1] when ``clip_denoised``) and ``eps`` (the raw ε prediction). For an
        ε-only output the variance is fixed: ``"large"`` (β_t) or ``"small"`` (β̃_t).
        """
        eps, v = self.split_output(model_output, x_t.shape[1])
        if v is not None:
            log_var = self.learned_log_variance(v, t)
        elif fixed_variance == "large":
            log_var = self.extract(self.fixed_large_log_variance, t, x_t).expand_as(x_t)
        elif fixed_variance == "small":
            log_var = self.extract(self.posterior_log_variance_clipped, t, x_t).expand_as(x_t)
        else:
            raise ValueError(f"fixed_variance must be 'large' or 'small', got {fixed_variance!r}")
        pred_x0 = self.x0_from_eps(x_t, t, eps)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        mean, _, _ = self.q_posterior(pred_x0, x_t, t)
        return {"mean": mean, "log_variance": log_var, "pred_x0": pred_x0, "eps": eps}
