"""Statistics behind the jetviz metrics: result types, bootstrap, two-sample tests (KS, Welch, classifier
AUC) and metric floors.

Conventions (shared with :mod:`jetviz.metrics`):

* Every metric returns a :class:`MetricResult` ``(value, err, n, extra)``; ``value, err = result.as_tuple()``
  gives JetNet's ``(mean, std)`` pair. ``err`` is a standard deviation (bootstrap, batches or resamplings,
  as each function documents), ``nan`` when no uncertainty was computed.
* Hypothesis tests return a :class:`StatTestResult` (statistic, p-value, and for multiple testing the
  adjusted p-value and the decision).
* Every random process takes ``seed``: an ``int`` or a ``numpy.random.Generator`` (which is advanced).
  ``None`` is refused, so no result depends on an unseeded RNG. Inputs are never modified.
* A **floor** is a metric between two independent real samples of the same size: sample-size bias and
  sampling noise make it non-zero, so a generated sample is judged by ``value / floor`` at equal ``n``.
  With heavy-tailed jet observables a single split can mislead by a factor of 2-5; :func:`metric_floor`
  and :func:`metric_vs_real` average over many resamplings.
* A ``RuntimeWarning`` (pointing at the caller) is raised when a statistic rests on fewer jets per sample
  than :data:`MIN_JETS` lists (Fréchet distances: fewer than 2·D rows for D features).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import stats as sps

SeedLike = int | np.random.Generator


@dataclass(frozen=True)
class MetricResult:
    """A metric value with its uncertainty.

    ``value``: the metric; ``err``: one standard deviation (see each metric for its origin; ``nan`` if not
    computed); ``n``: jets per sample the value rests on (the smaller sample for two-sample metrics);
    ``extra``: metric-specific details (per-feature values, bootstrap replicas, ...).
    """

    value: float
    err: float
    n: int
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def as_tuple(self) -> tuple[float, float]:
        """``(value, err)``, JetNet's ``(mean, std)`` convention."""
        return self.value, self.err

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.err:.2g} (n={self.n})"


@dataclass(frozen=True)
class StatTestResult:
    """Outcome of a two-sample hypothesis test.

    ``pvalue_adjusted`` and ``reject`` are set by the multiple-testing functions (e.g.
    :func:`ks_per_class`); ``extra`` holds test-specific numbers (e.g. Welch's degrees of freedom).
    """

    statistic: float
    pvalue: float
    n_a: int
    n_b: int
    pvalue_adjusted: float | None = None
    reject: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ConfidenceInterval:
    """A percentile-bootstrap interval ``[low, high]`` at confidence ``level`` around ``estimate``."""

    estimate: float
    low: float
    high: float
    level: float
    std: float
    n_boot: int

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high


# ----------------------------------------------------------------------------------------------- helpers
# Fewest jets per sample before a metric warns. FD needs a full-rank covariance (N > D); 2·D is used.
MIN_JETS = MappingProxyType({
    "w1": 1000,          # W1 of a jet-level observable (W1M etc.): heavy tails make smaller N noisy
    "pixel_wd": 1000,
    "diversity_index": 500,
    "classifier_auc": 200,  # per sample; the held-out set is a fraction of it
    "jetnet": 1000,      # W1M/W1P/W1EFP/FPD/KPD through jetnet (which itself recommends 50,000)
})


def check_images(x: Any, name: str) -> np.ndarray:
    """``x`` as an array of images ``[N, H, W]`` (N >= 2), else a ``ValueError`` naming ``name``."""
    a = np.asarray(x)
    if a.ndim != 3:
        raise ValueError(f"{name} must be images of shape [N, H, W], got {a.shape}")
    if len(a) < 2:
        raise ValueError(f"{name} needs at least 2 images, got {len(a)}")
    return a


def check_same_pixels(a: np.ndarray, b: np.ndarray) -> None:
    """Raise a ``ValueError`` unless two image arrays share their pixel grid."""
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"image shapes differ: {a.shape[1:]} vs {b.shape[1:]}")


