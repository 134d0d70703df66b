import itertools

import numpy as np
import pytest

from piti_cli.metrics.kid import kernel_distance, mmd2_unbiased, polynomial_kernel


def _population_mmd2(support_x, support_y):
    """Exact MMD² between uniform distributions on two finite supports (independent draws)."""
    kxx = polynomial_kernel(support_x, support_x).mean()
    kyy = polynomial_kernel(support_y, support_y).mean()
    kxy = polynomial_kernel(support_x, support_y).mean()
    return kxx + kyy - 2 * kxy


def test_unbiased_on_known_discrete_distributions():
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(5, 3))
    sy = rng.normal(size=(4, 3)) + 0.5
    exact = _population_mmd2(sx, sy)
    m, reps = 4, 4000
    ours, biased = [], []
    for r in range(reps):
        x = sx[rng.integers(0, 5, size=m)]
        y = sy[rng.integers(0, 4, size=m)]
        mean, _ = kernel_distance(x, y, num_subsets=1, subset_size=m, seed=r)
        ours.append(mean)
        biased.append(polynomial_kernel(x, x).mean() + polynomial_kernel(y, y).mean() - 2 * polynomial_kernel(x, y).mean())
    ours = np.array(ours)
    stderr = ours.std() / np.sqrt(reps)
    assert abs(ours.mean() - exact) < 4 * stderr
    # The V-statistic is visibly biased at this size: the test can tell the two apart.
    assert abs(np.mean(biased) - exact) > 10 * stderr


def test_same_distribution_is_zero_on_average():
    rng = np.random.default_rng(1)
    vals = [mmd2_unbiased(rng.normal(size=(6, 4)), rng.normal(size=(6, 4))) for _ in range(3000)]
    assert abs(np.mean(vals)) < 4 * np.std(vals) / np.sqrt(len(vals))
    assert min(vals) < 0  # unbiased estimates go negative


def test_mmd2_matches_explicit_double_sum():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 5
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    cross = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert mmd2_unbiased(x, y) == pytest.approx(within - 2 * cross, rel=1e-12)


def test_seeded_subsets_are_reproducible():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(60, 8))
    assert kernel_distance(a, b, 10, 20, seed=7) == kernel_distance(a, b, 10, 20, seed=7)
    assert kernel_distance(a, b, 10, 20, seed=7) != kernel_distance(a, b, 10, 20, seed=8)
