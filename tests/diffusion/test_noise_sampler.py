"""The ``noise_sampler`` hook: every per-step noise draw goes through it, and None keeps the generator path."""

import torch

from piti_cli.diffusion.analytic import GaussianDataDenoiser
from piti_cli.diffusion.respace import make_process, respace
from piti_cli.diffusion.samplers import sample_ancestral, sample_ddim, sample_dpmpp_2m

BASE = make_process()
P = respace(BASE, "10")
SHAPE = (2, 3, 4, 4)


def _plain_draws(seed):
    """Noise drawn as torch.randn(shape, generator) would draw it, written out independently."""
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(SHAPE, generator=g)
    return x_T, g


def test_generator_path_equals_an_equivalent_noise_sampler():
    den = GaussianDataDenoiser(BASE, 0.1, 0.5, variance_process=P)
    for run in (lambda **k: sample_ancestral(den, P, **k), lambda **k: sample_ddim(den, P, eta=1.0, **k)):
        x_T, g = _plain_draws(3)
        via_sampler = run(noise=x_T, generator=None, noise_sampler=lambda x: torch.randn(x.shape, generator=g))
        via_generator = run(noise=SHAPE, generator=torch.Generator().manual_seed(3))
        assert torch.equal(via_sampler, via_generator)


def test_noise_sampler_is_called_for_every_stochastic_step_only():
    den = GaussianDataDenoiser(BASE, 0.1, 0.5, variance_process=P)
    seen = []

    def zeros(x):
        seen.append((tuple(x.shape), x.dtype, x.device))
        return torch.zeros_like(x)

    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    sample_ancestral(den, P, x_T, None, noise_sampler=zeros)
    assert seen == [(SHAPE, torch.float32, torch.device("cpu"))] * (P.num_timesteps - 1)
    seen.clear()
    # eta = 1 DDIM with zero noise is eta = 1 DDIM without the noise term: differs from eta = 0
    quiet = sample_ddim(den, P, x_T, None, eta=1.0, noise_sampler=zeros)
    assert len(seen) == P.num_timesteps - 1
    assert not torch.equal(quiet, sample_ddim(den, P, x_T, None, eta=1.0, noise_sampler=torch.randn_like))
    seen.clear()
    sample_ddim(den, P, x_T, None, noise_sampler=zeros)
    sample_dpmpp_2m(den, P, x_T, None, noise_sampler=zeros)
    assert seen == []  # deterministic samplers never draw
