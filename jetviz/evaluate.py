"""``python -m jetviz evaluate``: generate jets with checkpoints, score every metric against its real-vs-real
floor, and write a report folder (see :mod:`jetviz.report`). ``bench`` lives in :mod:`jetviz.bench`; this
module's :func:`register` adds both commands.

Real data and the floor. Three pools of real jets per class, all pixelised on the generators' grid (masses
and point clouds come from the *images*, exactly as for generated jets):

* **held-out** (``--real``, default the bundled sample ``data/sample``, split ``all``): what generated jets are
  compared with;
* **reference** (``--reference``): an independent real set. Without ``--reference`` the real set is permuted
  with a fixed seed (:data:`POOL_SEED`, per class) and cut into equal disjoint parts: part 0 held-out,
  part 1 reference (and, with ``--real-vs-real``, part 2 the pseudo-generated pool), the odd jets left over
  unused. With ``--reference`` the held-out pool is the whole real set (or half of it with
  ``--real-vs-real``, the other half being the pseudo-generated pool);
* **pseudo-generated** (``--real-vs-real`` only): the pseudo-model ``real`` (steps 0) "generates" seed ``k``'s
  sample as the ``k``-th slice of N jets of this pool, so the whole pipeline can be validated: every ratio
  must then be ≈ 1.

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
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from jetviz import checkpoints, report, stats
from jetviz import metrics as M
from jetviz.config import CLASS_INDEX, CLASSES, DEFAULT_GRID, ImageGrid, check_class
from jetviz.images import to_images, to_point_clouds
from jetviz.physics import image_mass_rel

POOL_SEED = 20_240_601  # permutation that cuts one real set into disjoint held-out / reference / pseudo parts
FLOOR_STREAM = 1_000_003  # SeedSequence entropy of the floor draws (value draws use the run's seeds)
PSEUDO_MODEL = "real"  # name of the --real-vs-real pseudo-model (steps 0)
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


@dataclass
class Pools:
    """The real pools of one class (see the module docstring)."""

    held: Sample
    reference: Sample
    pseudo: Sample | None
    description: str


def _parts(n_jets: int, k: int, jet_type: str) -> list[np.ndarray]:
    """``k`` equal disjoint index sets of a fixed per-class permutation of ``n_jets`` jets."""
    perm = np.random.default_rng([POOL_SEED, CLASS_INDEX[jet_type]]).permutation(n_jets)
    size = n_jets // k
    return [np.sort(perm[i * size:(i + 1) * size]) for i in range(k)]


def _real_images(jet_type: str, source: str | None, split: str, grid: ImageGrid) -> np.ndarray:
    from jetviz.data import load_jets

    pf, _ = load_jets(jet_type, source, split=split)
    return to_images(pf, grid)


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation (the CLI flags; see ``python -m jetviz evaluate --help``)."""

    checkpoints: tuple[str, ...] = ()  # names under checkpoints/ or paths; () = all generator checkpoints
    classes: tuple[str, ...] = CLASSES
    steps: tuple[int, ...] = (1, 2, 4)
    n: int = 1000  # jets per generated sample (per model, steps, class, seed) and per real draw
    seeds: tuple[int, ...] = (0, 1, 2)
    n_resamples: int = 20  # real draws per seed (values) and for each floor
    auc_resamples: int = 3  # floor draws of the (expensive) classifier AUC; values use one draw per seed
    real: str | None = None  # None = the bundled sample
    real_split: str = "all"
    reference: str | None = None  # None = cut the real set into disjoint parts
    reference_split: str = "all"
    real_vs_real: bool = False  # add the pseudo-model "real" (a third independent real subset)
    jetnet: bool = False  # also W1P, FPD, KPD (EFPs cost ≈ 2 ms per jet)
    metrics: tuple[str, ...] | None = None  # None = all available
    classifier: str | None = "classifier"  # FID feature extractor; None = skip FID
    sampler: str | None = None  # VE-SDE sampler override ("pc" / "ode")
    n_boot: int = 200  # bootstrap replicas of the pooled-W1M interval
    save_samples: bool = False  # write every generated sample to <out>/samples/*.npz

    def __post_init__(self) -> None:
        for c in self.classes:
            check_class(c)
        for name, vals in (("classes", self.classes), ("steps", self.steps), ("seeds", self.seeds)):
            if not vals:
                raise ValueError(f"{name} is empty; give at least one value")
            if len(set(vals)) != len(vals):
                raise ValueError(f"{name} has repeated values: {list(vals)}")
        for s in self.steps:
            if not 1 <= s <= 1000:
                raise ValueError(f"steps must be integers in [1, 1000], got {s}")
        if self.n < 2:
            raise ValueError(f"--n must be >= 2 jets, got {self.n}")
        if self.n_resamples < 2:
            raise ValueError(f"--n-resamples must be >= 2 (20 recommended), got {self.n_resamples}")
        if self.auc_resamples < 1:
            raise ValueError(f"--auc-resamples must be >= 1, got {self.auc_resamples}")
        if self.n_boot < 2:
            raise ValueError(f"n_boot must be >= 2, got {self.n_boot}")
        unknown = [m for m in (self.metrics or ()) if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")

    def selected(self) -> list[MetricSpec]:
        names = self.metrics or [m for m, s in METRICS.items() if self.jetnet or not s.jetnet]
        return [METRICS[m] for m in METRICS if m in names]


@dataclass
class ModelEntry:
    name: str
    kind: str
    steps: tuple[int, ...]
    generator: Any = None  # jetviz.sampling.Generator; None for the pseudo-model
    info: dict = field(default_factory=dict)


@dataclass
class Evaluation:
    """Everything :func:`jetviz.report.write_report` needs."""

    config: EvalConfig
    rows: pd.DataFrame  # metrics.csv
    per_seed: pd.DataFrame  # model, steps, class, metric, seed, value (mean over draws)
    ks: dict  # (model, steps) -> {class: StatTestResult}; key ("floor", 0) for reference vs held-out
    ci: dict  # (model, steps, class) -> ConfidenceInterval of pooled W1M; ("floor", 0, class) too
    masses: dict  # (model, steps, class) -> pooled generated m/p_T; ("held", 0, class) the held-out pool
    models: list[ModelEntry]
    pools: dict[str, dict]  # class -> sizes and description
    generation: pd.DataFrame  # model, steps, class, seed, jets, seconds
    notes: list[str]
    warnings: Counter
    meta: dict
    grid: ImageGrid = DEFAULT_GRID


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


def _draw(rng: np.random.Generator, pool: Sample, n: int) -> Sample:
    return pool.subset(np.sort(rng.choice(len(pool), n, replace=False)))


# ------------------------------------------------------------------------------------------- the run
def load_models(cfg: EvalConfig) -> list[ModelEntry]:
    """Generators named in ``cfg.checkpoints`` (default: every generator checkpoint), plus the pseudo-model."""
    from jetviz.sampling import load_generator

    names = list(cfg.checkpoints)
    if not names and not cfg.real_vs_real:
        found = [p for p in checkpoints.list_checkpoints()
                 if checkpoints.load_card(p, verify=False)["kind"] in checkpoints.GENERATOR_KINDS]
        if not found:
            raise ValueError(f"no generator checkpoints in {checkpoints.CHECKPOINT_DIR}; pass --checkpoints "
                             "NAME_OR_PATH[,...] or validate the pipeline with --real-vs-real")
        names = [str(p) for p in found]
    models = []
    for name in names:
        path = checkpoints.resolve(name)
        if not path.is_dir():
            have = ", ".join(p.name for p in checkpoints.list_checkpoints()) or "none"
            raise ValueError(f"unknown checkpoint {name!r}: no folder {path} (checkpoints found: {have})")
        gen = load_generator(path, sampler=cfg.sampler)
        if any(m.name == gen.name for m in models) or gen.name == PSEUDO_MODEL:
            raise ValueError(f"two models are called {gen.name!r}; give checkpoint folders distinct names")
        tr = gen.card.get("training", {})
        models.append(ModelEntry(gen.name, gen.kind, tuple(cfg.steps), gen,
                                 {"path": str(path), "trained_steps": tr.get("steps"),
                                  "wall_time_s": tr.get("wall_time_s"), "created": gen.card.get("created"),
                                  "sampler": getattr(gen.scheduler.config, "sampler", None)}))
    grids = {m.generator.grid for m in models}
    if len(grids) > 1:
        raise ValueError(f"the checkpoints use different image grids ({grids}); evaluate them separately")
    if cfg.real_vs_real:
        models.append(ModelEntry(PSEUDO_MODEL, "real (independent subset)", (0,), None,
                                 {"path": "third independent real pool"}))
    return models


def load_pools(cfg: EvalConfig, grid: ImageGrid, embed) -> tuple[dict[str, Pools], dict[str, dict]]:
    """The real pools per class (see the module docstring); raises ``ValueError`` if N does not fit."""
    from jetviz.data import resolve_source

    real_dir = resolve_source(cfg.real)
    if cfg.reference is not None:
        ref_dir = Path(cfg.reference).expanduser()
        if not ref_dir.is_dir():
            raise ValueError(f"--reference {ref_dir} is not a folder; give a folder of <cls>.hdf5 files "
                             "independent of --real, or omit it to cut --real into disjoint halves")
        if ref_dir.resolve() == real_dir.resolve() and cfg.reference_split == cfg.real_split:
            raise ValueError("--reference is the same data as --real; the floor needs an independent set")
    pools, info = {}, {}
    n_seeds = len(cfg.seeds)
    for c in cfg.classes:
        images = _real_images(c, cfg.real, cfg.real_split, grid)
        if cfg.reference is None:
            k = 3 if cfg.real_vs_real else 2
            parts = _parts(len(images), k, c)
            held, ref = images[parts[0]], images[parts[1]]
            pseudo = images[parts[2]] if cfg.real_vs_real else None
            how = (f"{len(images)} jets of {real_dir} (split {cfg.real_split}) cut into {k} disjoint parts of "
                   f"{len(parts[0])} (fixed permutation, seed {POOL_SEED})")
        else:
            ref = _real_images(c, cfg.reference, cfg.reference_split, grid)
            held, pseudo = images, None
            if cfg.real_vs_real:
                parts = _parts(len(images), 2, c)
                held, pseudo = images[parts[0]], images[parts[1]]
            how = (f"held-out from {real_dir} (split {cfg.real_split}, {len(images)} jets"
                   f"{', halved' if cfg.real_vs_real else ''}); reference {cfg.reference} "
                   f"(split {cfg.reference_split})")
        for name, pool in (("held-out", held), ("reference", ref), ("pseudo-generated", pseudo)):
            if pool is not None and cfg.n > len(pool):
                raise ValueError(
                    f"--n {cfg.n} exceeds the {len(pool)} {c} jets of the {name} pool ({how}); lower --n or "
                    "pass a larger --real (or a separate --reference)")
        if pseudo is not None and n_seeds * cfg.n > len(pseudo):
            warnings.warn(f"{n_seeds} seeds × {cfg.n} jets exceed the {len(pseudo)} pseudo-generated {c} jets: "
                          "the pseudo-model's seeds share jets (their spread is underestimated)", RuntimeWarning,
                          stacklevel=2)
        pools[c] = Pools(Sample(held, grid, embed), Sample(ref, grid, embed),
                         Sample(pseudo, grid, embed) if pseudo is not None else None, how)
        info[c] = {"held_out": len(held), "reference": len(ref), "pseudo": 0 if pseudo is None else len(pseudo),
                   "description": how}
    return pools, info


def pseudo_sample(pool: Sample, n: int, seed_index: int, seed: int, n_seeds: int, jet_type: str) -> Sample:
    """Seed ``seed_index``'s pseudo-generated sample: the ``seed_index``-th slice of N jets of the pool, or a
    seeded draw when the pool is smaller than S·N."""
    if n_seeds * n <= len(pool):
        return pool.subset(np.arange(seed_index * n, (seed_index + 1) * n))
    rng = np.random.default_rng([seed, CLASS_INDEX[jet_type], 7])
    return _draw(rng, pool, n)


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
                vals = np.array([M.diversity_index(_draw(rng, p.held, cfg.n).images, n_boot=0).value
                                 for _ in range(cfg.n_resamples)])
            elif spec.kind == "auc":
                rng = np.random.default_rng(seed)
                vals = np.array([stats.classifier_auc(_draw(rng, p.held, cfg.n).images,
                                                      _draw(rng, p.reference, cfg.n).images,
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
        r = stats.classifier_auc(_draw(rng, held, cfg.n).images, gen.images, seed=stats.child_seed(rng))
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


def run_evaluation(cfg: EvalConfig, out: str | Path | None = None, command: str | None = None,
                   log: Callable[[str], None] | None = None) -> Evaluation:
    """Generate, score and (if ``out`` is given) write the report folder; returns the :class:`Evaluation`.

    ``command`` is recorded at the top of the report (the CLI passes the full command line). Warnings raised on the way (e.g. too few jets for a metric) are collected, counted and listed in the
    report instead of being printed once per evaluation.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t_start = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = _Run(cfg, log, out).run()
    ev.warnings = Counter(str(w.message) for w in caught)
    ev.meta.update(command=command or f"jetviz.evaluate.run_evaluation({cfg!r})",
                   seconds=round(time.time() - t_start, 1))
    if out is not None:
        report.write_report(ev, out)
        log(f"wrote {Path(out)}/report.md and metrics.csv ({ev.meta['seconds']} s)")
    return ev


class _Run:
    """One evaluation: models × steps × classes × seeds, each sample scored as soon as it is generated."""

    def __init__(self, cfg: EvalConfig, log: Callable[[str], None], out: str | Path | None) -> None:
        self.cfg, self.log, self.out = cfg, log, out
        self.rows: list[dict] = []
        self.per_seed: list[dict] = []
        self.generation: list[dict] = []
        self.notes: list[str] = []
        self.masses: dict = {}
        self.ci: dict = {}
        self.pooled_ks: dict = {}
        self.boot = np.random.default_rng(_seed(FLOOR_STREAM, 99))  # bootstrap replicas of the pooled W1M

    def run(self) -> Evaluation:
        import torch

        cfg = self.cfg
        models = load_models(cfg)
        self.grid = models[0].generator.grid if models[0].generator is not None else DEFAULT_GRID
        specs = cfg.selected()
        self.embed = None
        if any(s.rep == "fid" for s in specs):
            self.embed, note = _load_embedder(cfg, self.grid)
            if self.embed is None:
                specs = [s for s in specs if s.rep != "fid"]
                self.notes.append(note)
        self.specs = [s for s in specs if s.kind != "test"]
        names = {s.name for s in specs}
        self.want_ks, self.want_pooled = "KS_p" in names, "W1M" in names
        meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "hardware": report.hardware(),
                "git": report.git_revision(), "torch_threads": torch.get_num_threads(),
                "metrics": [s.name for s in specs], "metric_docs": {s.name: s.doc for s in specs}}
        self.log(f"loading real pools for {','.join(cfg.classes)} ...")
        self.pools, pool_info = load_pools(cfg, self.grid, self.embed)
        self.floors = _Floors(cfg, self.pools)
        self.ref_pooled = {}  # floor side of KS_p / W1M_pooled: a seeded draw of S·N reference jets
        for c in cfg.classes:
            self.masses[("held", 0, c)] = self.pools[c].held.rep("mass")
            ref = self.pools[c].reference
            k = min(len(cfg.seeds) * cfg.n, len(ref))
            self.ref_pooled[c] = _draw(np.random.default_rng(_seed(FLOOR_STREAM, CLASS_INDEX[c], 98)), ref,
                                       k).rep("mass")
        for m in models:
            for steps in m.steps:
                pooled = {c: self.score_class(m, steps, c) for c in cfg.classes}
                if self.want_ks:
                    self.pooled_ks[(m.name, steps)] = stats.ks_per_class(self._held_masses(), pooled)
        ks = self.ks_rows()
        df = sort_rows(pd.DataFrame(self.rows, columns=CSV_COLUMNS), [m.name for m in models])
        return Evaluation(cfg, df, pd.DataFrame(self.per_seed), ks, self.ci, self.masses, models, pool_info,
                          pd.DataFrame(self.generation), self.notes, Counter(), meta, self.grid)

    def _held_masses(self) -> dict[str, np.ndarray]:
        return {c: self.masses[("held", 0, c)] for c in self.cfg.classes}

    def sample(self, m: ModelEntry, steps: int, c: str, i: int, seed: int) -> Sample:
        cfg = self.cfg
        t0 = time.perf_counter()
        if m.generator is None:
            g = pseudo_sample(self.pools[c].pseudo, cfg.n, i, seed, len(cfg.seeds), c)
        else:
            g = Sample(m.generator.sample(c, cfg.n, steps, seed), self.grid, self.embed)
            if cfg.save_samples and self.out is not None:
                _save_sample(self.out, m, c, steps, seed, cfg.n, g.images, self.grid)
        dt = time.perf_counter() - t0
        self.generation.append({"model": m.name, "steps": steps, "class": c, "seed": seed, "jets": len(g),
                                "seconds": dt})
        self.log(f"{m.name} steps={steps} {c} seed={seed}: {len(g)} jets in {dt:.1f} s; scoring ...")
        return g

    def score_class(self, m: ModelEntry, steps: int, c: str) -> np.ndarray:
        """Generate and score every seed of (model, steps, class); returns the pooled generated m/p_T."""
        cfg, held, ref = self.cfg, self.pools[c].held, self.pools[c].reference
        draws: dict[str, list[np.ndarray]] = {s.name: [] for s in self.specs}
        single_err: dict[str, float] = {}
        masses = []
        for i, seed in enumerate(cfg.seeds):
            g = self.sample(m, steps, c, i, seed)
            for s in self.specs:
                v, single_err[s.name] = _values(s, g, held, cfg, seed, c)
                draws[s.name].append(v)
                self.per_seed.append({"model": m.name, "steps": steps, "class": c, "metric": s.name, "seed": seed,
                                      "value": float(np.mean(v))})
            masses.append(g.rep("mass"))
        f_held, f_ref = cfg.n / len(held), cfg.n / len(ref)
        for s in self.specs:
            value, err, spread = combine(draws[s.name], single_err[s.name], f_held)
            fv = self.floors(c, s)
            floor, f_err, f_spread = floor_stats(fv, f_held) if s.kind == "diversity" else floor_stats(fv, f_ref,
                                                                                                       f_held)
            self.rows.append(_row(m.name, steps, c, s.name, value, err, floor, f_err, spread, f_spread, n=cfg.n,
                                  n_seeds=len(cfg.seeds), n_resamples=len(fv) if s.kind != "auc" else 1))
        pooled = np.concatenate(masses)
        self.masses[(m.name, steps, c)] = pooled
        if self.want_pooled:
            self.pooled_w1m(m.name, steps, c, pooled)
        return pooled

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


def sort_rows(df: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Rows ordered by model (as given), steps, class (CLASSES order), metric (METRICS, then DERIVED)."""
    keys = {"model": {m: i for i, m in enumerate(models)}, "class": CLASS_INDEX,
            "metric": {m: i for i, m in enumerate([*METRICS, *DERIVED])}}
    return df.sort_values(["model", "steps", "class", "metric"], key=lambda s: s.map(keys[s.name]) if s.name in keys
                          else s, kind="stable").reset_index(drop=True)


def _load_embedder(cfg: EvalConfig, grid: ImageGrid):
    """(embed function, None) or (None, why FID is skipped)."""
    if cfg.classifier is None:
        return None, "FID skipped: no classifier given."
    from jetviz.classifier import embed, load_classifier

    path = checkpoints.resolve(cfg.classifier)
    if not path.is_dir():
        return None, (f"FID skipped: no classifier checkpoint at {path} (train one with "
                      "`python -m jetviz train-classifier`).")
    model, card = load_classifier(path)
    if card.get("grid") and ImageGrid.from_dict(card["grid"]) != grid:
        return None, f"FID skipped: the classifier at {path} was trained on another image grid."
    return partial(embed, model), None


def _save_sample(out, m: ModelEntry, c: str, steps: int, seed: int, n: int, images, grid) -> None:
    from jetviz.export import write_samples
    from jetviz.sampling import CHUNK

    meta = {"jet_type": c, "model": m.name, "kind": m.kind, "steps": steps, "seed": seed, "n_requested": n,
            "shard": [0, 1], "chunk": CHUNK}
    write_samples(Path(out) / "samples" / f"{m.name}_steps{steps}_{c}_seed{seed}.npz", images, grid, meta)


# ----------------------------------------------------------------------------------------------- CLI
def parse_list(text: str, kind: type = str, name: str = "list") -> tuple:
    """``"a,b,c"`` → tuple of ``kind``; raises ``ValueError`` naming the flag."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        return tuple(kind(t) for t in items)
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated {kind.__name__} values, got {text!r}") from None


def config_from_args(args) -> EvalConfig:
    return EvalConfig(
        checkpoints=parse_list(args.checkpoints or "", str, "checkpoints"),
        classes=parse_list(args.classes, str, "classes"), steps=parse_list(args.steps, int, "steps"),
        n=args.n, seeds=parse_list(args.seeds, int, "seeds"), n_resamples=args.n_resamples,
        auc_resamples=args.auc_resamples, real=args.real, real_split=args.real_split, reference=args.reference,
        reference_split=args.reference_split, real_vs_real=args.real_vs_real, jetnet=args.jetnet,
        metrics=parse_list(args.metrics, str, "metrics") if args.metrics else None,
        classifier=None if args.classifier in ("", "none") else args.classifier, sampler=args.sampler,
        n_boot=args.n_boot, save_samples=args.save_samples)


def register(sub) -> None:
    """Add ``evaluate`` (here) and ``bench`` (:mod:`jetviz.bench`)."""
    from jetviz import bench

    p = sub.add_parser("evaluate", help="generate with checkpoints, score every metric against its real-vs-real "
                       "floor, write a report folder", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", default=None,
                   help="comma-separated names under checkpoints/ or paths (default: all generator checkpoints)")
    p.add_argument("--classes", default=",".join(CLASSES))
    p.add_argument("--steps", default="1,2,4", help="sampling step counts")
    p.add_argument("--n", type=int, default=1000, help="jets per sample (per model, steps, class, seed)")
    p.add_argument("--seeds", default="0,1,2", help="generation seeds")
    p.add_argument("--n-resamples", type=int, default=20, help="real draws per seed and per floor")
    p.add_argument("--auc-resamples", type=int, default=3,
                   help="floor draws of the classifier AUC (its value uses one draw per seed)")
    p.add_argument("--real", default=None, help="held-out real data folder (default: the bundled data/sample)")
    p.add_argument("--real-split", default="all", choices=("train", "valid", "test", "all"))
    p.add_argument("--reference", default=None,
                   help="independent real folder for the floor (default: cut --real into disjoint halves)")
    p.add_argument("--reference-split", default="all", choices=("train", "valid", "test", "all"))
    p.add_argument("--real-vs-real", action="store_true",
                   help="add the pseudo-model 'real' (a third independent real subset): every ratio must be ≈ 1")
    p.add_argument("--jetnet", action="store_true", help="also jetnet W1P, FPD, KPD (EFPs: ≈ 2 ms per jet)")
    p.add_argument("--metrics", default=None, help=f"subset of {','.join(METRICS)} (default: all)")
    p.add_argument("--classifier", default="classifier",
                   help="FID classifier checkpoint (default checkpoints/classifier; 'none' skips FID)")
    p.add_argument("--sampler", choices=("pc", "ode"), default=None, help="VE-SDE sampler override")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicas of the pooled-W1M 95%% CI")
    p.add_argument("--save-samples", action="store_true", help="also write each sample to OUT/samples/*.npz")
    p.add_argument("--out", required=True, help="report folder, e.g. reports/<name>")
    p.set_defaults(func=_cmd_evaluate)
    bench.register(sub)


def _cmd_evaluate(args) -> int:
    import torch

    torch.set_flush_denormal(True)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    ev = run_evaluation(cfg, args.out, command=report.command_line(args))
    if ev.warnings:
        print(f"{sum(ev.warnings.values())} warnings ({len(ev.warnings)} distinct), listed in report.md",
              file=sys.stderr)
    return 0


__all__ = ["EvalConfig", "Evaluation", "METRICS", "MetricSpec", "PSEUDO_MODEL", "combine", "load_pools",
           "ratio_and_excess", "register", "run_evaluation"]
