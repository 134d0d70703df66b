import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from piti_cli.diffusion.losses import (
    discretized_gaussian_log_likelihood,
    hybrid_loss,
    normal_kl,
    training_losses,
)
from piti_cli.diffusion.respace import make_process, respace


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(50, generator=g), torch.randn(50, generator=g)
    lv1, lv2 = torch.randn(50, generator=g), torch.randn(50, generator=g)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref, rtol=1e-5, atol=1e-6)


def test_discretized_likelihood_is_a_distribution():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    mean, log_scale = torch.full_like(levels, 0.2), torch.full_like(levels, math.log(0.3))
    logp = discretized_gaussian_log_likelihood(levels, mean, log_scale, cdf="exact")
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
    k = 140  # an interior bin against scipy
    x = levels[k].item()
    expected = norm.cdf(x + 1 / 255, 0.2, 0.3) - norm.cdf(x - 1 / 255, 0.2, 0.3)
    assert logp[k].item() == pytest.approx(math.log(expected), rel=1e-9)
    assert logp[-1].item() == pytest.approx(math.log(norm.sf(1 - 1 / 255, 0.2, 0.3)), rel=1e-9)


def _setup(p, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = (torch.rand(len(t), 3, 4, 4, generator=g, dtype=torch.float64) * 2 - 1) * 0.99  # no edge bins
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    return x0, noise, p.q_sample(x0, t, noise)


def test_vb_zero_for_exact_mean_and_posterior_variance():
    p = make_process()
    t = torch.tensor([1, 10, 500, 999])
    x0, noise, xt = _setup(p, t)
    out = torch.cat([noise, -torch.ones_like(noise)], 1)  # v = -1 → posterior variance
    terms = hybrid_loss(p, out, x0, xt, t, noise)
    assert terms["mse"].abs().max().item() < 1e-20
    assert terms["vb"].abs().max().item() < 1e-8


def test_vb_equals_kl_in_bits_and_decoder_nll_at_zero():
    p = make_process()
    t = torch.tensor([0, 300])
    x0, noise, xt = _setup(p, t, seed=1)
    eps, v = noise + 0.1, torch.full_like(noise, 0.4)
    terms = hybrid_loss(p, torch.cat([eps, v], 1), x0, xt, t, noise, cdf="exact")
    # independent recomputation of sample 1 from the closed forms (t = 300 > 0)
    ab, ab_prev, beta = p.alphas_cumprod[300], p.alphas_cumprod[299], p.betas[300]
    post_var = beta * (1 - ab_prev) / (1 - ab)
    c1, c2 = beta * np.sqrt(ab_prev) / (1 - ab), (1 - ab_prev) * np.sqrt(1 - beta) / (1 - ab)
    x0_hat = (xt[1] - np.sqrt(1 - ab) * eps[1]) / np.sqrt(ab)
    model_std = math.exp(0.5 * (0.7 * math.log(beta) + 0.3 * math.log(post_var)))
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(c1 * x0[1] + c2 * xt[1], math.sqrt(post_var)),
        torch.distributions.Normal(c1 * x0_hat + c2 * xt[1], model_std),
    )
    assert terms["vb"][1].item() == pytest.approx(kl.mean().item() / math.log(2), rel=1e-6)
    # t = 0: negative discretized log-likelihood of x0 under the model's Gaussian
    mean0 = (xt[0] - np.sqrt(1 - p.alphas_cumprod[0]) * eps[0]) / np.sqrt(p.alphas_cumprod[0])
    std0 = math.exp(0.5 * (0.7 * math.log(p.betas[0]) + 0.3 * p.posterior_log_variance_clipped[0]))
    lo, hi = x0[0].numpy() - 1 / 255, x0[0].numpy() + 1 / 255
    probs = norm.cdf(hi, mean0.numpy(), std0) - norm.cdf(lo, mean0.numpy(), std0)
    assert terms["vb"][0].item() == pytest.approx(-np.log(probs).mean() / math.log(2), rel=1e-6)
    torch.testing.assert_close(terms["mse"], ((noise - eps) ** 2).flatten(1).mean(1))
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["vb"])


