"""Gaussian diffusion for PITI/GLIDE: schedules, the process, respacing, samplers,
classifier-free guidance, training losses and timestep samplers.

Imports no network code: a network enters as a *denoiser* closure
``(x_t [B,C,H,W], t [B] float on the 0..1000 scale) -> [B,2C,H,W] or [B,C,H,W]``.
"""

from .gaussian import GaussianDiffusion
from .guidance import classifier_free
from .losses import hybrid_loss, training_losses
from .respace import make_process, network_time, respace, space_timesteps
from .samplers import ddim_invert, sample_ancestral, sample_ddim, sample_dpmpp_2m
from .schedules import get_beta_schedule
from .timestep_samplers import LossSecondMomentResampler, UniformSampler, create_timestep_sampler

__all__ = [
    "GaussianDiffusion",
    "LossSecondMomentResampler",
    "UniformSampler",
    "classifier_free",
    "create_timestep_sampler",
    "ddim_invert",
    "get_beta_schedule",
    "hybrid_loss",
    "make_process",
    "network_time",
    "respace",
    "sample_ancestral",
    "sample_ddim",
    "sample_dpmpp_2m",
    "space_timesteps",
    "training_losses",
]
