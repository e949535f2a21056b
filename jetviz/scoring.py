"""The scoring core of ``python -m jetviz evaluate``: the report's metrics, a sample's representations, the
value / floor statistics, the floors, and :class:`Scorer`, which turns generated samples into the rows of
``metrics.csv``. The real pools, the models and the run loop are in :mod:`jetviz.evaluate`.

For a distance ``D`` and N jets (``--n``), with R = ``--n-resamples``:

* value = mean over seeds of :func:`jetviz.stats.metric_vs_real`: D(generated N jets, N held-out jets drawn
  without replacement), averaged over R draws; the draws are the same for every model (common random numbers);
* floor = :func:`jetviz.stats.metric_floor`: D(N reference jets, N held-out jets) averaged over R draws;
* err = standard error of the value: std of the per-seed means / √S for S ≥ 2 seeds; for one seed
  ``s_w·√(1 + 1/R)`` with s_w the spread over draws (this assumes the generated sample varies as much as a
  real one); floor_err = s/√R. Both add a finite-pool term: draws of N jets from a pool of M share jets, so
  their mean converges to the pool's value, which itself fluctuates by ≈ s²·f/(1 − f) with f = N/M (the
  held-out pool for the value; half of that for each of the two pools of the floor). spread / floor_spread =
  the std of single evaluations at this N;
* ratio = value / floor with both errors propagated; left empty where the floor is consistent with 0
  (|floor| < 2 floor_err: unbiased metrics such as KPD and extrapolated FPD), where ``excess`` = value − floor
  is the number to read.

Exceptions: **DI** is one sample's diversity (value = DI of the generated sample, "floor" = DI of N held-out
jets, ratio = DI_gen / DI_real); **AUC** (classifier two-sample test) costs seconds per evaluation, so the
value uses one held-out draw per seed and the floor ``--auc-resamples`` draws; **KS_p** is the KS test's
p-value of the m/p_T distributions with all S·N generated jets of every seed pooled against the whole held-out
pool (floor: S·N reference jets against it), with a Bonferroni correction over the classes evaluated
(``KS_p_bonferroni``); it is not a distance and has no ratio. **W1M_pooled** is W1M on the same pooled sets,
with a percentile-bootstrap 95 % interval over the generated (or reference) jets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from jetviz import metrics as M
from jetviz import stats
from jetviz.config import CLASS_INDEX, ImageGrid
from jetviz.images import to_point_clouds
from jetviz.physics import image_mass_rel

if TYPE_CHECKING:
    from jetviz.evaluate import EvalConfig, Pools

FLOOR_STREAM = 1_000_003  # SeedSequence entropy of the floor draws (value draws use the run's seeds)
CSV_COLUMNS = ["model", "steps", "class", "metric", "value", "err", "floor", "floor_err", "ratio", "ratio_err",
               "excess", "excess_err", "spread", "floor_spread", "ci_low", "ci_high", "n", "n_seeds",
               "n_resamples"]


# ------------------------------------------------------------------------------------------------ metrics
def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    return stats.ks_test(a, b).statistic


def _fpd(gen: np.ndarray, real: np.ndarray, seed: stats.SeedLike = 0) -> stats.MetricResult:
    return M.jetnet_fpd(real, gen, seed=seed)  # jetnet normalises by its first (real) argument


def _kpd(gen: np.ndarray, real: np.ndarray, seed: stats.SeedLike = 0) -> stats.MetricResult:
    return M.jetnet_kpd(real, gen, seed=seed)


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the report: ``fn(gen_like, real)`` on the representation ``rep`` of both samples.

    ``kind``: ``"distance"`` (resampled against the floor), ``"diversity"`` (one-sample DI), ``"auc"``
    (classifier test, few draws) or ``"test"`` (pooled KS p-value).
    """

    name: str
    rep: str  # "images" [N,S,S] | "mass" [N] | "fid" [N,64] | "clouds" [N,30,4] | "efp" [N,36]
    kind: str
    fn: Callable[..., Any] | None = None
    jetnet: bool = False
    doc: str = ""


