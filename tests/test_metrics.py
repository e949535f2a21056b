from __future__ import annotations

import numpy as np
import pytest
from conftest import random_clouds
from scipy.stats import wasserstein_distance

from jetviz import metrics as M

# Tiny samples are the point here; the few-jets warning is tested on its own below.
pytestmark = pytest.mark.filterwarnings("ignore:.*rests on only:RuntimeWarning")


def blob_images(n: int, seed: int, width: float = 2.5, n_hits: int = 8, centre: float = 12.0) -> np.ndarray:
    """Images [n, 25, 25] with n_hits Gaussian-placed hits whose p_T fractions sum to 1."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 25, 25), np.float32)
    idx = np.clip(np.round(rng.normal(centre, width, (n, n_hits, 2))).astype(int), 0, 24)
    for i in range(n):
        np.add.at(x[i], (idx[i, :, 0], idx[i, :, 1]), rng.dirichlet(np.ones(n_hits)).astype(np.float32))
    return x


def random_spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ------------------------------------------------------------------------------------ Fréchet distance
@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fd_equal_covariances_is_squared_mean_shift(method):
    c = random_spd(6, 0)
    mu = np.arange(6.0)
    delta = np.array([0.5, -1.0, 0.0, 2.0, 0.1, 0.0])
    assert M.frechet_distance(mu, c, mu + delta, c, method=method) == pytest.approx(delta @ delta, rel=1e-6)
    assert M.frechet_distance(mu, c, mu, c, method=method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fd_diagonal_closed_form(method):
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    m1, m2 = np.zeros(3), np.array([1.0, 0.0, -2.0])
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert M.frechet_distance(m1, np.diag(v1), m2, np.diag(v2), method=method) == pytest.approx(expected)


def test_fd_methods_agree_and_survive_singular_covariances():
    c1, c2 = random_spd(20, 1), random_spd(20, 2)
    mu = np.zeros(20)
    assert M.frechet_distance(mu, c1, mu, c2) == pytest.approx(M.frechet_distance(mu, c1, mu, c2, "sqrtm"))
    low_rank = np.outer(np.arange(20.0), np.arange(20.0))  # rank 1, like always-empty corner pixels
    d = M.frechet_distance(mu, low_rank, mu, low_rank)
    assert np.isfinite(d) and d == pytest.approx(0.0, abs=1e-6 * np.trace(low_rank))
    with pytest.raises(ValueError, match="method"):
        M.frechet_distance(mu, c1, mu, c2, method="svd")
    with pytest.raises(ValueError, match="shapes"):
        M.frechet_distance(mu, c1, mu[:3], c2)


def test_fid_from_features_identical_and_shifted_samples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 4))
    same = M.fid_from_features(x, x, n_boot=5, seed=0)
    assert same.value == pytest.approx(0.0, abs=1e-9) and same.n == 4000
    y = rng.normal(size=(4000, 4)) + np.array([1.0, 0.0, 0.0, 0.0])
    shifted = M.fid_from_features(x, y, n_boot=10, seed=0)
    assert shifted.value == pytest.approx(1.0, abs=0.1)
    assert 0 < shifted.err < 0.2 and len(shifted.extra["replicas"]) == 10
    assert np.isnan(M.fid_from_features(x, y, n_boot=0).err)


def test_pixel_fd_sees_a_one_pixel_shift():
    a = blob_images(300, 0)
    assert M.pixel_fd(a, a, n_boot=0).value == pytest.approx(0.0, abs=1e-9)
    assert M.pixel_fd(a, np.roll(a, 1, axis=2), n_boot=0).value > 1e-3


def test_fid_uses_feature_fn_on_copies_and_accepts_tensors():
    import torch

    a, b = blob_images(200, 0), blob_images(200, 1, width=4.0)
    a0 = a.copy()

    def feature_fn(x):
        out = torch.from_numpy(np.stack([x.sum((1, 2)), x[:, 12, 12], x[:, :, 10:15].sum((1, 2))], 1))
        x *= 0  # a careless extractor must not touch the caller's images
        return out

    r = M.fid(a, b, feature_fn, batch_size=64, n_boot=0)
    np.testing.assert_array_equal(a, a0)

    def feats(x):
        return np.stack([x.sum((1, 2)), x[:, 12, 12], x[:, :, 10:15].sum((1, 2))], 1)

    assert r.value == pytest.approx(M.fid_from_features(feats(a), feats(b), n_boot=0).value)
    with pytest.raises(ValueError, match="feature_fn"):
        M.fid(a, b, lambda x: x.sum((1, 2)))


# ------------------------------------------------------------------------------------ Wasserstein
def test_pixel_wd_matches_brute_force_pooling():
    a, b = blob_images(100, 0), blob_images(100, 1, width=4.0)
    assert M.pixel_wd(a, b, n_boot=0).value == pytest.approx(wasserstein_distance(a.ravel(), b.ravel()))
    nz = M.pixel_wd(a, b, include_zeros=False, n_boot=0).value
    assert nz == pytest.approx(wasserstein_distance(a[a != 0], b[b != 0]))


def test_pixel_wd_is_shift_invariant_but_sees_scaling():
    a = blob_images(200, 0)
    r = M.pixel_wd(a, a, n_boot=5, seed=0)
    assert r.value == 0.0 and r.err > 0
    assert M.pixel_wd(a, np.roll(a, 1, axis=2), n_boot=0).value == 0.0  # pooling discards position
    assert M.pixel_wd(a, 1.3 * a, n_boot=0).value > 1e-5
    noisy = a + 1e-6
    assert M.pixel_wd(a, noisy, include_zeros=False, zero_threshold=1e-5, n_boot=0).value < 1e-5


def test_w1m_analytic():
    x = np.random.default_rng(0).lognormal(-2.0, 0.5, 500)
    assert M.w1m(x, x, n_boot=0).value == 0.0
    r = M.w1m(x, x + 0.05, n_boot=10, seed=0)
    assert r.value == pytest.approx(0.05) and r.err > 0


def test_w1m_of_point_clouds_uses_relative_mass():
    physics = pytest.importorskip("jetviz.physics")
    rng = np.random.default_rng(0)
    a, b = random_clouds(50, rng), random_clouds(50, rng)
    expected = wasserstein_distance(physics.jet_mass_rel(a), physics.jet_mass_rel(b))
    assert M.w1m(a, b, n_boot=0).value == pytest.approx(expected)


# ------------------------------------------------------------------------------------ diversity
def test_diversity_index_exact_value_and_invariances():
    k, m = 5, 20  # every image one unit hit in one of k pixels, each pixel m times
    x = np.zeros((k * m, 25, 25), np.float32)
    x[np.arange(k * m), 0, np.arange(k * m) % k] = 1.0
    n = k * m
    assert M.diversity_index(x, n_boot=0).value == pytest.approx((1 - 1 / k) * n / (n - 1))
    real = blob_images(200, 0)
    di = M.diversity_index(real, n_boot=10, seed=0)
    assert M.diversity_index(3.0 * real, n_boot=0).value == pytest.approx(di.value)
    assert di.err > 0
    collapsed = np.repeat(real[:1], 200, axis=0)
    assert M.diversity_index(collapsed, n_boot=0).value == pytest.approx(0.0, abs=1e-12)
    ratio = M.diversity_ratio(real, real.copy(), n_boot=5, seed=0)
    assert ratio.value == pytest.approx(1.0) and ratio.extra["real"].value == pytest.approx(di.value)
    with pytest.raises(ValueError, match="empty"):
        M.diversity_index(np.zeros((5, 25, 25)))


# ------------------------------------------------------------------------------------ classifier AUC
def test_classifier_auc_same_distribution_is_about_half():
    a, b = blob_images(500, 0), blob_images(500, 1)
    r = M.classifier_auc(a, b, seed=0, epochs=6)
    assert abs(r.value - 0.5) < max(3 * r.err, 0.05)
    assert r.extra["n_test_gen"] == r.extra["n_test_real"] == 150


@pytest.mark.parametrize("model", ["cnn", "logistic"])
def test_classifier_auc_separates_different_images(model):
    a, b = blob_images(300, 0), blob_images(300, 1, centre=9.0)
    a0 = a.copy()
    r = M.classifier_auc(a, b, seed=0, model=model, epochs=6)
    assert r.value > 0.95 and 0 < r.err < 0.05
    np.testing.assert_array_equal(a, a0)


def test_classifier_auc_is_seeded():
    import torch

    a, b = blob_images(200, 0), blob_images(200, 1)
    state = torch.random.get_rng_state()
    r1 = M.classifier_auc(a, b, seed=3, model="logistic", epochs=3)
    r2 = M.classifier_auc(a, b, seed=3, model="logistic", epochs=3)
    assert r1.value == r2.value
    assert torch.equal(state, torch.random.get_rng_state())  # torch's global RNG untouched


# ------------------------------------------------------------------------------------ warnings, errors
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_few_jets_warn_with_callers_location():
    with pytest.warns(RuntimeWarning, match="W1M rests on only 100 jets") as rec:
        M.w1m(np.ones(100), np.ones(100), n_boot=0)
    assert rec[0].filename == __file__
    with pytest.warns(RuntimeWarning, match="Fréchet distance on 625 features") as rec:
        M.pixel_fd(blob_images(100, 0), blob_images(100, 1), n_boot=0)
    assert rec[0].filename == __file__
    with pytest.warns(RuntimeWarning, match="diversity index"):
        M.diversity_index(blob_images(50, 0), n_boot=0)
    M.w1m(np.arange(1000.0), np.arange(1000.0), n_boot=0)  # enough jets: no warning (error filter)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        M.pixel_wd(np.zeros((4, 625)), np.zeros((4, 625)))
    with pytest.raises(ValueError, match="image shapes differ"):
        M.pixel_fd(np.zeros((4, 25, 25)), np.zeros((4, 20, 20)))
    with pytest.raises(ValueError, match="seed"):
        M.w1m(np.arange(5.0), np.arange(5.0), seed=None)
    with pytest.raises(ValueError, match="point clouds"):
        M.jetnet_w1m(np.zeros((4, 30)), np.zeros((4, 30)))


# ------------------------------------------------------------------------------------ jetnet wrappers
@pytest.fixture(scope="module")
def clouds():
    rng = np.random.default_rng(0)
    return random_clouds(150, rng), random_clouds(150, rng, spread=0.1)


def test_jetnet_w1m_seeded_masked_and_near_zero_for_identical(clouds):
    from jetnet.evaluation import gen_metrics

    a, c = clouds
    saved = gen_metrics.rng
    same, diff = M.jetnet_w1m(a, a, seed=0), M.jetnet_w1m(a, c, seed=0)
    assert gen_metrics.rng is saved  # jetnet's module RNG restored
    assert same.value < 0.2 * diff.value and diff.err > 0
    assert M.jetnet_w1m(a, c, seed=0).value == diff.value
    assert M.jetnet_w1m(a, c, seed=1).value != diff.value
    garbage = a.copy()
    garbage[..., :3] = np.where(garbage[..., 3:] > 0, garbage[..., :3], 7.0)  # junk in masked-out slots
    assert M.jetnet_w1m(a, garbage, seed=0).value == same.value
    assert M.jetnet_w1m(a[..., :3], a[..., :3], seed=0).value == same.value  # 4th column is not a mass


def test_jetnet_w1p_and_w1efp(clouds):
    a, c = clouds
    p_same, p_diff = M.jetnet_w1p(a, a), M.jetnet_w1p(a, c)
    assert len(p_diff.extra["per_feature"]) == 3 and p_same.value < 0.2 * p_diff.value
    e_same, e_diff = M.jetnet_w1efp(a[:80], a[:80]), M.jetnet_w1efp(a[:80], c[:80])
    assert len(e_diff.extra["per_feature"]) == 5 and e_same.value < 0.3 * e_diff.value


def test_jetnet_fpd_kpd_on_efp_features(clouds):
    a, c = clouds
    fa, fc = M.jet_efp_features(a), M.jet_efp_features(c)
    assert fa.shape == (150, 36)
    f_same, f_diff = M.jetnet_fpd(fa, fa, num_batches=5, num_points=4), M.jetnet_fpd(fa, fc, num_batches=5,
                                                                                      num_points=4)
    assert f_same.value < 0.05 * f_diff.value and f_diff.extra["max_samples"] == 150
    k_same, k_diff = M.jetnet_kpd(fa, fa, num_batches=5), M.jetnet_kpd(fa, fc, num_batches=5)
    assert abs(k_same.value) < 0.1 * k_diff.value
