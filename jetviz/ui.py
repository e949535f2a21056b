"""Streamlit glue shared by the app's pages: cached loaders, the shared sidebar, generation with a progress
bar, cached metric tables and plain-words errors.

This is the only jetviz module that imports streamlit; the logic behind it (locations, checkpoint discovery,
metric tables, downloads, provenance, card summaries) is the streamlit-free :mod:`jetviz.appcore`, whose
names the pages use through this module. Locations are read from the environment at *call* time:
``JETVIZ_DATA`` (folder holding ``sample/``) and ``JETVIZ_CHECKPOINTS`` (see :mod:`jetviz.appcore`).

Caching: generators and the FID classifier are ``st.cache_resource`` (one copy per process); real jets,
images, generated chunks and metric tables are ``st.cache_data`` with ``max_entries``. Generated jets are
cached per sampling chunk (:data:`jetviz.sampling.CHUNK` jets), which is also the unit of the progress bar.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from jetviz import appcore
from jetviz.appcore import (
    ENV_CHECKPOINTS,
    ENV_DATA,
    METRIC_MAX_JETS,
    METRIC_RESAMPLES,
    PYTHIA_FALLBACK_RATE,
    SHIPPED,
    ModelChoice,
    Settings,
    bundled_dir,
    card_markdown,
    checkpoint_root,
    classifier_choice,
    csv_bytes,
    data_root,
    default_model,
    discover,
    duration,
    eval_size,
    file_provenance,
    file_stem,
    generators,
    has_real,
    hdf5_bytes,
    mean_image,
    pythia_rate,
    real_grid,
)
from jetviz.config import CLASS_NAMES, CLASSES, ImageGrid

MAX_JETS = 20_000  # largest request the widgets accept
DEFAULT_JETS = 1_000
MAX_STEPS = 1_000
AUTO_BUDGET = 4_000  # network evaluations (jets × evaluations per jet) generated without a click
REAL_POOL = 40_000  # most real jets read per class (the real JetNet files hold ~170k)
TRAIN_HINT = ("python -m jetviz train --kind consistency-ct --steps 2000 --export checkpoints/cm-ct   "
              "(see the README for the shipped recipes)")


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
        label = sb.selectbox("Model", labels, index=default_model(choices), key="model",
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


# ------------------------------------------------------------------------------------------- metrics
@st.cache_data(max_entries=32, show_spinner="Computing metrics …")
def quick_metrics(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, clf_path: str | None,
                  clf_stamp: float, seed: int, resamples: int = METRIC_RESAMPLES) -> list[dict]:
    """:func:`jetviz.appcore.quick_metric_rows`, with the cached FID classifier (if there is one)."""
    clf = None if clf_path is None else functools.partial(load_classifier, clf_path, clf_stamp)
    return appcore.quick_metric_rows(gen_images, real_images, grid, clf, seed, resamples)


@st.cache_data(max_entries=16, show_spinner="Computing the full metrics (this takes a while) …")
def full_metrics(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, seed: int) -> list[dict]:
    """:func:`jetviz.appcore.full_metric_rows`: AUC, pixel FD, FPD and KPD, each with its floor."""
    return appcore.full_metric_rows(gen_images, real_images, grid, seed)


@st.cache_data(max_entries=64, show_spinner=False)
def sweep_metrics(gen_images: np.ndarray, real_images: np.ndarray, grid: dict, seed: int,
                  resamples: int = METRIC_RESAMPLES) -> dict:
    """:func:`jetviz.appcore.sweep_point`: W1M and pixel WD of one sweep point with their floors."""
    return appcore.sweep_point(gen_images, real_images, grid, seed, resamples)



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


__all__ = [  # the pages' API, with the streamlit-free names of jetviz.appcore
    "AUTO_BUDGET", "DEFAULT_JETS", "ENV_CHECKPOINTS", "ENV_DATA", "MAX_JETS", "MAX_STEPS", "METRIC_MAX_JETS",
    "METRIC_RESAMPLES", "PYTHIA_FALLBACK_RATE", "REAL_POOL", "SHIPPED", "ModelChoice", "Sample", "Settings",
    "bundled_dir", "card_markdown", "checkpoint_root", "classifier_choice", "clear_caches", "csv_bytes",
    "data_root", "discover", "duration", "eval_size", "explain_no_data", "explain_no_generators",
    "file_provenance", "file_stem", "full_metrics", "generated", "generator_lock", "generators", "has_real",
    "hdf5_bytes", "load_classifier", "load_generator", "loss_curve", "mean_image", "model_card", "pythia_rate",
    "quick_metrics", "real_grid", "real_images", "real_jets", "real_source", "require_real", "run_page",
    "sample", "sample_chunk", "sample_with_progress", "settings", "sidebar", "sweep_metrics",
]
