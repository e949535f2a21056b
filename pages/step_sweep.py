"""Step sweep: sample quality and speed against the number of sampling steps, with the Pythia rate."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from jetviz import plots, ui

STEP_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16, 25, 50, 100, 200, 500, 1000)
MAX_SWEEP_JETS = 5_000


def run_sweep(models: list[ui.ModelChoice], steps: list[int], s: ui.Settings, n: int, source: str) -> list[dict]:
    """Every (model, steps) point, served from the cache where possible, with one progress bar."""
    from jetviz.sampling import CHUNK

    grid = ui.real_grid(s)
    real = ui.real_images(s.jet_type, source, grid.to_dict(), 2 * n)
    points = [(m, k) for m in models for k in steps]
    per = -(-n // CHUNK)
    bar = st.progress(0.0, text="Sweep …")
    rows = []
    try:
        for i, (m, k) in enumerate(points):
            def tick(done, total, i=i, m=m, k=k):
                bar.progress((i * per + done) / (len(points) * per),
                             text=f"{m.name}, {k} step(s): chunk {done}/{total} (point {i + 1}/{len(points)})")

            out = ui.sample(m, s.jet_type, n, k, s.seed, tick)
            met = ui.sweep_metrics(out.images, real, out.grid.to_dict(), s.seed)
            rows.append({"model": m.name, "kind": m.kind, "steps": k, "jets_per_s": out.jets_per_s,
                         "seconds": out.seconds, **met})
    finally:
        bar.empty()
    return rows


def body() -> None:
    s = ui.settings()
    st.title("Step sweep")
    st.caption("Quality (W1M, pixel WD; lower is better, the grey band is the real-vs-real floor) and speed "
               "against the number of sampling steps. Points are cached: coming back is instant.")
    choices = ui.generators()
    if not choices:
        ui.explain_no_generators()
        return
    real_ref = ui.require_real(s.jet_type)
    if real_ref is None:
        return
    source, label = real_ref
    labels = [c.label for c in choices]
    c1, c2, c3 = st.columns([2, 2, 1])
    picked = c1.multiselect("Models", labels, default=labels[: min(3, len(labels))], key="sweep_models")
    steps = c2.multiselect("Step counts", STEP_CHOICES, default=[1, 2, 4], key="sweep_steps")
    n = int(c3.number_input("Jets per point", 50, MAX_SWEEP_JETS, 500, step=50, key="sweep_n"))
    config = (tuple(picked), tuple(sorted(steps)), n, s.jet_type, s.seed, source)
    if st.button("Run sweep", key="sweep_run", type="primary", disabled=not (picked and steps)):
        st.session_state["_sweep_config"] = config
    last = st.session_state.get("_sweep_config")
    if last is None:
        st.info("Choose models and step counts, then press **Run sweep** (long sweeps show their progress).")
        return
    if last != config:
        st.caption("Showing the last sweep; press **Run sweep** to run the current selection.")
    names, k_list, n_last, jet_type, seed, src = last
    models = [c for c in choices if c.label in names]
    if not models:
        st.warning("The models of the last sweep are no longer available; run the sweep again.")
        return
    s_last = ui.Settings(jet_type, models[0], s.steps, n_last, seed)
    rows = run_sweep(models, list(k_list), s_last, n_last, src)

    rate, rate_label = ui.pythia_rate(jet_type)
    f = rows[0]
    m1, m2 = st.columns(2)
    m1.plotly_chart(plots.sweep_metric_figure(rows, "w1m", "W1M (m/p_T) vs real",
                                              floor=(f["w1m_floor"], f["w1m_floor_err"])), key="sweep_w1m")
    m2.plotly_chart(plots.sweep_metric_figure(rows, "pixel_wd", "pixel WD vs real",
                                              floor=(f["pixel_wd_floor"], f["pixel_wd_floor_err"])),
                    key="sweep_wd")
    st.plotly_chart(plots.sweep_rate_figure(rows, rate, rate_label), key="sweep_rate")
    st.caption(f"{jet_type} jets, {n_last:,} per point, seed {seed}, real: {label}. {rate_label}. Generation "
               "rates are wall-clock on this machine with torch's threads.")
    st.dataframe(pd.DataFrame(rows)[["model", "steps", "jets_per_s", "seconds", "w1m", "w1m_err", "w1m_floor",
                                     "pixel_wd", "pixel_wd_err", "pixel_wd_floor", "n"]], hide_index=True)


ui.run_page(body)