def test_vb_gradient_reaches_only_variance_and_is_rescaled():
    p = make_process()
    t = torch.tensor([3, 700])
    x0, noise, xt = _setup(p, t, seed=2)
    out = torch.cat([noise + 0.2, torch.zeros_like(noise)], 1).requires_grad_(True)
    terms = hybrid_loss(p, out, x0, xt, t, noise)
    terms["vb"].sum().backward()
    assert out.grad[:, :3].abs().max().item() == 0.0
    assert out.grad[:, 3:].abs().max().item() > 0.0
    # respaced to 250 steps: the vb term is scaled by 250/1000
    p250 = respace(p, "250")
    t250 = torch.tensor([3, 200])
    xt250 = p250.q_sample(x0, t250, noise)
    fixed = torch.cat([noise + 0.2, torch.zeros_like(noise)], 1)
    raw = hybrid_loss(p250, fixed, x0, xt250, t250, noise)["vb"] / 0.25
    from piti_cli.diffusion.losses import vb_terms_bpd
    pm = p250.p_mean_variance(fixed, xt250, t250, clip_denoised=False)
    torch.testing.assert_close(raw, vb_terms_bpd(p250, pm["mean"], pm["log_variance"], x0, xt250, t250))


def test_training_losses_calls_denoiser_with_network_time():
    p = respace(make_process(), "fast27")
    seen = {}

    def model(x, t):
        seen["t"] = t
        return torch.zeros(x.shape[0], 6, *x.shape[2:], dtype=x.dtype)

    x0 = torch.zeros(2, 3, 4, 4)
    noise = torch.ones_like(x0)
    terms = training_losses(p, model, x0, torch.tensor([0, 26]), noise)
    assert seen["t"].tolist() == [0.0, 997.0]
    torch.testing.assert_close(terms["mse"], torch.ones(2))
    # ε-only model: vb is zero
    terms = training_losses(p, lambda x, t: torch.zeros_like(x), x0, torch.tensor([3, 4]),
                            generator=torch.Generator().manual_seed(0))
    assert terms["vb"].abs().max().item() == 0.0


def _tanh_cdf(x: np.ndarray) -> np.ndarray:
    """GLIDE's / guided-diffusion's Φ, restated in float64."""
    return 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def test_t0_nll_uses_the_official_tanh_cdf_by_default():
    p = make_process()
    t = torch.tensor([0, 0])
    x0, noise, xt = _setup(p, t, seed=4)
    x0[0, 0, 0, 0], x0[1, 1, 2, 3] = -1.0, 1.0  # one edge bin at each end
    eps, v = noise + 0.3, torch.full_like(noise, -0.2)
    vb = hybrid_loss(p, torch.cat([eps, v], 1), x0, xt, t, noise)["vb"]
    # float64 restatement: the model's mean and std at t = 0, the tanh CDF over each 1/255 bin
    ab, beta = p.alphas_cumprod[0], p.betas[0]
    mean = ((xt - np.sqrt(1 - ab) * eps) / np.sqrt(ab)).numpy()
    frac = (v.numpy() + 1) / 2
    log_var = frac * math.log(beta) + (1 - frac) * p.posterior_log_variance_clipped[0]
    inv_std = np.exp(-0.5 * log_var)
    x = x0.numpy()
    plus, minus = _tanh_cdf(inv_std * (x - mean + 1 / 255)), _tanh_cdf(inv_std * (x - mean - 1 / 255))
    logp = np.where(x < -0.999, np.log(np.maximum(plus, 1e-12)),
                    np.where(x > 0.999, np.log(np.maximum(1 - minus, 1e-12)), np.log(np.maximum(plus - minus, 1e-12))))
    expected = -logp.reshape(2, -1).mean(1) / math.log(2)
    np.testing.assert_allclose(vb.numpy(), expected, rtol=1e-10)
    # the exact Φ is a different number (the departure `--nll-cdf exact` measures against)
    exact = hybrid_loss(p, torch.cat([eps, v], 1), x0, xt, t, noise, cdf="exact")["vb"]
    assert not np.allclose(exact.numpy(), expected, rtol=1e-6)
