"""Public step functions: replaying a whole run step by step, and each update restated in float64."""

import math

import numpy as np
import pytest
import torch

from piti_cli.diffusion.analytic import GaussianDataDenoiser
from piti_cli.diffusion.dpm_solver import History, dpmpp_step
from piti_cli.diffusion.respace import make_process, respace
from piti_cli.diffusion.samplers import sample_ancestral, sample_ddim, sample_dpmpp_2m, sample_dpmpp_3m
from piti_cli.diffusion.steps import ancestral_step, ddim_step

BASE = make_process()
P = respace(BASE, "10")
SHAPE = (2, 3, 8, 8)


def recorder(seed):
    g = torch.Generator().manual_seed(seed)
    draws = []

    def draw(x):
        draws.append(torch.randn(x.shape, generator=g, dtype=x.dtype))
        return draws[-1]

    return draw, draws


def replay(step, den, x, orders=None, **options):
    """Drive a step function from the last index to 0; ``orders`` maps index → multistep order."""
    history = None
    for i in range(P.num_timesteps - 1, -1, -1):
        extra = {} if orders is None else {"order": orders(i)}
        out = den(x, P.network_t(torch.full((x.shape[0],), i)))
        x, _, history = step(out, P, x, i, **({"history": history} if orders else {}), **extra, **options)
    return x


def test_stochastic_samplers_replay_exactly_with_recorded_noise():
    den = GaussianDataDenoiser(BASE, 0.1, 0.7, variance_process=P)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    draw, draws = recorder(1)
    whole = sample_ancestral(den, P, x_T, None, noise_sampler=draw)
    fed = iter(list(draws))
    assert torch.equal(replay(ancestral_step, den, x_T, noise=lambda x: next(fed)), whole)
    draw, draws = recorder(2)
    whole = sample_ddim(den, P, x_T, None, eta=0.7, noise_sampler=draw)
    # feed the recorded tensors one per step, as another implementation's trajectory would be fed
    x, k = x_T, 0
    for i in range(P.num_timesteps - 1, -1, -1):
        noise = draws[k] if i > 0 else None
        x = ddim_step(den, P, x, i, eta=0.7, noise=noise).x
        k += i > 0
    assert k == len(draws) and torch.equal(x, whole)


@pytest.mark.parametrize("sampler,order", [(sample_dpmpp_2m, 2), (sample_dpmpp_3m, 3)])
def test_multistep_samplers_replay_exactly(sampler, order):
    step = dpmpp_step
    den = GaussianDataDenoiser(BASE, 0.1, 0.7)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(3))
    # lower_order_final: index 1 first order, index 2 at most second
    assert torch.equal(replay(step, den, x_T, orders=lambda i: min(order, max(i, 1))), sampler(den, P, x_T, None))
    assert torch.equal(replay(step, den, x_T, orders=lambda i: order),
                       sampler(den, P, x_T, None, lower_order_final=False))


def schedule(i):
    """β, ᾱ_t, ᾱ_{t−1} of P at index i, from its alphas directly."""
    ab = np.cumprod(1.0 - P.betas)
    return float(P.betas[i]), float(ab[i]), float(ab[i - 1]) if i > 0 else 1.0


def x0_clipped(x, eps, ab):
    return (x / math.sqrt(ab) - math.sqrt(1 / ab - 1) * eps).clamp(-1, 1)


