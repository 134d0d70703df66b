"""DPM-Solver++ 2M / 3M against the closed-form probability-flow ODE of Gaussian data."""

import math

import numpy as np
import pytest
import torch

from piti_cli.diffusion.analytic import GaussianDataDenoiser, flow_from_data, flow_to_data
from piti_cli.diffusion.dpm_solver import dpmpp_step
from piti_cli.diffusion.gaussian import GaussianDiffusion
from piti_cli.diffusion.respace import make_process, respace
from piti_cli.diffusion.samplers import sample_ddim, sample_dpmpp_2m, sample_dpmpp_3m


def uniform_lambda_process(n, lo=-3.0, hi=3.0):
    """n steps evenly spaced in λ = ½·log(ᾱ/(1 − ᾱ)) from hi (index 0) to lo: a constant step h."""
    lam = np.linspace(hi, lo, n)
    ab = 1 / (1 + np.exp(-2 * lam))
    return GaussianDiffusion(1 - ab / np.append(1.0, ab[:-1]))


def solve_error(order, n, mean, std):
    """RMSE at index 0 after the solver's steps n−1 → 0 vs the exact ODE solution there."""
    p = uniform_lambda_process(n)
    den = GaussianDataDenoiser(p, mean, std)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x * math.sqrt(1 - p.alphas_cumprod[-1])
    exact = flow_from_data(flow_to_data(x, float(p.alphas_cumprod[-1]), mean, std), float(p.alphas_cumprod[0]),
                           mean, std)
    history = None
    for i in range(n - 1, 0, -1):
        x, _, history = dpmpp_step(den, p, x, i, history, order=order, clip_denoised=False)
    return (x - exact).pow(2).mean().sqrt().item()


@pytest.mark.parametrize("mean,std", [(0.1, 0.5), (0.3, 0.2)])
def test_orders_of_convergence(mean, std):
    # halving h divides the error by ≈ 2^order (measured: 1.98, 3.9, ≥ 14)
    for order, low, high in ((1, 1.8, 2.2), (2, 3.3, 4.5), (3, 7.0, 40.0)):
        e = [solve_error(order, n, mean, std) for n in (33, 65)]
        assert low < e[0] / e[1] < high, (order, e)
    assert solve_error(3, 65, mean, std) < solve_error(2, 65, mean, std) / 5


def test_dpmpp_3m_on_the_glide_process():
    base = make_process()
    den = GaussianDataDenoiser(base, 0.1, 0.5)
    x_T = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = sample_ddim(den, base, x_T, None)
    for steps, bound in (("10", 0.03), ("20", 5e-3)):
        den.calls = 0
        out = sample_dpmpp_3m(den, respace(base, steps), x_T, None)
        assert den.calls == int(steps)
        assert (out - ref).pow(2).mean().sqrt().item() < bound
    # at 10 steps the third-order solver beats the second-order one
    p10 = respace(base, "10")
    e3 = (sample_dpmpp_3m(den, p10, x_T, None) - ref).pow(2).mean().sqrt()
    assert e3 < (sample_dpmpp_2m(den, p10, x_T, None) - ref).pow(2).mean().sqrt()
