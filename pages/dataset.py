"""Dataset: browse real jets per class from the bundled sample, a local JetNet folder, or a fresh Pythia run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from jetviz import plots, ui
from jetviz.config import CLASS_NAMES, JET_FEATURES

SOURCES = ("bundled sample", "local JetNet folder", "fresh Pythia run")
MAX_SIM = 2_000


def from_folder(jet_type: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    from jetviz.data import available_classes, resolve_source

    folder = st.text_input("JetNet folder (holding g.hdf5 … z.hdf5)", key="dataset_folder",
                           placeholder="/path/to/jetnet")
    if not folder.strip():
        st.info("Type the path of a folder with JetNet-format files (e.g. the real JetNet 30-particle files).")
        return None
    try:
        path = resolve_source(folder.strip())
        have = available_classes(path)
    except (ValueError, OSError) as e:
        st.error(f"Cannot use this folder: {e}")
        return None
    if jet_type not in have:
        st.error(f"{path} has no readable {jet_type}.hdf5 (it holds: {', '.join(have) or 'no class files'}).")
        return None
    try:
        pf, jf = ui.real_jets(jet_type, str(path))
    except ValueError as e:
        st.error(f"Cannot read {jet_type}.hdf5 in {path}: {e}")
        return None
    st.session_state["_real_folder"] = str(path)
    st.caption("This folder is now the real reference on the other pages too.")
    return pf, jf, ui.file_provenance(path / f"{jet_type}.hdf5")


def from_pythia(jet_type: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict] | None:
    n = int(st.number_input("Jets to simulate", 10, MAX_SIM, 200, step=10, key="dataset_sim_n",
                            help=f"a small run on one core (≈ 100-200 jets/s); at most {MAX_SIM:,}"))
    store = st.session_state.setdefault("_simulated", {})
    key = (jet_type, n, seed)
    if st.button(f"Simulate {n:,} {jet_type} jets with Pythia 8", key="dataset_sim_run", type="primary"):
        try:
            from jetviz.simulate import simulate_jets
        except ImportError as e:
            st.error(f"Pythia simulation is not available here ({e}); install pythia8mc and fastjet.")
            return None
        bar = st.progress(0.0, text="Starting Pythia …")

        def tick(done: int, total: int) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=f"Simulating: {done:,}/{total:,} jets")

        try:
            res = simulate_jets(jet_type, n, seed, progress=tick)
        finally:
            bar.empty()
        store[key] = (res.particle_features, res.jet_features, res.info)
    if key not in store:
        st.info(f"Press the button to simulate {n:,} {CLASS_NAMES[jet_type]} jets (seed {seed} from the sidebar).")
        return None
    pf, jf, info = store[key]
    prov = {k: info[k] for k in ("jets", "events", "seconds", "jets_per_s", "seed", "pythia_seeds", "versions")
            if k in info}
    st.success(f"Simulated {len(pf):,} jets in {info.get('seconds', 0):.1f} s "
               f"({info.get('jets_per_s', 0):.0f} jets/s). They are shown here only.")
    return pf, jf, prov


def from_bundled(jet_type: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    src = ui.bundled_dir()
    if not ui.has_real(jet_type, str(src)):
        ui.explain_no_data(jet_type)
        return None
    pf, jf = ui.real_jets(jet_type, str(src))
    return pf, jf, ui.file_provenance(Path(src) / f"{jet_type}.hdf5")


def body() -> None:
    from jetviz.images import to_images

    s = ui.settings()
    st.title("Dataset")
    st.caption("Real jets: particle-level Pythia 8 + FastJet, anti-k_T R = 0.8, in the JetNet format.")
    kind = st.radio("Data source", SOURCES, horizontal=True, key="dataset_source")
    if kind != "local JetNet folder":
        st.session_state.pop("_real_folder", None)
    loaded = {"bundled sample": lambda: from_bundled(s.jet_type),
              "local JetNet folder": lambda: from_folder(s.jet_type),
              "fresh Pythia run": lambda: from_pythia(s.jet_type, s.seed)}[kind]()
    if loaded is None:
        return
    pf, jf, prov = loaded
    if len(pf) == 0:
        st.warning("No jets in this sample.")
        return
    grid = ui.real_grid(s)
    c1, c2, c3 = st.columns(3)
    if st.session_state.get("dataset_start", 0) > len(pf) - 1:  # a smaller sample than the last one
        st.session_state["dataset_start"] = 0
    start = int(c1.number_input("First jet", 0, len(pf) - 1, 0, key="dataset_start"))
    n_show = c2.slider("Jets shown", 1, 8, 4, key="dataset_n_show")
    log = c3.toggle("Log colour scale", value=False, key="dataset_log")
    shown = to_images(pf[start:start + n_show], grid)
    fig = plots.jet_images_figure({f"jets {start}–{start + len(shown) - 1}": shown}, grid, n_show=len(shown),
                                  log=log)
    st.plotly_chart(fig, key="dataset_jets", theme=None)
    avg = ui.mean_image(pf, grid)
    st.plotly_chart(plots.average_images_figure({f"{CLASS_NAMES[s.jet_type]}: average of {len(pf):,} jets": avg},
                                                grid, log=log), key="dataset_average", theme=None)
    table = pd.DataFrame(jf[start:start + n_show], columns=["p_T [GeV]", "η", "mass [GeV]", "n_particles"])
    table.insert(0, "jet", np.arange(start, start + len(table)))
    st.dataframe(table, hide_index=True)
    h1, h2 = st.columns(2)
    h1.plotly_chart(plots.jet_feature_figure(jf[:, 2], "jet mass [GeV]"), key="dataset_mass")
    h2.plotly_chart(plots.jet_feature_figure(jf[:, 0], "jet p_T [GeV]"), key="dataset_pt")
    with st.expander("Provenance"):
        st.json(prov)
    st.caption(f"jet_features columns: {', '.join(JET_FEATURES)}.")


ui.run_page(body)
