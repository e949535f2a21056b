"""Streamlit glue shared by the app's pages: where data and checkpoints live, cached loaders, the shared
sidebar, generation with a progress bar, metric tables and plain-words errors.

This is the only jetviz module that imports streamlit. Locations are read from the environment at *call*
time (so tests and ``streamlit run`` can point the app elsewhere without re-importing jetviz):

* ``JETVIZ_DATA``: folder holding ``sample/{g,q,t,w,z}.hdf5`` (+ ``.json`` sidecars); default ``<repo>/data``.
* ``JETVIZ_CHECKPOINTS``: folder of checkpoints ``<name>/card.json``; default ``<repo>/checkpoints``.

Caching: generators and the FID classifier are ``st.cache_resource`` (one copy per process); real jets,
images, generated chunks and metric tables are ``st.cache_data`` with ``max_entries``. Generated jets are
cached per sampling chunk (:data:`jetviz.sampling.CHUNK` jets), which is also the unit of the progress bar.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from jetviz.config import CLASS_NAMES, CLASSES, DEFAULT_GRID, REPO_ROOT, ImageGrid

ENV_DATA = "JETVIZ_DATA"
ENV_CHECKPOINTS = "JETVIZ_CHECKPOINTS"
MAX_JETS = 20_000  # largest request the widgets accept
DEFAULT_JETS = 1_000
MAX_STEPS = 1_000
AUTO_BUDGET = 4_000  # network evaluations (jets × evaluations per jet) generated without a click
REAL_POOL = 40_000  # most real jets read per class (the real JetNet files hold ~170k)
METRIC_RESAMPLES = 8  # resamplings behind each metric and floor in the app (the CLI uses more)
METRIC_MAX_JETS = 5_000  # jets per sample behind the app's metrics (bounded time for any request)
PYTHIA_FALLBACK_RATE = 150.0  # jets/s on one core (docs/NOTES: 110-200 by class); used without a sidecar
SHIPPED = {
    "cm-ct": "consistency model, consistency training (1-2 steps)",
    "cm-cd": "consistency model distilled from ve-sde (1-2 steps)",
    "ve-sde": "score model, VE-SDE (many steps)",
    "classifier": "jet-class CNN behind the FID",
}
TRAIN_HINT = ("python -m jetviz train --kind consistency-ct --steps 2000 --export checkpoints/cm-ct   "
              "(see the README for the shipped recipes)")


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


# --------------------------------------------------------------------------------------------- errors
def run_page(body: Callable[[], None]) -> None:
    """Run a page body; a ``ValueError`` (bad input, missing file) is shown as its message, anything else as
    a one-line error (the traceback goes to the server log, never to the page)."""
    try:
        body()
    except ValueError as e:
        st.error(str(e))
    except MemoryError:
        st.error("Out of memory: ask for fewer jets.")
    except Exception as e:  # noqa: BLE001 - the page must not crash; st.stop/st.rerun are BaseException
        traceback.print_exc()
        st.error(f"Something went wrong ({type(e).__name__}: {e}). The details are in the server log.")


def explain_no_generators() -> None:
    have = discover()
    found = ", ".join(c.label for c in have) or "nothing"
    st.warning(
        f"No generator checkpoint found in `{checkpoint_root()}` (found: {found}). The app uses whatever "
        "checkpoints exist; the shipped ones are "
        + "; ".join(f"`{k}` ({v})" for k, v in SHIPPED.items())
        + f". Train one with `{TRAIN_HINT}`, or point `{ENV_CHECKPOINTS}` at a folder of checkpoints."
    )


def explain_no_data(jet_type: str | None = None) -> None:
    what = f"`{jet_type}.hdf5`" if jet_type else "any `<class>.hdf5` file"
    st.warning(
        f"The bundled real sample is missing: no {what} in `{bundled_dir()}`. It ships with the repository "
        "(`data/sample/{g,q,t,w,z}.hdf5`, made with `python -m jetviz simulate`); until it is there, choose a "
        f"local JetNet folder or a fresh Pythia run on the Dataset page, or point `{ENV_DATA}` at a folder "
        "holding `sample/`."
    )


# -------------------------------------------------------------------------------------------- sidebar
@dataclass(frozen=True)
class Settings:
    jet_type: str
    model: ModelChoice | None
    steps: int
    n_jets: int
    seed: int


def _default_model(choices: list[ModelChoice]) -> int:
    names = [c.name for c in choices]
    for pref in ("cm-ct", "cm-cd"):
        if pref in names:
            return names.index(pref)
    kinds = [c.kind for c in choices]
    return next((i for i, k in enumerate(kinds) if k.startswith("consistency")), 0)


def sidebar() -> Settings:
    """The shared sidebar (class, model, steps, jets, seed); stores and returns the :class:`Settings`."""
    sb = st.sidebar
    sb.header("Settings")
    jet_type = sb.selectbox("Jet class", CLASSES, key="jet_type",
                            format_func=lambda c: f"{c} — {CLASS_NAMES[c]}")
    choices = generators()
    model = None
    if choices:
        labels = [c.label for c in choices]
        if st.session_state.get("model") not in labels:
            st.session_state.pop("model", None)
        label = sb.selectbox("Model", labels, index=_default_model(choices), key="model",
                             help=f"checkpoints found in {checkpoint_root()}")
        model = choices[labels.index(label)]
    else:
        sb.warning("No generator checkpoint yet (see the page for how to get one).")
    steps = sb.number_input("Sampling steps", 1, MAX_STEPS, 1, key="steps",
                            help="consistency models: 1-4; VE-SDE: 50-1000 (each step may cost 2 evaluations)")
    n_jets = sb.number_input("Number of jets", 10, MAX_JETS, DEFAULT_JETS, step=100, key="n_jets",
                             help=f"at most {MAX_JETS:,}")
    seed = sb.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    s = Settings(jet_type, model, int(steps), int(n_jets), int(seed))
    st.session_state["_settings"] = s
    sb.caption(f"Data: `{data_root()}` · checkpoints: `{checkpoint_root()}`")
    return s


def settings() -> Settings:
    """The sidebar's current settings (rendering the sidebar if the entrypoint has not)."""
    s = st.session_state.get("_settings")
    return s if isinstance(s, Settings) else sidebar()