METRICS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("W1M", "mass", "distance", partial(M.w1m, n_boot=0), doc="W1 of m/p_T (from images)"),
    MetricSpec("pixel_WD", "images", "distance", partial(M.pixel_wd, n_boot=0),
               doc="W1 of pooled pixel intensities (empty pixels included)"),
    MetricSpec("pixel_FD", "images", "distance", partial(M.pixel_fd, n_boot=0),
               doc="Fréchet distance of the 625 pixel values"),
    MetricSpec("FID", "fid", "distance", partial(M.fid_from_features, n_boot=0),
               doc="Fréchet distance of the jet-class classifier's 64 penultimate features"),
    MetricSpec("KS_D", "mass", "distance", _ks_statistic, doc="KS statistic of m/p_T"),
    MetricSpec("DI", "images", "diversity", doc="diversity index (floor column: the real DI)"),
    MetricSpec("AUC", "images", "auc", doc="held-out AUC of a CNN telling generated from real (0.5 = equal)"),
    MetricSpec("KS_p", "mass", "test", doc="KS p-value of m/p_T, all seeds pooled vs the whole held-out pool"),
    MetricSpec("W1P", "clouds", "distance", partial(M.jetnet_w1p, num_batches=1), jetnet=True,
               doc="jetnet W1 of particle η_rel, φ_rel, p_T,rel (pixels as particles), mean of 3"),
    MetricSpec("FPD", "efp", "distance", _fpd, jetnet=True, doc="jetnet Fréchet distance of 36 EFPs, N→∞"),
    MetricSpec("KPD", "efp", "distance", _kpd, jetnet=True, doc="jetnet kernel (MMD) distance of 36 EFPs"),
)}
METRIC_INDEX = {name: i for i, name in enumerate(METRICS)}  # stable per-metric seed streams
DERIVED = ("KS_p_bonferroni", "W1M_pooled")  # rows computed from pooled samples


def _seed(*key: int) -> int:
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


# ------------------------------------------------------------------------------------------------ samples
@dataclass
class Sample:
    """Jet images ``[N, S, S]`` (physics space) and the representations the metrics need, computed once."""

    images: np.ndarray
    grid: ImageGrid
    embed: Callable[[np.ndarray], np.ndarray] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def rep(self, kind: str) -> np.ndarray:
        if kind not in self._cache:
            if kind == "images":
                v = self.images
            elif kind == "mass":
                v = image_mass_rel(self.images, self.grid)
            elif kind == "fid":
                if self.embed is None:
                    raise ValueError("FID needs the classifier; pass classifier=... or drop FID")
                v = self.embed(self.images)
            elif kind == "clouds":
                v = to_point_clouds(self.images, self.grid)
            elif kind == "efp":
                v = M.jet_efp_features(self.rep("clouds"))
            else:
                raise ValueError(f"unknown representation {kind!r}")
            self._cache[kind] = v
        return self._cache[kind]

    def subset(self, idx: np.ndarray) -> Sample:
        s = Sample(self.images[idx], self.grid, self.embed)
        s._cache = {k: v[idx] for k, v in self._cache.items()}
        return s



# --------------------------------------------------------------------------------------------- helpers
def _pool_term(frac: float) -> float:
    """f / (1 − f): the variance a finite pool adds, in units of one draw's variance, when each draw takes a
    fraction f of it (draws then share jets and their mean converges to the pool's value, not the truth)."""
    return math.inf if frac >= 1 else frac / (1 - frac)


def combine(values_by_seed: Sequence[np.ndarray], fallback_err: float = math.nan, held_frac: float = 0.0
            ) -> tuple[float, float, float]:
    """(value, err, spread) of per-seed arrays of draws against the held-out pool.

    err² = var(seed means)/S (S ≥ 2) or s_w²·(1 + 1/R) (one seed), plus s_w²·f/(1 − f) for the held-out pool's
    own fluctuation (f = N / pool size; s_w = the rms spread over draws within a seed).
    """
    arrays = [np.asarray(v, np.float64).ravel() for v in values_by_seed]
    means = np.array([a.mean() for a in arrays])
    pooled = np.concatenate(arrays)
    spread = float(pooled.std(ddof=1)) if pooled.size > 1 else math.nan
    r = arrays[0].size
    s_w = float(np.sqrt(np.mean([a.var(ddof=1) for a in arrays]))) if r >= 2 else math.nan
    if len(means) >= 2:
        var = float(means.var(ddof=1) / len(means))
    elif r >= 2:
        var = s_w**2 * (1 + 1 / r)
    else:
        var = float(fallback_err) ** 2
    if r >= 2 and held_frac > 0:
        var += s_w**2 * _pool_term(held_frac)
    return float(means.mean()), math.sqrt(var), spread


