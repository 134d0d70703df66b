"""Samplers over a denoiser (k-diffusion style plain functions).

A *denoiser* is any callable ``denoiser(x_t, t) -> output`` where ``x_t`` is
``[B, C, H, W]``, ``t`` is a float ``[B]`` tensor on the network's 0..1000 scale
(``process.network_t(index)``: the original timestep of the respaced index, times
1000 / original steps), and ``output`` is ``[B, 2C, H, W]`` (ε then the variance
interpolation v) or ``[B, C, H, W]`` (ε only). Conditioning, classifier-free
guidance and autocast are the denoiser's business (bind them in a closure; see
``guidance.classifier_free``).

Every sampler walks the indices of the (respaced) ``process`` from its last index
to 0 — one denoiser call per index — and returns the final x_0 prediction. Like
the official GLIDE sampler, x_0 predictions are clipped to [-1, 1] unless
``clip_denoised=False``. Per-step noise is drawn by ``noise_sampler(x)`` when one
is given (a standard-normal tensor of x's shape, dtype and device, e.g. a
per-sample seeded or Brownian source); otherwise from the given
``torch.Generator`` on x's device as ``torch.randn(x.shape, generator=...)``,
so a fixed seed gives a fixed result. Deterministic samplers accept
``noise_sampler`` and never call it. Samplers run under ``torch.no_grad()``.

``noise`` is either the initial x_T tensor or a shape to draw it from; the
initial x_T is multiplied by ``init_scale`` (the official upsampler uses 0.997).

After each step ``progress(done, total)`` and k-diffusion's ``callback(step, t, x, x0)`` are
called when given: ``step`` counts from 0, ``t`` is the original timestep the step started
from (``process.timestep_map``; the inversion's: the level it reached), ``x`` the new state and
``x0`` the x̂_0 the update used — what a preview shows.

Each sampler is only a loop over its public single-step function
(``steps.ancestral_step``, ``steps.ddim_step``, ``dpm_solver.dpmpp_step``), so a run
can be replayed or teacher-forced step by step with the same arithmetic.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from .dpm_solver import dpmpp_step
from .gaussian import GaussianDiffusion
from piti_cli import choices
from piti_cli.choices import check_table

from .steps import Denoiser, NoiseSampler, Step, ancestral_step, ddim_step, dynamic_threshold, model_output

Progress = Callable[[int, int], None] | None
Callback = Callable[[int, int, Tensor, Tensor], None] | None  # callback(step, t, x, x0)
__all__ = ["ddim_invert", "dpmpp_order", "dynamic_threshold", "sample_ancestral", "sample_ddim", "sample_dpmpp",
           "sample_dpmpp_2m", "sample_dpmpp_3m"]


def _noise_source(generator: torch.Generator | None, noise_sampler: NoiseSampler | None) -> NoiseSampler:
    """The per-step noise draw: ``noise_sampler`` if given, else ``randn`` from ``generator`` like x."""
    if noise_sampler is not None:
        return noise_sampler
    return lambda x: torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _initial_noise(noise: Tensor | Sequence[int], generator: torch.Generator | None, init_scale: float) -> Tensor:
    """x_T: the given tensor, or a float32 standard-normal draw of that shape, times `init_scale`."""
    if isinstance(noise, Tensor):
        x = noise
    else:
        device = generator.device if generator is not None else torch.device("cpu")
        x = torch.randn(tuple(noise), generator=generator, device=device, dtype=torch.float32)
    return x * init_scale if init_scale != 1.0 else x


def _reporter(total: int, timesteps, progress: Progress, callback: Callback):
    """report(k, index, step) after the k-th step (at process `index`): calls `callback`, then `progress`."""
    def report(k: int, index: int, step: Step) -> None:
        if callback is not None:
            callback(k, int(timesteps[index]), step.x, step.x0)
        if progress is not None:
            progress(k + 1, total)
    return report


def _descending(process: GaussianDiffusion, progress: Progress, callback: Callback):
    """The indices a sampler walks (last to 0) and its `_reporter`."""
    n = process.num_timesteps
    return range(n - 1, -1, -1), _reporter(n, process.timestep_map, progress, callback)


@torch.no_grad()
def sample_ancestral(
    denoiser: Denoiser,
    process: GaussianDiffusion,
    noise: Tensor | Sequence[int],
    generator: torch.Generator | None,
    *,
    clip_denoised: bool = True,
    init_scale: float = 1.0,
    fixed_variance: str = "large",
    progress: Progress = None,
    noise_sampler: NoiseSampler | None = None,
    callback: Callback = None,
) -> Tensor:
    """Ancestral sampling x_{t-1} ~ p(x_{t-1} | x_t) (DDPM / improved DDPM ``p_sample``).

    Uses the learned-range variance for a 2C-channel output, else the fixed
    ``"large"`` (β_t) or ``"small"`` (β̃_t) variance. No noise is added at index 0.
    A loop over ``steps.ancestral_step``.
    """
    x = _initial_noise(noise, generator, init_scale)
    draw = _noise_source(generator, noise_sampler)
    indices, report = _descending(process, progress, callback)
    for k, i in enumerate(indices):
        step = ancestral_step(denoiser, process, x, i, clip_denoised=clip_denoised, fixed_variance=fixed_variance,
                              noise=draw)
        x = step.x
        report(k, i, step)
    return x


@torch.no_grad()
def sample_ddim(
    denoiser: Denoiser,
    process: GaussianDiffusion,
    noise: Tensor | Sequence[int],
    generator: torch.Generator | None,
    *,
    eta: float = 0.0,
    clip_denoised: bool = True,
    init_scale: float = 1.0,
    progress: Progress = None,
    noise_sampler: NoiseSampler | None = None,
    callback: Callback = None,
) -> Tensor:
    """DDIM (Song et al. 2021); ``eta=0`` is deterministic, ``eta=1`` ≈ ancestral.

    x_{t-1} = sqrt(ᾱ_{t-1})·x̂_0 + sqrt(1 − ᾱ_{t-1} − σ²)·ε̂ + σ·z,
    σ = η·sqrt((1 − ᾱ_{t-1}) / (1 − ᾱ_t))·sqrt(1 − ᾱ_t / ᾱ_{t-1}). Uses ε only.
    A loop over ``steps.ddim_step``.
    """
    x = _initial_noise(noise, generator, init_scale)
    draw = _noise_source(generator, noise_sampler)
    indices, report = _descending(process, progress, callback)
    for k, i in enumerate(indices):
        step = ddim_step(denoiser, process, x, i, eta=eta, clip_denoised=clip_denoised, noise=draw)
        x = step.x
        report(k, i, step)
    return x


def dpmpp_order(index: int, order: int, lower_order_final: bool) -> int:
    """The order the DPM-Solver++ loop uses at ``index``.

    With ``lower_order_final`` the last steps before the clean image drop to the
    order their distance from the end allows (index 1 → first order, index 2 →
    at most second), as the DPM-Solver reference's option of that name.
    """
    return min(order, index) if lower_order_final and index > 0 else order


@torch.no_grad()
def sample_dpmpp(
    denoiser: Denoiser,
    process: GaussianDiffusion,
    noise: Tensor | Sequence[int],
    generator: torch.Generator | None,
    *,
    order: int = 2,
    clip_denoised: bool = True,
    dynamic_threshold_percentile: float | None = None,
    lower_order_final: bool = True,
    init_scale: float = 1.0,
    progress: Progress = None,
    noise_sampler: NoiseSampler | None = None,
    callback: Callback = None,
) -> Tensor:
    """DPM-Solver++ multistep of ``order`` 1–3: a loop over ``dpm_solver.dpmpp_step``.

    Deterministic: ``noise_sampler`` is accepted for a uniform signature and never
    called. See ``sample_dpmpp_2m`` / ``sample_dpmpp_3m`` for the options.
    """
    x = _initial_noise(noise, generator, init_scale)
    history = None
    indices, report = _descending(process, progress, callback)
    for k, i in enumerate(indices):
        step = dpmpp_step(denoiser, process, x, i, history, order=dpmpp_order(i, order, lower_order_final),
                          clip_denoised=clip_denoised, threshold=dynamic_threshold_percentile)
        x, history = step.x, step.history
        report(k, i, step)
    return x


def sample_dpmpp_2m(denoiser: Denoiser, process: GaussianDiffusion, noise: Tensor | Sequence[int],
                    generator: torch.Generator | None, **options) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022), data prediction, on the process's discrete times.

    With α = sqrt(ᾱ), σ = sqrt(1 − ᾱ), λ = log(α/σ) and h = λ_next − λ_cur:
    x_next = (σ_next/σ_cur)·x − α_next·(e^{−h} − 1)·D, where D = x̂_0 on the first
    step and D = (1 + 1/(2r))·x̂_0 − 1/(2r)·x̂_0_prev, r = h_prev/h, afterwards.
    The last step (index 0 → clean) returns x̂_0. With ``lower_order_final`` the
    step from index 1 to 0 is first order too (as DPM-Solver's option of that name):
    evenly respaced cosine steps leave a large log-SNR gap there (h ≈ 2.5 against
    ≈ 0.3 before it at 20 steps), where the linear extrapolation overshoots.

    piti applies it at every step count, not only below 15 steps as the DPM-Solver
    reference and diffusers do: their rule suits their time grids, whose last step is short;
    GLIDE's even respacing of the cosine schedule is not (the error against a 1000-step DDIM
    reference at 15, 20 and 50 steps: docs/performance.md, `benchmarks/sampler_accuracy.py`).

    Uses ε only. Static clipping of x̂_0 to [-1, 1] unless
    ``dynamic_threshold_percentile`` (e.g. 0.995) is given.

    ``sample_dpmpp`` with ``order=2``; ``options`` are its keyword arguments.
    """
    return sample_dpmpp(denoiser, process, noise, generator, order=2, **options)