# ------------------------------------------------------------------------------------ cached loaders
@st.cache_resource(max_entries=4, show_spinner="Loading the model (checksums verified) …")
def load_generator(path: str, stamp: float):
    """A :class:`jetviz.sampling.Generator` (``stamp`` only keys the cache)."""
    import torch

    from jetviz.sampling import load_generator as _load

    torch.set_flush_denormal(True)
    return _load(path)


@st.cache_resource(max_entries=8, show_spinner=False)
def generator_lock(path: str, stamp: float) -> threading.Lock:
    """One lock per loaded generator: its scheduler holds per-call state (``set_timesteps``), so two sessions
    must not sample with it at the same time."""
    return threading.Lock()


@st.cache_resource(max_entries=2, show_spinner="Loading the FID classifier …")
def load_classifier(path: str, stamp: float):
    from jetviz.classifier import load_classifier as _load

    return _load(path)[0]


def real_source() -> tuple[str, str]:
    """(source folder for :func:`jetviz.data.load_jets`, a label) chosen on the Dataset page (bundled default)."""
    folder = st.session_state.get("_real_folder")
    if folder:
        return str(folder), f"local folder {folder}"
    return str(bundled_dir()), "bundled sample"


@st.cache_data(max_entries=16, show_spinner="Reading real jets …")
def real_jets(jet_type: str, source: str, max_jets: int = REAL_POOL) -> tuple[np.ndarray, np.ndarray]:
    """Real jets of one class → (particle_features ``[N, 30, 4]``, jet_features ``[N, 4]``)."""
    from jetviz.data import load_jets

    try:
        return load_jets(jet_type, source, split="all", max_jets=max_jets)
    except OSError as e:
        raise ValueError(f"could not read {jet_type}.hdf5 in {source} ({e})") from None


@st.cache_data(max_entries=16, show_spinner="Pixelising real jets …")
def real_images(jet_type: str, source: str, grid: dict, max_jets: int = REAL_POOL) -> np.ndarray:
    """Real jets as physics-space images ``[N, S, S]`` on ``grid`` (an :meth:`ImageGrid.to_dict`)."""
    from jetviz.images import to_images

    return to_images(real_jets(jet_type, source, max_jets)[0], ImageGrid.from_dict(grid))