def floor_stats(values: np.ndarray, ref_frac: float, held_frac: float | None = None) -> tuple[float, float, float]:
    """(floor, floor_err, spread) of floor draws: err² = s²/R + s²/2·[f_ref/(1 − f_ref) + f_held/(1 − f_held)]
    (each finite pool carries about half of a draw's variance); ``held_frac=None`` for a one-sample statistic
    (DI) drawn from one pool of fraction ``ref_frac``: err² = s²/R + s²·f/(1 − f)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size < 2:
        return float(v.mean()), math.nan, math.nan
    s2 = float(v.var(ddof=1))
    pool = _pool_term(ref_frac) if held_frac is None else 0.5 * (_pool_term(ref_frac) + _pool_term(held_frac))
    return float(v.mean()), math.sqrt(s2 / v.size + s2 * pool), math.sqrt(s2)


def ratio_and_excess(value: float, err: float, floor: float, floor_err: float) -> tuple[float, float, float, float]:
    """(ratio, ratio_err, excess, excess_err); the ratio is ``nan`` when the floor is consistent with 0."""
    excess, excess_err = value - floor, math.hypot(err, floor_err) if np.isfinite(floor_err) else math.nan
    if floor == 0.0 or not np.isfinite(floor) or (np.isfinite(floor_err) and abs(floor) < 2 * floor_err):
        return math.nan, math.nan, excess, excess_err
    r = value / floor
    rel = math.hypot(err / value if value else math.nan, floor_err / floor)
    return r, abs(r) * rel, excess, excess_err


def draw(rng: np.random.Generator, pool: Sample, n: int) -> Sample:
    return pool.subset(np.sort(rng.choice(len(pool), n, replace=False)))


class _Floors:
    """Floors per (class, metric), computed on first use (they do not depend on the model)."""

    def __init__(self, cfg: EvalConfig, pools: dict[str, Pools]) -> None:
        self.cfg, self.pools, self.cache = cfg, pools, {}

    def __call__(self, c: str, spec: MetricSpec) -> np.ndarray:
        key = (c, spec.name)
        if key not in self.cache:
            cfg, p = self.cfg, self.pools[c]
            seed = _seed(FLOOR_STREAM, CLASS_INDEX[c], METRIC_INDEX[spec.name])
            if spec.kind == "distance":
                r = stats.metric_floor(spec.fn, p.reference.rep(spec.rep), p.held.rep(spec.rep), cfg.n,
                                       cfg.n_resamples, seed=seed)
                vals = r.extra["values"]
            elif spec.kind == "diversity":
                rng = np.random.default_rng(seed)
                vals = np.array([M.diversity_index(draw(rng, p.held, cfg.n).images, n_boot=0).value
                                 for _ in range(cfg.n_resamples)])
            elif spec.kind == "auc":
                rng = np.random.default_rng(seed)
                vals = np.array([stats.classifier_auc(draw(rng, p.held, cfg.n).images,
                                                      draw(rng, p.reference, cfg.n).images,
                                                      seed=stats.child_seed(rng)).value
                                 for _ in range(cfg.auc_resamples)])
            else:
                raise AssertionError(spec.kind)
            self.cache[key] = np.asarray(vals, np.float64)
        return self.cache[key]


def _values(spec: MetricSpec, gen: Sample, held: Sample, cfg: EvalConfig, seed: int, c: str
            ) -> tuple[np.ndarray, float]:
    """This seed's draws of the metric (and a per-evaluation error for a single draw)."""
    key = _seed(seed, CLASS_INDEX[c], METRIC_INDEX[spec.name])  # the same draws for every model and steps
    if spec.kind == "distance":
        r = stats.metric_vs_real(spec.fn, gen.rep(spec.rep), held.rep(spec.rep), cfg.n, cfg.n_resamples,
                                 seed=key)
        return r.extra["values"], math.nan
    if spec.kind == "diversity":
        r = M.diversity_index(gen.images, n_boot=20 if len(cfg.seeds) == 1 else 0, seed=key)
        return np.array([r.value]), r.err
    if spec.kind == "auc":
        rng = np.random.default_rng(key)
        r = stats.classifier_auc(draw(rng, held, cfg.n).images, gen.images, seed=stats.child_seed(rng))
        return np.array([r.value]), r.err
    raise AssertionError(spec.kind)