def random_state(seed, channels=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(SHAPE, generator=g, dtype=torch.float64), torch.randn(
        (SHAPE[0], channels) + SHAPE[2:], generator=g, dtype=torch.float64)


@pytest.mark.parametrize("i", [7, 3, 1])
def test_ancestral_and_ddim_steps_match_float64_restatement(i):
    x, out = random_state(i, channels=6)
    z = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    beta, ab, ab_prev = schedule(i)
    eps, v = out[:, :3], out[:, 3:]
    x0 = x0_clipped(x, eps, ab)
    mean = beta * math.sqrt(ab_prev) / (1 - ab) * x0 + (1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab) * x
    small = beta * (1 - ab_prev) / (1 - ab)
    log_var = (v + 1) / 2 * math.log(beta) + (1 - v) / 2 * math.log(small)
    got = ancestral_step(out, P, x, i, noise=z)
    torch.testing.assert_close(got.x, mean + torch.exp(log_var / 2) * z, atol=1e-6, rtol=0)
    torch.testing.assert_close(got.x0, x0, atol=1e-6, rtol=0)
    eta = 0.6
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
    eps_c = (x / math.sqrt(ab) - x0) / math.sqrt(1 / ab - 1)  # ε consistent with the clipped x̂_0
    expected = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev - sigma**2) * eps_c + sigma * z
    torch.testing.assert_close(ddim_step(eps, P, x, i, eta=eta, noise=z).x, expected, atol=1e-6, rtol=0)


def lam(i):
    ab = schedule(i)[1]
    return 0.5 * math.log(ab / (1 - ab))


def test_dpmpp_2m_step_matches_paper_formula():
    i = 6
    x, eps = random_state(4)
    prev = torch.rand(SHAPE, dtype=torch.float64) * 2 - 1
    ab, ab_next = schedule(i)[1], schedule(i - 1)[1]
    h, h_prev = lam(i - 1) - lam(i), lam(i) - lam(i + 1)
    r = h_prev / h
    d = (1 + 1 / (2 * r)) * x0_clipped(x, eps, ab) - prev / (2 * r)
    expected = math.sqrt((1 - ab_next) / (1 - ab)) * x - math.sqrt(ab_next) * (math.exp(-h) - 1) * d
    got = dpmpp_step(eps, P, x, i, History((prev,), (lam(i + 1),)), order=2)
    torch.testing.assert_close(got.x, expected, atol=1e-6, rtol=0)
    assert torch.equal(got.history.x0[1], prev) and got.history.lam[0] == pytest.approx(lam(i))


def test_dpmpp_3m_step_integrates_the_quadratic_through_its_history():
    # x_next = (σ_next/σ) x + σ_next ∫ e^λ q(λ) dλ, q the quadratic through the three x̂_0 at their λ;
    # the integral by 40-point Gauss-Legendre quadrature (exact for this smooth integrand to ~1e-15)
    i = 5
    x, eps = random_state(5)
    g = torch.Generator().manual_seed(6)
    m1, m2 = (torch.rand(SHAPE, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    ab, ab_next = schedule(i)[1], schedule(i - 1)[1]
    m0 = x0_clipped(x, eps, ab)
    nodes_l = [lam(i), lam(i + 1), lam(i + 2)]
    a, b = lam(i), lam(i - 1)
    u, w = np.polynomial.legendre.leggauss(40)
    ls, ws = (b - a) / 2 * u + (a + b) / 2, (b - a) / 2 * w
    integral = torch.zeros_like(x)
    for lk, wk in zip(ls, ws):
        basis = [np.prod([(lk - nodes_l[q]) / (nodes_l[p] - nodes_l[q]) for q in range(3) if q != p]) for p in range(3)]
        integral += wk * math.exp(lk) * (basis[0] * m0 + basis[1] * m1 + basis[2] * m2)
    sigma_next = math.sqrt(1 - ab_next)
    expected = sigma_next / math.sqrt(1 - ab) * x + sigma_next * integral
    got = dpmpp_step(eps, P, x, i, History((m1, m2), (lam(i + 1), lam(i + 2))), order=3)
    torch.testing.assert_close(got.x, expected, atol=1e-6, rtol=0)


def test_step_that_adds_noise_needs_noise():
    x, out = random_state(0)
    with pytest.raises(ValueError, match="adds noise"):
        ancestral_step(out, P, x, 3)
    assert torch.equal(ancestral_step(out, P, x, 0).x, ancestral_step(out, P, x, 0, noise=torch.ones_like(x)).x)
    with pytest.raises(ValueError, match="shape"):
        ddim_step(out, P, x, 3, eta=1.0, noise=torch.zeros(1))