def mean_image(pf: np.ndarray, grid: ImageGrid, chunk: int = 5_000) -> np.ndarray:
    """Average image ``[S, S]`` of point clouds ``[N, P, 4]``, pixelised in chunks (bounded memory)."""
    from jetviz.images import to_images

    total = np.zeros((grid.size, grid.size), np.float64)
    for i in range(0, len(pf), chunk):
        total += to_images(pf[i:i + chunk], grid).sum(0)
    return (total / max(len(pf), 1)).astype(np.float32)


def has_real(jet_type: str, source: str) -> bool:
    return (Path(source) / f"{jet_type}.hdf5").is_file()


def require_real(jet_type: str) -> tuple[str, str] | None:
    """(source, label) of the real reference if it holds ``jet_type``; else explain what is missing."""
    source, label = real_source()
    if has_real(jet_type, source):
        return source, label
    if source == str(bundled_dir()):
        explain_no_data(jet_type)
    else:
        st.warning(f"No {jet_type}.hdf5 in {source}; choose another folder (or the bundled sample) on the "
                   "Dataset page.")
    return None


@st.cache_data(max_entries=256, show_spinner=False)
def sample_chunk(path: str, stamp: float, jet_type: str, n: int, steps: int, seed: int,
                 chunk: int) -> tuple[np.ndarray, float]:
    """Chunk ``chunk`` of a request for ``n`` jets (physics-space images) and the seconds it took.

    ``shard=(chunk, n_chunks)`` selects exactly that chunk, so the concatenated chunks equal
    ``Generator.sample(jet_type, n, steps, seed)`` (see :mod:`jetviz.sampling`).
    """
    from jetviz.sampling import CHUNK

    gen = load_generator(path, stamp)
    with generator_lock(path, stamp):
        t0 = time.perf_counter()
        images = gen.sample(jet_type, n, steps, seed, shard=(chunk, -(-n // CHUNK)))
        return images, time.perf_counter() - t0


@dataclass
class Sample:
    images: np.ndarray  # [N, S, S] physics space
    seconds: float  # generation time when first computed (cache hits keep it)
    wall: float  # time of this call (≈ 0 when served from the cache)
    grid: ImageGrid
    meta: dict

    @property
    def cached(self) -> bool:
        return self.wall < 0.5 * self.seconds

    @property
    def jets_per_s(self) -> float:
        return len(self.images) / self.seconds if self.seconds > 0 else float("inf")


def sample(model: ModelChoice, jet_type: str, n: int, steps: int, seed: int,
           on_chunk: Callable[[int, int], None] | None = None) -> Sample:
    """Generate (or fetch from the cache) ``n`` jets chunk by chunk; ``on_chunk(done, total)`` after each."""
    from jetviz.sampling import CHUNK

    gen = load_generator(model.path, model.stamp)
    total = -(-n // CHUNK)
    parts, secs = [], 0.0
    t0 = time.perf_counter()
    for c in range(total):
        images, s = sample_chunk(model.path, model.stamp, jet_type, n, steps, seed, c)
        parts.append(images)
        secs += s
        if on_chunk:
            on_chunk(c + 1, total)
    meta = {"jet_type": jet_type, "model": model.name, "kind": model.kind, "steps": steps, "seed": seed,
            "n_requested": n, "chunk": CHUNK, "shard": [0, 1]}
    return Sample(np.concatenate(parts), secs, time.perf_counter() - t0, gen.grid, meta)


def sample_with_progress(model: ModelChoice, jet_type: str, n: int, steps: int, seed: int) -> Sample:
    bar = st.progress(0.0, text=f"Generating {n:,} {jet_type} jets with {model.name}, {steps} step(s) …")

    def tick(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Generating {n:,} {jet_type} jets: chunk {done}/{total}")

    try:
        return sample(model, jet_type, n, steps, seed, tick)
    finally:
        bar.empty()


def generated(s: Settings, button_key: str) -> Sample | None:
    """The jets the sidebar asks for: generated at once when cheap (≤ :data:`AUTO_BUDGET` network
    evaluations) or already made this session, otherwise after a click on a button with ``button_key``."""
    if s.model is None:
        explain_no_generators()
        return None
    if s.model.error:
        raise ValueError(s.model.error)
    gen = load_generator(s.model.path, s.model.stamp)
    with generator_lock(s.model.path, s.model.stamp):
        evals = gen.evaluations_per_sample(s.steps)
    token = (s.model.path, s.model.stamp, s.jet_type, s.n_jets, s.steps, s.seed)
    done = st.session_state.setdefault("_generated", set())
    if s.n_jets * evals > AUTO_BUDGET and token not in done:
        st.info(f"{s.n_jets:,} jets × {evals} network evaluations each is a long job on this machine "
                f"({s.model.name}); it starts when you press the button and shows its progress.")
        if not st.button(f"Generate {s.n_jets:,} jets", key=button_key, type="primary"):
            return None
    out = sample_with_progress(s.model, s.jet_type, s.n_jets, s.steps, s.seed)
    done.add(token)
    return out


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


@st.cache_data(max_entries=32, show_spinner="Computing metrics …")
def quick_metrics(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, clf_path: str | None,
                  clf_stamp: float, seed: int, resamples: int = METRIC_RESAMPLES) -> list[dict]:
    """Metrics that take about a second at 1,000 jets: FID (if the classifier exists), pixel WD, W1M, DI, KS."""
    from jetviz.physics import image_mass_rel

    g = ImageGrid.from_dict(grid)
    n = eval_size(len(gen_images), len(real_images))
    m_gen, m_real = image_mass_rel(gen_images, g), image_mass_rel(real_images, g)
    rows = []

    def fid():
        if clf_path is None:
            raise LookupError(f"no classifier checkpoint in {checkpoint_root()} (train one with "
                              "`python -m jetviz train-classifier --out checkpoints/classifier`)")
        from jetviz.classifier import embed

        clf = load_classifier(clf_path, clf_stamp)
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


@st.cache_data(max_entries=16, show_spinner="Computing the full metrics (this takes a while) …")
def full_metrics(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, seed: int) -> list[dict]:
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


@st.cache_data(max_entries=64, show_spinner=False)
def sweep_metrics(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, seed: int,
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
def pythia_rate(jet_type: str) -> tuple[float, str]:
    """Pythia jets/s on one core from the bundled sample's sidecar JSON (this class, else the mean of all),
    or the documented constant :data:`PYTHIA_FALLBACK_RATE` labelled as such."""
    def per_core(p: Path) -> float | None:
        try:
            info = json.loads(p.read_text())
            rate = float(info.get("jets_per_s") or info["jets"] / info["seconds"])
            return rate / max(int(info.get("workers", 1)), 1)
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            return None

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


def real_grid(s: Settings) -> ImageGrid:
    """The image grid of the selected generator (its card), else the default grid."""
    if s.model is not None and not s.model.error:
        try:
            return ImageGrid.from_dict(json.loads(Path(s.model.path, "card.json").read_text())["grid"])
        except (OSError, ValueError, KeyError):
            pass
    return DEFAULT_GRID


def clear_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()


# -------------------------------------------------------------------------------------- model cards
@st.cache_data(max_entries=32, show_spinner="Verifying checksums …")
def model_card(path: str, stamp: float) -> dict:
    """The card with every checksum verified, or ``{"error": reason}`` (never raises)."""
    from jetviz.checkpoints import load_card

    try:
        card = load_card(path, verify=True)
    except (ValueError, OSError) as e:
        return {"error": str(e)}
    card["checksums_verified"] = len(card.get("files") or {})
    return card


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


@st.cache_data(max_entries=32, show_spinner=False)
def loss_curve(path: str, stamp: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(step, loss) from the card's ``loss_csv`` (relative to the checkpoint) or ``<checkpoint>/loss.csv``."""
    import pandas as pd

    folder = Path(path)
    try:
        card = json.loads((folder / "card.json").read_text())
    except (OSError, ValueError):
        card = {}
    names = [card.get("loss_csv"), (card.get("training") or {}).get("loss_csv"), "loss.csv"]
    for name in filter(None, names):
        p = Path(name) if Path(name).is_absolute() else folder / name
        if not p.is_file():
            continue
        try:
            df = pd.read_csv(p)
            if not {"step", "loss"} <= set(df.columns):
                continue
            df = df[np.isfinite(df["loss"]) & (df["loss"] > 0)]
            return df["step"].to_numpy(), df["loss"].to_numpy(np.float64)
        except (OSError, ValueError):
            continue
    return None
