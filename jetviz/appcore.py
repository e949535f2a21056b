"""The streamlit-free core of the app: where data and checkpoints live, the checkpoints found there, metric
tables with their real-vs-real floors, download builders, provenance and model-card summaries.

:mod:`jetviz.ui` wraps these in streamlit caches and widgets (it is the only module that imports streamlit);
everything here runs, and is tested, without a streamlit session. Locations are read from the environment at
*call* time (so tests and ``streamlit run`` can point the app elsewhere without re-importing jetviz):

* ``JETVIZ_DATA``: folder holding ``sample/{g,q,t,w,z}.hdf5`` (+ ``.json`` sidecars); default ``<repo>/data``.
* ``JETVIZ_CHECKPOINTS``: folder of checkpoints ``<name>/card.json``; default ``<repo>/checkpoints``.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetviz.config import DEFAULT_GENERATOR, DEFAULT_GRID, GENERATOR_FALLBACKS, REPO_ROOT, ImageGrid

ENV_DATA = "JETVIZ_DATA"
ENV_CHECKPOINTS = "JETVIZ_CHECKPOINTS"
METRIC_RESAMPLES = 8  # resamplings behind each metric and floor in the app (the CLI uses more)
METRIC_MAX_JETS = 5_000  # jets per sample behind the app's metrics (bounded time for any request)
PYTHIA_FALLBACK_RATE = 150.0  # jets/s on one core (docs/NOTES: 110-200 by class); used without a sidecar
SHIPPED = {
    "cm-ct": "consistency model, consistency training (1-2 steps)",
    "cm-cd": "consistency model distilled from ve-sde (1-2 steps)",
    "cm-ct-small": "small (8/16/16) consistency model, consistency training (1-2 steps, fastest)",
    "cm-cd-small": "small (8/16/16) consistency model distilled from ve-sde (1-2 steps, fastest)",
    "ve-sde": "score model, VE-SDE (many steps)",
    "classifier": "jet-class CNN behind the FID",
}


# ------------------------------------------------------------------------------------------- places
def data_root() -> Path:
    """``$JETVIZ_DATA`` or ``<repo>/data`` (read now, not at import)."""
    return Path(os.environ.get(ENV_DATA) or REPO_ROOT / "data").expanduser()


def bundled_dir() -> Path:
    return data_root() / "sample"


def checkpoint_root() -> Path:
    """``$JETVIZ_CHECKPOINTS`` or ``<repo>/checkpoints`` (read now, not at import)."""
    return Path(os.environ.get(ENV_CHECKPOINTS) or REPO_ROOT / "checkpoints").expanduser()


@dataclass(frozen=True)
class ModelChoice:
    """A checkpoint folder found under :func:`checkpoint_root` (card read, checksums not yet verified)."""

    name: str
    path: str
    kind: str
    stamp: float  # mtime of card.json: part of every cache key, so a replaced checkpoint is reloaded
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.kind})"


def discover() -> list[ModelChoice]:
    """Every checkpoint folder under the checkpoint root, with its kind (or why its card is unreadable)."""
    from jetviz.checkpoints import list_checkpoints

    out = []
    try:
        found = list_checkpoints(checkpoint_root())
    except OSError:  # an unreadable checkpoint folder counts as none
        found = []
    for p in found:
        card = p / "card.json"
        try:
            data = json.loads(card.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            kind, err = str(data.get("kind")), None
        except (OSError, ValueError) as e:
            kind, err = "unreadable", f"{card} could not be read ({e})"
        try:
            stamp = card.stat().st_mtime
        except OSError:  # removed while we looked
            continue
        out.append(ModelChoice(p.name, str(p), kind, stamp, err))
    return out


def generators() -> list[ModelChoice]:
    from jetviz.checkpoints import GENERATOR_KINDS

    return [c for c in discover() if c.kind in GENERATOR_KINDS]


def classifier_choice() -> ModelChoice | None:
    return next((c for c in discover() if c.kind == "classifier"), None)


# -------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    jet_type: str
    model: ModelChoice | None
    steps: int
    n_jets: int
    seed: int


def default_model(choices: list[ModelChoice]) -> int:
    """Index of the sidebar's default model: :data:`~jetviz.config.DEFAULT_GENERATOR`, else the
    :data:`~jetviz.config.GENERATOR_FALLBACKS`, else the first consistency model."""
    names = [c.name for c in choices]
    for pref in (DEFAULT_GENERATOR, *GENERATOR_FALLBACKS):
        if pref in names:
            return names.index(pref)
    kinds = [c.kind for c in choices]
    return next((i for i, k in enumerate(kinds) if k.startswith("consistency")), 0)


def real_grid(s: Settings) -> ImageGrid:
    """The image grid of the selected generator (its card), else the default grid."""
    if s.model is not None and not s.model.error:
        try:
            return ImageGrid.from_dict(json.loads(Path(s.model.path, "card.json").read_text())["grid"])
        except (OSError, ValueError, KeyError):
            pass
    return DEFAULT_GRID


# ----------------------------------------------------------------------------------------- real jets
def mean_image(pf: np.ndarray, grid: ImageGrid, chunk: int = 5_000) -> np.ndarray:
    """Average image ``[S, S]`` of point clouds ``[N, P, 4]``, pixelised in chunks (bounded memory)."""
    from jetviz.images import to_images

    total = np.zeros((grid.size, grid.size), np.float64)
    for i in range(0, len(pf), chunk):
        total += to_images(pf[i:i + chunk], grid).sum(0)
    return (total / max(len(pf), 1)).astype(np.float32)


def has_real(jet_type: str, source: str) -> bool:
    return (Path(source) / f"{jet_type}.hdf5").is_file()


# ---------------------------------------------------------------------------------------- downloads
def csv_bytes(images: np.ndarray, grid: ImageGrid, meta: dict) -> bytes:
    """The CSV download (one row per non-empty pixel): :func:`jetviz.export.samples_csv`."""
    from jetviz.export import samples_csv

    return samples_csv(images, grid, meta)


def hdf5_bytes(images: np.ndarray, grid: ImageGrid, meta: dict) -> bytes:
    """The JetNet-format HDF5 download: :func:`jetviz.export.write_samples` to a temporary file, read back."""
    from jetviz.export import write_samples

    with tempfile.TemporaryDirectory(prefix="jetviz-dl-") as tmp:
        path = write_samples(Path(tmp) / "jets.hdf5", images, grid, meta)
        return path.read_bytes()


def file_stem(meta: dict) -> str:
    return f"jetviz_{meta['model']}_{meta['jet_type']}_{meta['steps']}step_{meta['n_requested']}jets_seed{meta['seed']}"


# ------------------------------------------------------------------------------------------- metrics
def _api(name: str):
    """A function from jetviz.metrics or jetviz.stats (being written in parallel), or raise ``LookupError``
    saying what is missing."""
    for mod in ("jetviz.metrics", "jetviz.stats"):
        try:
            m = __import__(mod, fromlist=[name])
        except Exception:  # noqa: BLE001 - an unfinished module must not take the page down
            continue
        if hasattr(m, name):
            return getattr(m, name)
    raise LookupError(f"jetviz.metrics has no {name}() yet")


def _val(r) -> float:
    return float(getattr(r, "value", r))


def _pair(fn: Callable, gen, real, n: int, seed: int, resamples: int) -> tuple[float, float, float, float]:
    """(value, spread) of ``fn`` gen vs real and of the real-vs-real floor, both at ``n`` jets per sample."""
    vs, floor = _api("metric_vs_real"), _api("metric_floor")
    a = vs(fn, gen, real, n, n_resamples=resamples, seed=seed)
    b = floor(fn, real, None, n, n_resamples=resamples, seed=seed + 1)
    return a.value, a.err, b.value, b.err


def _row(metric: str, fn: Callable[[], tuple], better: str, ratio: bool = True) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            v, ve, f, fe = fn()
        return {"metric": metric, "generated vs real": v, "± (gen)": ve, "real vs real (floor)": f,
                "± (floor)": fe, "ratio to floor": (v / f if ratio and f and f > 0 else None), "note": better}
    except (LookupError, ValueError, ImportError, OSError) as e:
        return {"metric": metric, "generated vs real": None, "± (gen)": None, "real vs real (floor)": None,
                "± (floor)": None, "ratio to floor": None, "note": f"not available: {e}"}


def eval_size(n_gen: int, n_real: int) -> int:
    """Jets per sample behind each metric: the generated size, capped at :data:`METRIC_MAX_JETS` and so that
    the floor has two disjoint real samples of that size."""
    return max(2, min(n_gen, n_real // 2, METRIC_MAX_JETS))


def quick_metric_rows(gen_images: np.ndarray, real_images: np.ndarray, grid: dict,
                      classifier: Callable[[], Any] | None, seed: int, resamples: int = METRIC_RESAMPLES
                      ) -> list[dict]:
    """Metrics that take about a second at 1,000 jets: FID (if ``classifier``, a loader of the FID classifier, is
    given), pixel WD, W1M, DI, KS; one table row each."""
    from jetviz.physics import image_mass_rel

    g = ImageGrid.from_dict(grid)
    n = eval_size(len(gen_images), len(real_images))
    m_gen, m_real = image_mass_rel(gen_images, g), image_mass_rel(real_images, g)
    rows = []

    def fid():
        if classifier is None:
            raise LookupError(f"no classifier checkpoint in {checkpoint_root()} (train one with "
                              "`python -m jetviz train-classifier --out checkpoints/classifier`)")
        from jetviz.classifier import embed

        clf = classifier()
        fd = functools.partial(_api("fid_from_features"), n_boot=0)
        return _pair(fd, embed(clf, gen_images), embed(clf, real_images), n, seed, resamples)

    rows.append(_row("FID (classifier features)", fid, "lower is better"))
    rows.append(_row("pixel WD", lambda: _pair(functools.partial(_api("pixel_wd"), n_boot=0), gen_images,
                                              real_images, n, seed, resamples), "lower is better"))
    rows.append(_row("W1M (m/p_T)", lambda: _pair(functools.partial(_api("w1m"), n_boot=0), m_gen, m_real, n,
                                                 seed, resamples), "lower is better"))

    def di():
        d = _api("diversity_index")

        def ratio(a, b):
            return _val(d(a, n_boot=0)) / _val(d(b, n_boot=0))

        return _pair(ratio, gen_images, real_images, n, seed, resamples)

    rows.append(_row("DI ratio (DI gen / DI real)", di, "closer to 1 is better", ratio=False))

    def ks():
        t = _api("ks_test")
        return _pair(lambda a, b: t(a, b).pvalue, m_gen, m_real, n, seed, resamples)

    rows.append(_row("KS p-value (m/p_T)", ks, "mean p over resamplings; ≈ 0.5 when indistinguishable",
                     ratio=False))
    for r in rows:
        r["jets per sample"] = n
    return rows


def full_metric_rows(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, seed: int) -> list[dict]:
    """Slow metrics: classifier AUC, pixel FD, FPD and KPD (jetnet EFPs); each with its floor."""
    n = eval_size(len(gen_images), len(real_images))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(real_images))
    real_a, real_b = real_images[perm[:n]], real_images[perm[n:2 * n]]
    gen = gen_images[:n]
    rows = []

    def auc():
        f = _api("classifier_auc")
        a, b = f(real_a, gen, seed=seed), f(real_a, real_b, seed=seed)
        return a.value, a.err, b.value, b.err

    rows.append(_row("classifier AUC", auc, "0.5 = indistinguishable", ratio=False))
    rows.append(_row("pixel FD", lambda: _pair(functools.partial(_api("pixel_fd"), n_boot=0), gen, real_images,
                                              n, seed, 3), "lower is better"))

    feats: dict[str, np.ndarray] = {}

    def efp(name: str, images: np.ndarray) -> np.ndarray:
        if name not in feats:
            from jetviz.images import to_point_clouds

            feats[name] = _api("jet_efp_features")(to_point_clouds(images, ImageGrid.from_dict(grid)))
        return feats[name]

    def jetnet(fn_name: str):
        def go():
            f = _api(fn_name)
            a, b = f(efp("a", real_a), efp("g", gen), seed=seed), f(efp("a", real_a), efp("b", real_b), seed=seed)
            return a.value, a.err, b.value, b.err
        return go

    rows.append(_row("FPD (jetnet, EFPs)", jetnet("jetnet_fpd"), "lower is better; 0 within error = good"))
    rows.append(_row("KPD (jetnet, EFPs)", jetnet("jetnet_kpd"), "lower is better; 0 within error = good"))
    for r in rows:
        r["jets per sample"] = n
    return rows


def sweep_point(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, seed: int,
                resamples: int = METRIC_RESAMPLES) -> dict:
    """W1M and pixel WD of one sweep point, gen vs real, with the floor at the same size."""
    from jetviz.physics import image_mass_rel

    g = ImageGrid.from_dict(grid)
    n = eval_size(len(gen_images), len(real_images))
    out = {"n": n}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        w = _pair(functools.partial(_api("w1m"), n_boot=0), image_mass_rel(gen_images, g),
                  image_mass_rel(real_images, g), n, seed, resamples)
        p = _pair(functools.partial(_api("pixel_wd"), n_boot=0), gen_images, real_images, n, seed, resamples)
    out.update(w1m=w[0], w1m_err=w[1], w1m_floor=w[2], w1m_floor_err=w[3],
               pixel_wd=p[0], pixel_wd_err=p[1], pixel_wd_floor=p[2], pixel_wd_floor_err=p[3])
    return out

# ---------------------------------------------------------------------------------------- provenance
def bench_rate(path: Path, jet_type: str) -> float | None:
    """Pythia jets/s of ``jet_type`` in a ``python -m jetviz bench`` CSV (one process on one core), or None."""
    import csv

    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("what") == "pythia" and row.get("jet_type") == jet_type:
                    return float(row["jets_per_s"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def pythia_rate(jet_type: str) -> tuple[float, str]:
    """Pythia jets/s on one core: from the committed bench table (``reports/bench.csv`` beside the data
    folder), else the bundled sample's sidecar JSON (this class, else the mean of all; those runs shared the
    machine, so they are lower), else the documented constant :data:`PYTHIA_FALLBACK_RATE` labelled as such."""
    def per_core(p: Path) -> float | None:
        try:
            info = json.loads(p.read_text())
            rate = float(info.get("jets_per_s") or info["jets"] / info["seconds"])
            return rate / max(int(info.get("workers", 1)), 1)
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            return None

    bench = bench_rate(data_root().parent / "reports" / "bench.csv", jet_type)
    if bench:
        return bench, f"Pythia 8 + FastJet, {jet_type}: {bench:.0f} jets/s per core (python -m jetviz bench)"
    own = per_core(bundled_dir() / f"{jet_type}.json")
    if own:
        return own, f"Pythia 8 + FastJet, {jet_type}: {own:.0f} jets/s per core (bundled sample's run)"
    rates = [r for p in sorted(bundled_dir().glob("*.json")) if (r := per_core(p))]
    if rates:
        r = float(np.mean(rates))
        return r, f"Pythia 8 + FastJet: {r:.0f} jets/s per core (mean of the bundled sample's runs)"
    return PYTHIA_FALLBACK_RATE, (f"Pythia 8 + FastJet ≈ {PYTHIA_FALLBACK_RATE:.0f} jets/s per core "
                                  "(documented constant; no sidecar JSON found)")


def file_provenance(path: Path) -> dict:
    """HDF5 attributes and sidecar JSON of a data file (JSON-safe, long lists shortened)."""
    import h5py

    info: dict = {"file": str(path)}
    try:
        with h5py.File(path, "r") as f:
            info["jets"] = int(f["particle_features"].shape[0]) if "particle_features" in f else None
            for k, v in f.attrs.items():
                v = v.tolist() if isinstance(v, np.ndarray) else v
                info[k] = v if not isinstance(v, list) or len(v) < 12 else f"[{len(v)} values]"
    except OSError as e:
        info["error"] = f"unreadable ({e})"
    side = path.with_suffix(".json")
    if side.is_file():
        try:
            s = json.loads(side.read_text())
            info["sidecar"] = {k: s[k] for k in ("jets", "events", "seconds", "jets_per_s", "workers", "seed",
                                                 "versions", "citation") if k in s}
        except (OSError, ValueError) as e:
            info["sidecar"] = f"unreadable ({e})"
    return info


# -------------------------------------------------------------------------------------- model cards
def duration(seconds: float) -> str:
    """``42 s``, ``12.5 min`` or ``3.2 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def card_markdown(card: dict) -> str:
    """A short human summary of a checkpoint card."""
    tr = card.get("training") or {}
    data = card.get("data") or {}
    unet = card.get("unet") or {}
    wall = tr.get("wall_time_s")
    lines = [
        f"- **kind**: {card.get('kind')}" + (f" — {SHIPPED[card['name']]}" if card.get("name") in SHIPPED else ""),
        f"- **data**: {data.get('source', '?')} (split {data.get('split', '?')}, classes "
        f"{', '.join(data.get('classes') or []) or 'all'})",
        f"- **training steps**: {tr.get('steps', tr.get('epochs', '?'))}"
        + (f", wall time {duration(wall)}" if isinstance(wall, int | float) else ""),
        f"- **hardware**: {card.get('hardware', '?')}",
        f"- **seed**: {card.get('seed', '?')} · created {card.get('created', '?')}",
    ]
    if unet:
        lines.append(f"- **network**: UNet {unet.get('block_out_channels')} × {unet.get('layers_per_block')} "
                     f"layer(s){' + attention' if unet.get('attention') else ''}")
    if "val_accuracy" in tr:
        lines.append(f"- **validation accuracy**: {tr['val_accuracy']:.3f}")
    lines.append(f"- **checksums verified**: :material/verified: {card.get('checksums_verified', 0)} file(s) match "
                 "the card")
    return "\n".join(lines)
