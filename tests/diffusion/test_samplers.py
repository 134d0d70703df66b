"""Samplers against the exact solution for Gaussian data (closed forms, see analytic.py)."""

import math

import pytest
import torch

from piti_cli.diffusion.analytic import GaussianDataDenoiser, flow_from_data, flow_to_data
from piti_cli.diffusion.respace import make_process, respace
from piti_cli.diffusion.samplers import ddim_invert, sample_ancestral, sample_ddim, sample_dpmpp_2m

MU, SD = 0.1, 0.5
BASE = make_process()


def rmse(a, b):
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


def start_noise(seed=0, shape=(4, 3, 8, 8)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_analytic_eps_is_mmse_by_monte_carlo():
    # independent check of the closed form: regress the true noise on x_t
    g = torch.Generator().manual_seed(1)
    t = 600
    ab = float(BASE.alphas_cumprod[t])
    x0 = MU + SD * torch.randn(200_000, generator=g, dtype=torch.float64)
    eps = torch.randn(200_000, generator=g, dtype=torch.float64)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    slope = torch.cov(torch.stack([xt, eps]))[0, 1] / xt.var()
    pred = GaussianDataDenoiser(BASE, MU, SD)(xt.reshape(-1, 1, 1, 1)[:1], torch.tensor([600.0]))
    expected = eps.mean() + slope * (xt[:1] - xt.mean())
    assert pred.item() == pytest.approx(expected.item(), abs=0.01)


def test_ddim_1000_follows_exact_ode():
    xT = start_noise()
    out = sample_ddim(GaussianDataDenoiser(BASE, MU, SD), BASE, xT, None, clip_denoised=False)
    assert rmse(out, flow_to_data(xT, float(BASE.alphas_cumprod[-1]), MU, SD)) < 2e-3


def test_dpmpp_20_matches_ddim_1000():
    xT = start_noise()
    den = GaussianDataDenoiser(BASE, MU, SD)
    ref = sample_ddim(den, BASE, xT, None)
    den.calls = 0
    out = sample_dpmpp_2m(den, respace(BASE, "20"), xT, None)
    assert den.calls == 20
    assert rmse(out, ref) < 5e-3
    # and it is second order: much better than DDIM with the same 20 steps
    assert rmse(sample_ddim(den, respace(BASE, "20"), xT, None), ref) > 5 * rmse(out, ref)


def test_ddim_deterministic_and_generator_driven():
    den = GaussianDataDenoiser(BASE, MU, SD)
    p = respace(BASE, "25")
    a = sample_ddim(den, p, (2, 3, 4, 4), torch.Generator().manual_seed(3))
    b = sample_ddim(den, p, (2, 3, 4, 4), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float32
    c = sample_ddim(den, p, (2, 3, 4, 4), torch.Generator().manual_seed(3), eta=1.0)
    d = sample_ddim(den, p, (2, 3, 4, 4), torch.Generator().manual_seed(3), eta=1.0)
    e = sample_ddim(den, p, (2, 3, 4, 4), torch.Generator().manual_seed(4), eta=1.0)
    assert torch.equal(c, d) and not torch.equal(c, e)


def test_ddim_ignores_variance_channels_and_init_scale():
    p = respace(BASE, "fast27")
    xT = start_noise().float()
    eps_only = sample_ddim(GaussianDataDenoiser(BASE, MU, SD), p, xT, None)
    with_var = sample_ddim(GaussianDataDenoiser(BASE, MU, SD, variance_process=p), p, xT, None)
    torch.testing.assert_close(eps_only, with_var)
    scaled = sample_ddim(GaussianDataDenoiser(BASE, MU, SD), p, xT * 0.997, None)
    torch.testing.assert_close(sample_ddim(GaussianDataDenoiser(BASE, MU, SD), p, xT, None, init_scale=0.997), scaled)


def test_invert_then_sample_roundtrips():
    g = torch.Generator().manual_seed(5)
    x0 = (MU + SD * torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)).clamp(-1, 1)
    den = GaussianDataDenoiser(BASE, MU, SD)
    xT = ddim_invert(den, BASE, x0, clip_denoised=False)
    torch.testing.assert_close(xT, flow_from_data(x0, float(BASE.alphas_cumprod[-1]), MU, SD), atol=5e-3, rtol=0)
    back = sample_ddim(den, BASE, xT, None, clip_denoised=False)
    assert (back - x0).abs().max().item() < 5e-3
    p = respace(BASE, "100")
    back100 = sample_ddim(den, p, ddim_invert(den, p, x0), None)
    assert (back100 - x0).abs().max().item() < 0.03


def test_ancestral_recovers_data_distribution():
    p = respace(BASE, "50")
    den = GaussianDataDenoiser(BASE, MU, SD, variance_process=p)
    calls = []
    out = sample_ancestral(den, p, (4096, 1, 4, 4), torch.Generator().manual_seed(7), clip_denoised=False,
                           progress=lambda d, n: calls.append((d, n)))
    assert calls == [(k, 50) for k in range(1, 51)]
    assert out.mean().item() == pytest.approx(MU, abs=0.01)
    assert out.std().item() == pytest.approx(SD, rel=0.02)
    # deterministic for a fixed generator
    again = sample_ancestral(den, p, (4096, 1, 4, 4), torch.Generator().manual_seed(7), clip_denoised=False)
    assert torch.equal(out, again)


def test_ancestral_eps_only_fixed_variance_many_steps():
    out = sample_ancestral(GaussianDataDenoiser(BASE, MU, SD), respace(BASE, "250"), (2048, 1, 4, 4),
                           torch.Generator().manual_seed(8))
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert out.std().item() == pytest.approx(SD, rel=0.06)


def test_dpmpp_dynamic_threshold_bounds_output():
    den = GaussianDataDenoiser(BASE, 0.0, 3.0)  # data far outside [-1, 1]
    out = sample_dpmpp_2m(den, respace(BASE, "10"), start_noise(), None, dynamic_threshold_percentile=0.9)
    assert out.abs().max().item() <= 1.0 + 1e-6


@pytest.mark.parametrize("name", ["ancestral", "ddim", "dpmpp-2m", "dpmpp-3m"])
def test_callback_reports_each_step_as_the_step_functions_replay_it(name):
    """k-diffusion's callback(step, t, x, x0): one call per step, the original timesteps in
    order, x the state the next step starts from, the last x the returned sample."""
    from piti_cli.diffusion.samplers import SAMPLERS
    from piti_cli.diffusion.steps import ddim_step

    den = GaussianDataDenoiser(BASE, MU, SD)
    p = respace(BASE, "10")
    seen = []
    out = SAMPLERS[name](den, p, start_noise().float(), torch.Generator().manual_seed(1),
                         callback=lambda k, t, x, x0: seen.append((k, t, x.clone(), x0.clone())))
    assert [k for k, *_ in seen] == list(range(10))
    assert [t for _, t, *_ in seen] == [int(t) for t in p.timestep_map[::-1]]
    assert torch.equal(seen[-1][2], out)
    assert all(x0.abs().max() <= 1 for *_, x0 in seen)  # clipped, as the update used it
    if name == "ddim":  # replay: the state reported after step k, stepped once more, is the next report
        for (k, _, x, _), (_, _, x_next, x0_next) in zip(seen, seen[1:]):
            step = ddim_step(den, p, x, 9 - (k + 1))
            assert torch.equal(step.x, x_next) and torch.equal(step.x0, x0_next)