def sample_dpmpp_3m(denoiser: Denoiser, process: GaussianDiffusion, noise: Tensor | Sequence[int],
                    generator: torch.Generator | None, **options) -> Tensor:
    """DPM-Solver++(3M): third-order multistep data prediction (``dpm_solver`` module doc).

    Orders 1, 2 on the first two steps (no history yet), 3 afterwards; with
    ``lower_order_final`` (default, at every step count, for the reason given in
    ``sample_dpmpp_2m``) index 2 uses at most order 2 and index 1 order 1
    (``dpmpp_order``). Same clipping / thresholding options as ``sample_dpmpp_2m``.
    Its accuracy against 2M, on the closed-form ODE and on GLIDE's respaced steps:
    docs/performance.md (`benchmarks/sampler_accuracy.py`).

    ``sample_dpmpp`` with ``order=3``; ``options`` are its keyword arguments.
    """
    return sample_dpmpp(denoiser, process, noise, generator, order=3, **options)


@torch.no_grad()
def ddim_invert(
    denoiser: Denoiser,
    process: GaussianDiffusion,
    x0: Tensor,
    *,
    clip_denoised: bool = True,
    progress: Progress = None,
    callback: Callback = None,
) -> Tensor:
    """Deterministic DDIM inversion: map a clean image x0 to the x_T that
    ``sample_ddim(eta=0)`` on the same process maps back to (approximately).

    Step i moves x from level ᾱ_{i−1} (ᾱ_{−1} = 1, the clean image) to ᾱ_i using
    ε̂ = denoiser(x, t_i), i.e. the same noise level pairing the sampler uses for
    that segment, so the result is the start point of the sampler's first step.
    """
    x = x0
    n = process.num_timesteps
    report = _reporter(n, process.timestep_map, progress, callback)
    for k in range(n):
        eps, _ = process.split_output(model_output(denoiser, process, x, k), x.shape[1])
        ab_cur, ab_next = float(process.alphas_cumprod_prev[k]), float(process.alphas_cumprod[k])
        if k == 0:
            pred = x
        else:
            pred = (x - math.sqrt(1 - ab_cur) * eps) / math.sqrt(ab_cur)
            if clip_denoised:
                clipped = pred.clamp(-1.0, 1.0)
                eps = torch.where(clipped == pred, eps, (x - math.sqrt(ab_cur) * clipped) / math.sqrt(1 - ab_cur))
                pred = clipped
        x = math.sqrt(ab_next) * pred + math.sqrt(1 - ab_next) * eps
        report(k, k, Step(x, pred))
    return x


# The samplers by the names users choose (`piti_cli.choices.SAMPLERS`); `ddim` also takes eta.
SAMPLERS = {"ancestral": sample_ancestral, "ddim": sample_ddim, "dpmpp-2m": sample_dpmpp_2m, "dpmpp-3m": sample_dpmpp_3m}
TAKES_ETA = ("ddim",)
check_table(SAMPLERS, choices.SAMPLERS, "samplers")