def _row(model: str, steps: int, c: str, metric: str, value: float, err: float, floor: float, floor_err: float,
         spread: float = math.nan, floor_spread: float = math.nan, ratio: bool = True, n: int = 0,
         n_seeds: int = 0, n_resamples: int = 0, ci: tuple[float, float] = (math.nan, math.nan)) -> dict:
    r, r_err, ex, ex_err = ratio_and_excess(value, err, floor, floor_err)
    if not ratio:
        r, r_err, ex, ex_err = math.nan, math.nan, math.nan, math.nan
    return {"model": model, "steps": steps, "class": c, "metric": metric, "value": value, "err": err,
            "floor": floor, "floor_err": floor_err, "ratio": r, "ratio_err": r_err, "excess": ex,
            "excess_err": ex_err, "spread": spread, "floor_spread": floor_spread, "ci_low": ci[0],
            "ci_high": ci[1], "n": n, "n_seeds": n_seeds, "n_resamples": n_resamples}

def sort_rows(df: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Rows ordered by model (as given), steps, class (CLASSES order), metric (METRICS, then DERIVED)."""
    keys = {"model": {m: i for i, m in enumerate(models)}, "class": CLASS_INDEX,
            "metric": {m: i for i, m in enumerate([*METRICS, *DERIVED])}}
    return df.sort_values(["model", "steps", "class", "metric"], key=lambda s: s.map(keys[s.name]) if s.name in keys
                          else s, kind="stable").reset_index(drop=True)



class Scorer:
    """The rows of one evaluation: each (model, steps, class) scored seed by seed against the held-out pool and
    its floor (:meth:`score`), then the pooled KS_p / W1M_pooled rows (:meth:`pool_ks`, :meth:`ks_rows`)."""

    def __init__(self, cfg: EvalConfig, pools: dict[str, Pools], specs: Sequence[MetricSpec]) -> None:
        self.cfg, self.pools = cfg, pools
        self.specs = [s for s in specs if s.kind != "test"]
        names = {s.name for s in specs}
        self.want_ks, self.want_pooled = "KS_p" in names, "W1M" in names
        self.rows: list[dict] = []
        self.per_seed: list[dict] = []
        self.masses: dict = {}
        self.ci: dict = {}
        self.pooled_ks: dict = {}
        self.boot = np.random.default_rng(_seed(FLOOR_STREAM, 99))  # bootstrap replicas of the pooled W1M
        self.floors = _Floors(cfg, pools)
        self.ref_pooled = {}  # floor side of KS_p / W1M_pooled: a seeded draw of S·N reference jets
        for c in cfg.classes:
            self.masses[("held", 0, c)] = pools[c].held.rep("mass")
            ref = pools[c].reference
            k = min(len(cfg.seeds) * cfg.n, len(ref))
            self.ref_pooled[c] = draw(np.random.default_rng(_seed(FLOOR_STREAM, CLASS_INDEX[c], 98)), ref,
                                      k).rep("mass")

    def _held_masses(self) -> dict[str, np.ndarray]:
        return {c: self.masses[("held", 0, c)] for c in self.cfg.classes}

    def score(self, model: str, steps: int, c: str, samples: Iterable[tuple[int, Sample]]) -> np.ndarray:
        """Score every ``(seed, generated sample)`` of (model, steps, class) as it comes; returns the pooled
        generated m/p_T."""
        cfg, held, ref = self.cfg, self.pools[c].held, self.pools[c].reference
        draws: dict[str, list[np.ndarray]] = {s.name: [] for s in self.specs}
        single_err: dict[str, float] = {}
        masses = []
        for seed, g in samples:
            for s in self.specs:
                v, single_err[s.name] = _values(s, g, held, cfg, seed, c)
                draws[s.name].append(v)
                self.per_seed.append({"model": model, "steps": steps, "class": c, "metric": s.name, "seed": seed,
                                      "value": float(np.mean(v))})
            masses.append(g.rep("mass"))
        f_held, f_ref = cfg.n / len(held), cfg.n / len(ref)
        for s in self.specs:
            value, err, spread = combine(draws[s.name], single_err[s.name], f_held)
            fv = self.floors(c, s)
            floor, f_err, f_spread = floor_stats(fv, f_held) if s.kind == "diversity" else floor_stats(fv, f_ref,
                                                                                                       f_held)
            self.rows.append(_row(model, steps, c, s.name, value, err, floor, f_err, spread, f_spread, n=cfg.n,
                                  n_seeds=len(cfg.seeds), n_resamples=len(fv) if s.kind != "auc" else 1))
        pooled = np.concatenate(masses)
        self.masses[(model, steps, c)] = pooled
        if self.want_pooled:
            self.pooled_w1m(model, steps, c, pooled)
        return pooled

    def pool_ks(self, model: str, steps: int, pooled: dict[str, np.ndarray]) -> None:
        """KS tests of (model, steps)'s pooled m/p_T per class against the held-out pools (if KS_p is wanted)."""
        if self.want_ks:
            self.pooled_ks[(model, steps)] = stats.ks_per_class(self._held_masses(), pooled)

    def pooled_w1m(self, model: str, steps: int, c: str, pooled: np.ndarray) -> None:
        """W1M of all pooled generated jets vs the whole held-out pool, percentile-bootstrap 95 % interval."""
        held = self.masses[("held", 0, c)]

        def w1(x: np.ndarray) -> float:
            return float(wasserstein_distance(x, held))

        if ("floor", 0, c) not in self.ci:
            self.ci[("floor", 0, c)] = stats.bootstrap_ci(self.ref_pooled[c], w1, self.cfg.n_boot, 0.95, self.boot)
        g = self.ci[(model, steps, c)] = stats.bootstrap_ci(pooled, w1, self.cfg.n_boot, 0.95, self.boot)
        f = self.ci[("floor", 0, c)]
        self.rows.append(_row(model, steps, c, "W1M_pooled", g.estimate, g.std, f.estimate, f.std, n=len(pooled),
                              n_seeds=len(self.cfg.seeds), ci=(g.low, g.high)))

    def ks_rows(self) -> dict:
        """KS_p and KS_p_bonferroni rows (no ratio: p-values are not distances); returns all KS results."""
        if not self.want_ks:
            return {}
        floor = stats.ks_per_class(self._held_masses(), self.ref_pooled)
        for (model, steps), res in self.pooled_ks.items():
            for c, r in res.items():
                for metric, v, fv in (("KS_p", r.pvalue, floor[c].pvalue),
                                      ("KS_p_bonferroni", r.pvalue_adjusted, floor[c].pvalue_adjusted)):
                    self.rows.append(_row(model, steps, c, metric, v, math.nan, fv, math.nan, ratio=False,
                                          n=r.n_b, n_seeds=len(self.cfg.seeds)))
        return {("floor", 0): floor, **self.pooled_ks}

    def frame(self, models: Sequence[str]) -> pd.DataFrame:
        """``metrics.csv``: every row so far, sorted (:func:`sort_rows`)."""
        return sort_rows(pd.DataFrame(self.rows, columns=CSV_COLUMNS), models)


__all__ = ["CSV_COLUMNS", "DERIVED", "METRICS", "MetricSpec", "Sample", "Scorer", "combine", "draw",
           "floor_stats", "ratio_and_excess", "sort_rows"]
