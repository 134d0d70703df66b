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
