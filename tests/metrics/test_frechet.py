import numpy as np
import pytest
import scipy.linalg

from piti_cli.metrics.frechet import feature_statistics, frechet_distance, frechet_distance_from_features


def _scipy_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(200, 16), (500, 64), (40, 8)])
def test_matches_scipy_sqrtm_on_random_features(n, d):
    rng = np.random.default_rng(n + d)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(loc=0.3, size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    mu1, s1 = np.mean(a, 0), np.cov(a, rowvar=False)
    mu2, s2 = np.mean(b, 0), np.cov(b, rowvar=False)
    ours = frechet_distance(mu1, s1, mu2, s2)
    ref = _scipy_fid(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-8, abs=1e-8)
    assert frechet_distance_from_features(a, b) == pytest.approx(ref, rel=1e-8)


def test_rank_deficient_covariances_agree_with_scipy():
    # N < D: both covariances singular, the case FID users hit with small sample sets.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 0.1
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_fid(mu1, s1, mu2, s2), rel=1e-6)


def test_identical_is_zero_and_shift_is_squared_norm():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 20))
    mu, s = feature_statistics(x)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    delta = rng.normal(size=20)
    assert frechet_distance(mu, s, mu + delta, s) == pytest.approx(float(delta @ delta), rel=1e-9)


def test_closed_form_diagonal_gaussians():
    # For diagonal covariances: sum (sqrt(a_i) - sqrt(b_i))^2 + |dmu|^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 2.0
    got = frechet_distance(np.zeros(3), np.diag(a), np.array([1.0, 1.0, 0.0]), np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)


def test_never_negative_and_float64():
    s = np.eye(4) * 1e-12
    assert frechet_distance(np.zeros(4, np.float32), s.astype(np.float32), np.zeros(4), s) == 0.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
