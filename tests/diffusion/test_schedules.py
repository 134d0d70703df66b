import math

import numpy as np
import pytest

from piti_cli.diffusion.schedules import get_beta_schedule


@pytest.mark.parametrize("n", [1000, 50])
def test_cosine_matches_closed_form(n):
    betas = get_beta_schedule("squaredcos_cap_v2", n)
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = [min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)]
    assert betas.dtype == np.float64 and betas.shape == (n,)
    np.testing.assert_allclose(betas, expected, rtol=1e-12, atol=0)
    assert betas[-1] == 0.999  # the cap bites at the last step


def test_cosine_alpha_bar_follows_cos_squared():
    betas = get_beta_schedule("squaredcos_cap_v2", 1000)
    alpha_bar = np.cumprod(1 - betas)
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    for t in (1, 10, 500, 900):
        assert alpha_bar[t - 1] == pytest.approx(math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2 / f0, rel=1e-9)


@pytest.mark.parametrize("n", [1000, 100])
def test_linear_matches_closed_form(n):
    betas = get_beta_schedule("linear", n)
    scale = 1000 / n
    start, end = 0.0001 * scale, 0.02 * scale
    expected = [start + i * (end - start) / (n - 1) for i in range(n)]
    np.testing.assert_allclose(betas, expected, rtol=1e-12)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        get_beta_schedule("quadratic", 10)
