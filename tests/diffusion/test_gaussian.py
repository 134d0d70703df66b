import numpy as np
import pytest
import torch

from piti_cli.diffusion.respace import make_process


def bayes_posterior(alpha_bar_prev, beta, x0, xt):
    """q(x_{t-1} | x_t, x_0) by multiplying the two Gaussian factors directly."""
    # prior x_{t-1} | x0 ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t | x_{t-1} ~ N(sqrt(1-beta) x_{t-1}, beta)
    prec = 1.0 / (1.0 - alpha_bar_prev) + (1.0 - beta) / beta
    var = 1.0 / prec
    mean = var * (np.sqrt(alpha_bar_prev) * x0 / (1.0 - alpha_bar_prev) + np.sqrt(1.0 - beta) * xt / beta)
    return mean, var


@pytest.mark.parametrize("spec", [None, "fast27"])
@pytest.mark.parametrize("index", [1, 5, 20])
def test_posterior_matches_bayes(spec, index):
    p = make_process("squaredcos_cap_v2", 1000, spec)
    x0 = torch.tensor([[[[0.3, -0.7]]]], dtype=torch.float64)
    xt = torch.tensor([[[[1.1, 0.2]]]], dtype=torch.float64)
    mean, var, log_var = p.q_posterior(x0, xt, torch.tensor([index]))
    ab_prev = float(np.prod(1 - p.betas[:index]))
    m_ref, v_ref = bayes_posterior(ab_prev, float(p.betas[index]), x0.numpy(), xt.numpy())
    np.testing.assert_allclose(mean.numpy(), m_ref, rtol=1e-9)
    np.testing.assert_allclose(var.numpy(), v_ref, rtol=1e-9)
    np.testing.assert_allclose(log_var.numpy(), np.log(v_ref), rtol=1e-9)


def test_clipped_log_variance_first_entry():
    p = make_process()
    assert p.posterior_variance[0] == 0.0
    assert p.posterior_log_variance_clipped[0] == p.posterior_log_variance_clipped[1] == np.log(p.posterior_variance[1])


def test_eps_x0_roundtrip_and_q_sample():
    p = make_process()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 2, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 400, 999])
    xt = p.q_sample(x0, t, noise)
    ab = torch.tensor(np.cumprod(1 - p.betas))[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    torch.testing.assert_close(p.x0_from_eps(xt, t, noise), x0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(p.eps_from_x0(xt, t, x0), noise)


def test_learned_range_variance_endpoints():
    p = make_process()
    t = torch.tensor([10, 500])
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    lo = p.p_mean_variance(torch.cat([x, -torch.ones_like(x)], 1), x, t)["log_variance"]
    hi = p.p_mean_variance(torch.cat([x, torch.ones_like(x)], 1), x, t)["log_variance"]
    mid = p.p_mean_variance(torch.cat([x, torch.zeros_like(x)], 1), x, t)["log_variance"]
    for k, ti in enumerate(t.tolist()):
        assert lo[k].unique().item() == pytest.approx(np.log(p.posterior_variance[ti]))
        assert hi[k].unique().item() == pytest.approx(np.log(p.betas[ti]))
        assert mid[k].unique().item() == pytest.approx(0.5 * (np.log(p.betas[ti]) + np.log(p.posterior_variance[ti])))


def test_p_mean_variance_clips_x0():
    p = make_process()
    x = torch.full((1, 1, 1, 1), 3.0)
    out = p.p_mean_variance(torch.zeros(1, 1, 1, 1), x, torch.tensor([5]))
    assert out["pred_x0"].item() == 1.0
    raw = p.p_mean_variance(torch.zeros(1, 1, 1, 1), x, torch.tensor([5]), clip_denoised=False)
    assert raw["pred_x0"].item() == pytest.approx(3.0 / np.sqrt(p.alphas_cumprod[5]))
    with pytest.raises(ValueError, match="channels"):
        p.p_mean_variance(torch.zeros(1, 3, 1, 1), x, torch.tensor([5]))