def as_rng(seed: SeedLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an ``int`` seed (or the Generator itself); refuses ``None``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or numpy.random.Generator, got {seed!r}; pass e.g. seed=0")
    return np.random.default_rng(int(seed))


def child_seed(rng: np.random.Generator) -> int:
    """Draw an independent integer seed from ``rng`` (for seeding a sub-process such as torch)."""
    return int(rng.integers(0, 2**31 - 1))


def warn_few(n: int, minimum: int, what: str, stacklevel: int = 3) -> None:
    """Emit a ``RuntimeWarning`` if ``n < minimum`` jets support the statistic ``what``."""
    if n < minimum:
        warnings.warn(f"{what} rests on only {n} jets (< {minimum}); expect large bias and noise",
                      RuntimeWarning, stacklevel=stacklevel)


def _as_1d(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty; pass at least one value")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(a)))} non-finite values; drop them first")
    return a


# ------------------------------------------------------------------------------------------- bootstrap
def bootstrap_ci(sample: Any, stat_fn: Callable[[np.ndarray], float] = np.mean, n_boot: int = 1000,
                 level: float = 0.68, seed: SeedLike = 0) -> ConfidenceInterval:
    """Percentile bootstrap (Efron 1979) of ``stat_fn`` over the rows (axis 0) of ``sample``.

    ``sample`` may be 1-D values or e.g. images ``[N, 25, 25]`` (rows are resampled whole).
    ``stat_fn(rows) -> float``. Returns the estimate on the full sample, the ``(1±level)/2`` percentiles
    of the ``n_boot`` replicas and their standard deviation.
    """
    x = np.asarray(sample)
    if x.ndim == 0 or len(x) < 2:
        raise ValueError(f"bootstrap needs at least 2 rows, got shape {x.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    rng = as_rng(seed)
    reps = np.array([stat_fn(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)], dtype=np.float64)
    lo, hi = np.percentile(reps, [50 * (1 - level), 50 * (1 + level)])
    return ConfidenceInterval(float(stat_fn(x)), float(lo), float(hi), level, float(reps.std(ddof=1)), n_boot)


# ----------------------------------------------------------------------------------------- hypothesis tests
def ks_test(a: Any, b: Any) -> StatTestResult:
    """Two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, two-sided) of 1-D samples."""
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    r = sps.ks_2samp(x, y)
    return StatTestResult(float(r.statistic), float(r.pvalue), x.size, y.size)


def ks_per_class(real: Mapping[str, Any], gen: Mapping[str, Any], alpha: float = 0.05
                 ) -> dict[str, StatTestResult]:
    """KS test per jet class with a Bonferroni correction over the ``m`` classes compared.

    ``real`` and ``gen`` map class → 1-D observable (e.g. m/p_T) and must have the same keys.
    Adjusted p = min(1, m·p); ``reject`` = adjusted p < ``alpha`` (family-wise error rate ≤ alpha).
    """
    if set(real) != set(gen):
        raise ValueError(f"real and gen must hold the same classes, got {sorted(real)} and {sorted(gen)}")
    if not real:
        raise ValueError("no classes given; pass dicts like {'g': values, ...}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    m = len(real)
    out = {}
    for c in real:
        r = ks_test(real[c], gen[c])
        p_adj = min(1.0, m * r.pvalue)
        out[c] = StatTestResult(r.statistic, r.pvalue, r.n_a, r.n_b, pvalue_adjusted=p_adj,
                                reject=bool(p_adj < alpha), extra={"alpha": alpha, "n_tests": m})
    return out


def welch_t_test(values_a: Any, values_b: Any) -> StatTestResult:
    """Welch's unequal-variance t-test (two-sided), e.g. for a metric's values over seeds of two models.

    t = (x̄_a − x̄_b) / sqrt(s_a²/n_a + s_b²/n_b), with Welch-Satterthwaite degrees of freedom
    (in ``extra["df"]``).
    """
    x, y = _as_1d(values_a, "values_a"), _as_1d(values_b, "values_b")
    if x.size < 2 or y.size < 2:
        raise ValueError(f"Welch's t-test needs >= 2 values per group, got {x.size} and {y.size}")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    if va + vb == 0.0:
        return StatTestResult(math.nan, math.nan, x.size, y.size, extra={"df": math.nan})
    t = (x.mean() - y.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    p = 2.0 * sps.t.sf(abs(t), df)
    return StatTestResult(float(t), float(p), x.size, y.size, extra={"df": float(df)})


def auc_hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC AUC (Hanley & McNeil 1982, Radiology 143:29, eq. 2)."""
    q1, q2 = auc / (2.0 - auc), 2.0 * auc**2 / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(math.sqrt(max(var, 0.0)))


def roc_auc(scores_pos: Any, scores_neg: Any) -> float:
    """ROC AUC = P(score_pos > score_neg) + ½P(tie), via the Mann-Whitney U statistic."""
    p, q = _as_1d(scores_pos, "scores_pos"), _as_1d(scores_neg, "scores_neg")
    ranks = sps.rankdata(np.concatenate([p, q]))
    u = ranks[: p.size].sum() - p.size * (p.size + 1) / 2.0
    return float(u / (p.size * q.size))


# -------------------------------------------------------------------------- classifier two-sample test
def _classifier(kind: str, size: tuple[int, int]):
    from torch import nn

    if kind == "logistic":
        return nn.Sequential(nn.Flatten(), nn.Linear(size[0] * size[1], 1))
    if kind == "cnn":
        h, w = size[0] // 4, size[1] // 4
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B, 8, H/2, W/2)
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, H/4, W/4)
            nn.Flatten(), nn.Linear(16 * h * w, 32), nn.ReLU(), nn.Linear(32, 1),
        )
    raise ValueError(f"model must be 'cnn' or 'logistic', got {kind!r}")


def classifier_auc(images_real: Any, images_gen: Any, seed: SeedLike = 0, *, model: str = "cnn",
                   test_fraction: float = 0.3, val_fraction: float = 0.2, epochs: int = 15,
                   batch_size: int = 128, lr: float = 2e-3) -> MetricResult:
    """Classifier two-sample test: held-out ROC AUC of a classifier trained to tell generated from real.

    0.5 = indistinguishable, 1 = perfectly separable. Inputs (physics space) are mapped to sign(x)·√|x|
    to tame the heavy tail. From each sample a ``test_fraction`` is held out; of the rest
    ``val_fraction`` picks the best epoch (lowest validation loss). ``model``: ``"cnn"`` (2 conv layers,
    ≈20k parameters) or ``"logistic"`` (logistic regression on pixels). Seeded (torch's global RNG is
    forked and restored); torch's thread count is left to the caller. err: Hanley-McNeil standard error
    of the held-out AUC. ≈ 4-5 s at N = 2000 per sample on one core (default settings).
    """
    import torch

    r, g = check_images(images_real, "images_real"), check_images(images_gen, "images_gen")
    check_same_pixels(r, g)
    warn_few(min(len(r), len(g)), MIN_JETS["classifier_auc"], "the classifier AUC")
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1):
        raise ValueError(f"need 0 < test_fraction < 1 and 0 <= val_fraction < 1, got {test_fraction}, "
                         f"{val_fraction}")
    rng = as_rng(seed)
    parts: dict[str, tuple[list, list]] = {k: ([], []) for k in ("train", "val", "test")}
    for label, x in ((0.0, r), (1.0, g)):  # stratified: the same fractions of each sample
        idx = rng.permutation(len(x))
        n_test = max(1, int(round(test_fraction * len(x))))
        n_val = int(round(val_fraction * (len(x) - n_test)))
        for name, sel in (("test", idx[:n_test]), ("val", idx[n_test:n_test + n_val]),
                          ("train", idx[n_test + n_val:])):
            parts[name][0].append(x[sel])
            parts[name][1].append(np.full(len(sel), label, np.float32))
    data = {}
    for name, (xs, ys) in parts.items():
        x = torch.from_numpy(np.concatenate(xs).astype(np.float32))  # (B, H, W), a copy
        data[name] = (torch.sign(x) * x.abs().sqrt(), torch.from_numpy(np.concatenate(ys)))
    if len(data["train"][1]) < 2:
        raise ValueError("too few images left for training; pass more images or lower test/val fractions")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(child_seed(rng))
        gen = torch.Generator().manual_seed(child_seed(rng))
        net = _classifier(model, r.shape[1:])
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def logits(x: torch.Tensor) -> torch.Tensor:
            return net(x[:, None]).squeeze(1)  # (B, 1, H, W) -> (B,)

        xt, yt = data["train"]
        best, best_state, best_epoch = float("inf"), None, -1
        for epoch in range(epochs):
            net.train()
            for i in torch.randperm(len(xt), generator=gen).split(batch_size):
                opt.zero_grad()
                loss_fn(logits(xt[i]), yt[i]).backward()
                opt.step()
            if len(data["val"][1]):
                net.eval()
                with torch.no_grad():
                    v = float(loss_fn(logits(data["val"][0]), data["val"][1]))
                if v < best:
                    best, best_epoch = v, epoch
                    best_state = {k: t.clone() for k, t in net.state_dict().items()}
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            scores = logits(data["test"][0]).numpy()
    y = data["test"][1].numpy()
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    auc = roc_auc(scores[y == 1], scores[y == 0])
    return MetricResult(auc, auc_hanley_mcneil(auc, n_pos, n_neg), min(len(r), len(g)),
                        extra={"n_test_gen": n_pos, "n_test_real": n_neg, "model": model,
                               "best_epoch": best_epoch})


# ------------------------------------------------------------------------------------------------ floors
def _value(r: Any) -> float:
    return float(r.value) if isinstance(r, MetricResult) else float(np.asarray(r).ravel()[0])


def _call(metric_fn: Callable[..., Any], a: Any, b: Any, rng: np.random.Generator) -> float:
    try:
        takes_seed = "seed" in inspect.signature(metric_fn).parameters
    except (TypeError, ValueError):
        takes_seed = False
    return _value(metric_fn(a, b, seed=child_seed(rng)) if takes_seed else metric_fn(a, b))


def _check_n(n: int, pools: Mapping[str, int]) -> None:
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    for name, size in pools.items():
        if n > size:
            raise ValueError(f"n={n} exceeds the {size} jets of {name}; lower n or pass a larger pool")


def _resampled(metric_fn: Callable[..., Any], pool_a: Any, pool_b: Any | None, n: int, n_resamples: int,
               seed: SeedLike, kind: str) -> MetricResult:
    if n_resamples < 2:
        raise ValueError(f"n_resamples must be >= 2 (>= 20 recommended), got {n_resamples}")
    rng = as_rng(seed)
    vals = []
    for _ in range(n_resamples):
        if pool_b is None:  # one pool: two disjoint subsets per resampling
            idx = rng.permutation(len(pool_a))
            a, b = pool_a[idx[:n]], pool_a[idx[n:2 * n]]
        else:
            a = pool_a[rng.choice(len(pool_a), n, replace=False)]
            b = pool_b[rng.choice(len(pool_b), n, replace=False)]
        vals.append(_call(metric_fn, a, b, rng))
    v = np.asarray(vals)
    return MetricResult(float(v.mean()), float(v.std(ddof=1)), n,
                        extra={"values": v, "sem": float(v.std(ddof=1) / math.sqrt(v.size)), "kind": kind})


def metric_floor(metric_fn: Callable[..., Any], real_a: Any, real_b: Any | None, n: int,
                 n_resamples: int = 20, seed: SeedLike = 0) -> MetricResult:
    """The metric between two independent real samples of ``n`` jets, over ``n_resamples`` resamplings.

    Each resampling draws ``n`` jets without replacement from each of the pools ``real_a`` and ``real_b``
    (arrays indexed by jet along axis 0) and evaluates ``metric_fn(a, b)``; with ``real_b=None`` it draws two
    disjoint subsets of ``real_a`` instead (needs ``2n <= len(real_a)``). ``metric_fn`` returns a
    :class:`MetricResult` or a float; if it has a ``seed`` parameter, a fresh seed is passed each time.
    Pass metrics with their own bootstrap switched off (e.g. ``functools.partial(pixel_fd, n_boot=0)``).

    Returns value = mean, err = standard deviation over resamplings (the spread of a single evaluation at
    this ``n``); ``extra["values"]`` holds them and ``extra["sem"]`` the standard error of the mean.
    """
    if real_b is None:
        _check_n(2 * n, {"real_a (two disjoint subsets of n)": len(real_a)})
    else:
        _check_n(n, {"real_a": len(real_a), "real_b": len(real_b)})
    return _resampled(metric_fn, real_a, real_b, n, n_resamples, seed, "floor")


def metric_vs_real(metric_fn: Callable[..., Any], gen: Any, real: Any, n: int, n_resamples: int = 20,
                   seed: SeedLike = 0) -> MetricResult:
    """``metric_fn(gen_subset, real_subset)`` averaged exactly as :func:`metric_floor` averages the floor.

    Use the same ``n`` and ``n_resamples`` as the floor, so that ``value / floor`` (see
    :func:`ratio_to_floor`) compares like with like.
    """
    _check_n(n, {"gen": len(gen), "real": len(real)})
    return _resampled(metric_fn, gen, real, n, n_resamples, seed, "vs_real")


def ratio_to_floor(result: MetricResult, floor: MetricResult) -> MetricResult:
    """``result / floor`` with the standard errors of both means propagated to first order.

    ≈ 1 means the generated sample is as close to real data as an independent real sample of the same size.
    """
    if floor.value == 0.0:
        raise ValueError("the floor is exactly 0 (identical samples?); a ratio is undefined")
    sa = result.extra.get("sem", result.err)
    sb = floor.extra.get("sem", floor.err)
    r = result.value / floor.value
    rel = math.hypot(sa / result.value, sb / floor.value) if result.value != 0.0 else math.nan
    return MetricResult(r, abs(r) * rel, min(result.n, floor.n))
