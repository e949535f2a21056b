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

The statistics behind every number (value, floor, their errors, ratio, excess) and the metrics that differ
(DI, AUC, KS_p, W1M_pooled) are described in :mod:`jetviz.scoring`, which also scores the samples.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetviz import checkpoints, report
from jetviz.config import CLASS_INDEX, CLASSES, DEFAULT_GRID, ImageGrid, check_class
from jetviz.images import to_images
from jetviz.scoring import METRICS, MetricSpec, Sample, Scorer, combine, draw, ratio_and_excess

POOL_SEED = 20_240_601  # permutation that cuts one real set into disjoint held-out / reference / pseudo parts
PSEUDO_MODEL = "real"  # name of the --real-vs-real pseudo-model (steps 0)


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
        path = checkpoints.resolve_existing(name)
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
    return draw(rng, pool, n)


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
        self.generation: list[dict] = []
        self.notes: list[str] = []

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
        meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "hardware": report.hardware(),
                "git": report.git_revision(), "torch_threads": torch.get_num_threads(),
                "metrics": [s.name for s in specs], "metric_docs": {s.name: s.doc for s in specs}}
        self.log(f"loading real pools for {','.join(cfg.classes)} ...")
        self.pools, pool_info = load_pools(cfg, self.grid, self.embed)
        sc = Scorer(cfg, self.pools, specs)
        for m in models:
            for steps in m.steps:
                sc.pool_ks(m.name, steps, {c: sc.score(m.name, steps, c, self.samples(m, steps, c))
                                           for c in cfg.classes})
        ks = sc.ks_rows()
        return Evaluation(cfg, sc.frame([m.name for m in models]), pd.DataFrame(sc.per_seed), ks, sc.ci, sc.masses,
                          models, pool_info, pd.DataFrame(self.generation), self.notes, Counter(), meta, self.grid)

    def samples(self, m: ModelEntry, steps: int, c: str) -> Iterator[tuple[int, Sample]]:
        """(seed, sample) of every seed, each generated when the scorer asks for it."""
        for i, seed in enumerate(self.cfg.seeds):
            yield seed, self.sample(m, steps, c, i, seed)

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
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)  # numpy's BLAS too (Fréchet distances, eigh)
    cfg = config_from_args(args)
    ev = run_evaluation(cfg, args.out, command=report.command_line(args))
    if ev.warnings:
        print(f"{sum(ev.warnings.values())} warnings ({len(ev.warnings)} distinct), listed in report.md",
              file=sys.stderr)
    return 0


__all__ = ["EvalConfig", "Evaluation", "METRICS", "MetricSpec", "PSEUDO_MODEL", "combine", "load_pools",
           "ratio_and_excess", "register", "run_evaluation"]
