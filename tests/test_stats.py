from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats as sps

from jetviz.metrics import pixel_fd, pixel_wd, w1_distance
from jetviz.stats import (
    MetricResult,
    as_rng,
    auc_hanley_mcneil,
    bootstrap_ci,
    ks_per_class,
    ks_test,
    metric_floor,
    metric_vs_real,
    ratio_to_floor,
    roc_auc,
    welch_t_test,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*rests on only:RuntimeWarning")


def test_seed_must_be_given():
    with pytest.raises(ValueError, match="seed"):
        as_rng(None)
    g = np.random.default_rng(1)
    assert as_rng(g) is g


def test_metric_result_tuple_and_str():
    r = MetricResult(0.25, 0.01, 100)
    assert r.as_tuple() == (0.25, 0.01)
    assert "±" in str(r)


# ------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_ci_covers_true_mean_at_nominal_rate():
    covered = 0
    for i in range(100):
        x = np.random.default_rng(1000 + i).normal(3.0, 2.0, 100)
        ci = bootstrap_ci(x, np.mean, n_boot=300, level=0.95, seed=i)
        covered += 3.0 in ci
        assert ci.low < ci.estimate < ci.high
    assert covered >= 88  # nominal 95; the percentile bootstrap under-covers slightly at n = 100


def test_bootstrap_ci_std_matches_standard_error():
    x = np.random.default_rng(0).exponential(1.0, 400)
    ci = bootstrap_ci(x, np.mean, n_boot=1000, seed=0)
    assert ci.std == pytest.approx(x.std(ddof=1) / np.sqrt(x.size), rel=0.15)
    assert bootstrap_ci(x, np.mean, n_boot=50, seed=3) == bootstrap_ci(x, np.mean, n_boot=50, seed=3)


def test_bootstrap_ci_rejects_bad_input():
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(np.arange(5.0), level=1.5)
    with pytest.raises(ValueError, match="2 rows"):
        bootstrap_ci(np.array([1.0]))


# ------------------------------------------------------------------------------------------ tests
def test_ks_rejects_different_and_accepts_halves_of_one_sample():
    rng = np.random.default_rng(0)
    assert ks_test(rng.normal(0, 1, 500), rng.normal(0.5, 1, 500)).pvalue < 1e-6
    x = rng.normal(0, 1, 1000)
    r = ks_test(x[:500], x[500:])
    assert r.pvalue > 0.05 and r.n_a == r.n_b == 500


def test_ks_per_class_bonferroni():
    rng = np.random.default_rng(2)  # a seed where q and z pass p < 0.05 by chance: Bonferroni must save them
    real = {c: rng.normal(0, 1, 300) for c in "gqtwz"}
    gen = {c: rng.normal(0.4 if c == "t" else 0.0, 1, 300) for c in "gqtwz"}
    out = ks_per_class(real, gen, alpha=0.05)
    for c, r in out.items():
        raw = sps.ks_2samp(real[c], gen[c]).pvalue
        assert r.pvalue == pytest.approx(raw)
        assert r.pvalue_adjusted == pytest.approx(min(1.0, 5 * raw))
        assert r.reject == (r.pvalue_adjusted < 0.05)
    assert out["t"].reject
    assert out["q"].pvalue < 0.05 and out["z"].pvalue < 0.05
    assert not any(out[c].reject for c in "gqwz")
    assert out["t"].extra["n_tests"] == 5


def test_ks_per_class_needs_matching_classes():
    with pytest.raises(ValueError, match="same classes"):
        ks_per_class({"g": np.zeros(3)}, {"q": np.zeros(3)})


def test_welch_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 0.1, 5), rng.normal(1.2, 0.3, 8)
    ours = welch_t_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.pvalue == pytest.approx(ref.pvalue)
    assert ours.extra["df"] == pytest.approx(ref.df)
    with pytest.raises(ValueError, match=">= 2 values"):
        welch_t_test([1.0], [1.0, 2.0])


def test_roc_auc_and_hanley_mcneil():
    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert roc_auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    # Hanley & McNeil (1982) Table: AUC 0.5 with 50 + 50 cases -> SE ≈ 0.058
    assert auc_hanley_mcneil(0.5, 50, 50) == pytest.approx(0.0578, abs=0.001)


# ------------------------------------------------------------------------------------------ floors
def _images(n, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 25, 25), np.float32)
    idx = np.clip(np.round(rng.normal(12, 2.5, (n, 8, 2))).astype(int), 0, 24)
    for i in range(n):
        np.add.at(x[i], (idx[i, :, 0], idx[i, :, 1]), rng.dirichlet(np.ones(8)).astype(np.float32))
    return x * scale


def test_floor_of_identical_pools_is_zero():
    pool = _images(60, 0)
    fn = functools.partial(pixel_wd, n_boot=0)
    floor = metric_floor(fn, pool, pool.copy(), n=60, n_resamples=3, seed=0)
    assert floor.value == 0.0 and floor.err == 0.0
    fd_fn = functools.partial(pixel_fd, n_boot=0)
    fd_floor = metric_floor(fd_fn, pool, pool.copy(), n=60, n_resamples=2, seed=0)
    assert fd_floor.value == pytest.approx(0.0, abs=1e-9)


def test_floor_and_vs_real_ratio():
    real = np.random.default_rng(0).normal(0, 1, 4000)
    gen = np.random.default_rng(1).normal(0.3, 1, 2000)
    fn = functools.partial(w1_distance, n_boot=0)
    floor = metric_floor(fn, real[:2000], real[2000:], n=500, n_resamples=20, seed=0)
    one_pool = metric_floor(fn, real, None, n=500, n_resamples=20, seed=0)
    vs = metric_vs_real(fn, gen, real, n=500, n_resamples=20, seed=0)
    assert len(floor.extra["values"]) == 20 and floor.value > 0
    assert one_pool.value == pytest.approx(floor.value, rel=0.5)
    assert vs.value == pytest.approx(0.3, abs=0.05)
    ratio = ratio_to_floor(vs, floor)
    assert ratio.value > 3 and ratio.err > 0
    assert metric_floor(fn, real[:2000], real[2000:], n=500, seed=5) == metric_floor(
        fn, real[:2000], real[2000:], n=500, seed=5)


def test_floor_passes_seed_to_seeded_metrics_and_accepts_tuples():
    seen = []

    def metric(a, b, seed):
        seen.append(seed)
        return (float(np.mean(a) - np.mean(b)), 0.0)  # JetNet-style (mean, std)

    x = np.arange(100.0)
    r = metric_floor(metric, x, x, n=10, n_resamples=4, seed=0)
    assert len(set(seen)) == 4 and np.isfinite(r.value)


def test_floor_rejects_too_large_n():
    with pytest.raises(ValueError, match="exceeds"):
        metric_floor(lambda a, b: 0.0, np.zeros(10), np.zeros(20), n=11)
    with pytest.raises(ValueError, match="disjoint"):
        metric_floor(lambda a, b: 0.0, np.zeros(10), None, n=6)
