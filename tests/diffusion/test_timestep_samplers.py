import torch

from piti_cli.diffusion.timestep_samplers import LossSecondMomentResampler, UniformSampler, create_timestep_sampler


def test_uniform_sampler():
    s = UniformSampler(20, seed=1)
    t, w = s.sample(4000)
    assert t.min() >= 0 and t.max() < 20 and torch.all(w == 1.0)
    counts = torch.bincount(t, minlength=20).double()
    assert (counts / 4000 - 0.05).abs().max() < 0.02


def test_second_moment_warmup_and_weights():
    n = 5
    s = LossSecondMomentResampler(n, seed=0)
    losses = {t: [0.1 * (t + 1) * (k + 1) for k in range(12)] for t in range(n)}
    for k in range(12):
        if k < 10:  # fewer than 10 losses for every t so far: uniform
            assert s.weights().tolist() == [1.0] * n
        s.update_with_all_losses(torch.arange(n), torch.tensor([losses[t][k] for t in range(n)]))
        if k < 9:
            assert not s.warmed_up()
    assert s.warmed_up()
    # definition: last 10 losses per t, p ∝ sqrt(mean(l²)), mixed with uniform 0.001
    rms = torch.tensor([sum(l * l for l in losses[t][-10:]) / 10 for t in range(n)], dtype=torch.float64).sqrt()
    expected = rms / rms.sum() * 0.999 + 0.001 / n
    torch.testing.assert_close(s.weights(), expected)
    t, w = s.sample(64)
    torch.testing.assert_close(w.double(), 1.0 / (n * expected[t]), rtol=1e-6, atol=0)


def test_state_dict_resumes_exactly(tmp_path):
    s = create_timestep_sampler("loss-second-moment", 8, seed=3)
    for _ in range(12):
        t, _ = s.sample(8)
        s.update_with_all_losses(t, t.double() + 1.0)
    path = tmp_path / "ts.pt"
    torch.save(s.state_dict(), path)
    expected = [s.sample(6) for _ in range(3)]
    r = LossSecondMomentResampler(8, seed=99)
    r.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    for (t1, w1) in expected:
        t2, w2 = r.sample(6)
        assert torch.equal(t1, t2) and torch.equal(w1, w2)


def test_high_noise_sampler_follows_its_density_with_unit_weights():
    n, draws = 10, 40000
    s = create_timestep_sampler("high-noise", n, seed=2)
    t, w = s.sample(draws)
    assert torch.all(w == 1.0)  # biased on purpose: no importance weights
    density = torch.tensor([((i + 1) / n) ** 2 for i in range(n)], dtype=torch.float64)
    density /= density.sum()  # p(t) ∝ ((t + 1) / N)²: t = N−1 is 100× as likely as t = 0
    freq = torch.bincount(t, minlength=n).double() / draws
    assert (freq - density).abs().max() < 0.01
    assert freq[-1] / freq[0] > 50


def test_unknown_sampler_is_named():
    import pytest

    with pytest.raises(ValueError, match="high-noise"):
        create_timestep_sampler("snr", 10)
