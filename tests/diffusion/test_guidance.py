import torch

from piti_cli.diffusion.guidance import classifier_free


def make_pair(seed=0, channels=3, learned_sigma=True):
    """A pair denoiser whose conditional and unconditional halves differ; counts its calls."""
    g = torch.Generator().manual_seed(seed)
    w_c = torch.randn(2 * channels if learned_sigma else channels, channels, generator=g)
    w_u = torch.randn(2 * channels if learned_sigma else channels, channels, generator=g)
    calls = []

    def single(x, w):
        return torch.einsum("oc,bchw->bohw", w, x) + 0.3

    def pair(x2, t2):
        calls.append(x2.shape[0])
        half = x2.shape[0] // 2
        assert torch.equal(x2[:half], x2[half:]) and torch.equal(t2[:half], t2[half:])
        return torch.cat([single(x2[:half], w_c), single(x2[half:], w_u)])

    return pair, (lambda x: single(x, w_c)), (lambda x: single(x, w_u)), calls


def test_scale_one_is_conditional():
    pair, cond, _, calls = make_pair()
    x, t = torch.randn(2, 3, 4, 4), torch.tensor([10.0, 10.0])
    torch.testing.assert_close(classifier_free(pair, 1.0)(x, t), cond(x))
    assert calls == [4]  # one forward over the doubled batch


def test_scale_formula_and_paper_convention():
    pair, cond, uncond, _ = make_pair()
    x, t = torch.randn(2, 3, 4, 4), torch.tensor([5.0, 5.0])
    out = classifier_free(pair, 3.0)(x, t)
    ec, eu = cond(x)[:, :3], uncond(x)[:, :3]
    torch.testing.assert_close(out[:, :3], eu + 3.0 * (ec - eu))
    w = 2.0  # paper: ε_c + w (ε_c − ε_u) with s = 1 + w
    torch.testing.assert_close(out[:, :3], ec + w * (ec - eu))
    torch.testing.assert_close(out[:, 3:], cond(x)[:, 3:])  # variance from the conditional half
    assert out.shape == (2, 6, 4, 4)


def test_eps_only_output():
    pair, cond, uncond, _ = make_pair(learned_sigma=False)
    x, t = torch.randn(2, 3, 4, 4), torch.tensor([5.0, 5.0])
    out = classifier_free(pair, 0.0)(x, t)
    torch.testing.assert_close(out, uncond(x))


def test_normalized_matches_conditional_moments():
    pair, cond, _, _ = make_pair(seed=1)
    x, t = torch.randn(3, 3, 8, 8), torch.full((3,), 100.0)
    out = classifier_free(pair, 5.0, normalized=True)(x, t)[:, :3]
    ec = cond(x)[:, :3]
    torch.testing.assert_close(out.flatten(1).mean(1), ec.flatten(1).mean(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.flatten(1).std(1), ec.flatten(1).std(1), atol=1e-5, rtol=1e-5)
    # and it is an affine map of the unnormalized guided ε per sample (correlation 1)
    plain = classifier_free(pair, 5.0)(x, t)[:, :3]
    for b in range(3):
        r = torch.corrcoef(torch.stack([out[b].flatten(), plain[b].flatten()]))[0, 1]
        assert r.item() > 0.99999


def gaussian_pair(batches):
    """Closed-form conditional / unconditional halves: exact ε for data N(0.3, 0.4²) and N(−0.2, 0.6²)."""
    from piti_cli.diffusion.analytic import GaussianDataDenoiser
    from piti_cli.diffusion.respace import make_process

    base = make_process()
    cond, uncond = GaussianDataDenoiser(base, 0.3, 0.4), GaussianDataDenoiser(base, -0.2, 0.6)

    def pair(x2, t2):
        batches.append(("pair", x2.shape[0], float(t2[0])))
        half = x2.shape[0] // 2
        return torch.cat([cond(x2[:half], t2[:half]), uncond(x2[half:], t2[half:])])

    def conditional(x, t):
        batches.append(("cond", x.shape[0], float(t[0])))
        return cond(x, t)

    return pair, conditional


def test_interval_covering_all_t_changes_nothing():
    from piti_cli.diffusion.respace import make_process
    from piti_cli.diffusion.samplers import sample_ddim

    p = make_process(respacing="10")
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    runs = []
    for interval in (None, (0.0, 1000.0), (0, 999)):
        batches = []
        pair, conditional = gaussian_pair(batches)
        den = classifier_free(pair, 3.0, interval=interval, conditional=conditional)
        runs.append(sample_ddim(den, p, x_T, torch.Generator().manual_seed(1), eta=1.0))
        assert [b[:2] for b in batches] == [("pair", 4)] * 10
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_outside_the_interval_only_the_conditional_half_runs():
    from piti_cli.diffusion.respace import make_process, space_timesteps
    from piti_cli.diffusion.samplers import sample_ddim

    lo, hi = 200.0, 600.0
    p = make_process(respacing="10")
    batches = []
    pair, conditional = gaussian_pair(batches)
    den = classifier_free(pair, 3.0, interval=(lo, hi), conditional=conditional)
    sample_ddim(den, p, (2, 3, 8, 8), torch.Generator().manual_seed(1))
    ts = [float(k) for k in reversed(space_timesteps(1000, "10"))]  # network t = original step here
    assert batches == [("pair", 4, t) if lo <= t <= hi else ("cond", 2, t) for t in ts]
    assert 0 < sum(b[0] == "pair" for b in batches) < 10
    # and the value outside is the conditional prediction itself, inside the guided one
    x, out_t, in_t = torch.randn(2, 3, 4, 4), torch.full((2,), 900.0), torch.full((2,), 300.0)
    plain = classifier_free(pair, 3.0)
    cond_only = classifier_free(pair, 1.0)
    torch.testing.assert_close(den(x, out_t), cond_only(x, out_t), rtol=0, atol=1e-7)
    assert torch.equal(den(x, in_t), plain(x, in_t))
    # a batch straddling the interval guides only the samples inside
    mixed = den(x, torch.tensor([300.0, 900.0]))
    assert torch.equal(mixed[:1], plain(x, in_t)[:1])
    torch.testing.assert_close(mixed[1:], cond_only(x, out_t)[1:], rtol=0, atol=1e-7)


def test_bad_intervals():
    import math

    import pytest

    pair, conditional = gaussian_pair([])
    for bad in ((600, 200), (-1, 10), (0, 1001), (math.nan, 5), (5, 5), ("a", 3), (1,)):
        with pytest.raises(ValueError, match="guidance interval"):
            classifier_free(pair, 2.0, interval=bad, conditional=conditional)
    with pytest.raises(ValueError, match="conditional denoiser"):
        classifier_free(pair, 2.0, interval=(0, 500))
