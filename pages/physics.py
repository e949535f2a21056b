"""Physics: m/p_T, pixel p_T,rel and multiplicity distributions, real vs generated, and the metric table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from jetviz import plots, ui
from jetviz.physics import image_mass_rel, image_multiplicity

COLUMNS = ["metric", "generated vs real", "± (gen)", "real vs real (floor)", "± (floor)", "ratio to floor",
           "jets per sample", "note"]


def table(rows: list[dict]) -> None:
    st.dataframe(pd.DataFrame(rows, columns=COLUMNS), hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.4g") for c in COLUMNS[1:6]})


def body() -> None:
    s = ui.settings()
    st.title("Physics")
    st.caption("Distributions of generated jets against real ones, with a ratio panel, and sample-quality metrics "
               "each beside its floor: the same metric between two independent real samples of the same size.")
    real_ref = ui.require_real(s.jet_type)
    if real_ref is None:
        return
    source, label = real_ref
    out = ui.generated(s, button_key="phys_run")
    if out is None:
        return
    n = len(out.images)
    real = ui.real_images(s.jet_type, source, out.grid.to_dict(), 2 * n)
    gen_label = f"{out.meta['model']}, {s.steps} step(s)"
    st.caption(f"{n:,} generated jets ({gen_label}) vs {len(real):,} real jets ({label}). Both are pixelised: the "
               "real m/p_T is computed from the real jet images the same way as for generated ones.")
    log_y = st.toggle("Log y axis (m/p_T)", value=False, key="phys_log")

    tab_m, tab_p, tab_n = st.tabs(["m/p_T", "pixel p_T,rel", "multiplicity"])
    with tab_m:
        st.plotly_chart(plots.mass_figure(image_mass_rel(real, out.grid), {gen_label: image_mass_rel(out.images, out.grid)},
                                          real_label=f"real ({label})", log_y=log_y), key="phys_mass")
    with tab_p:
        st.plotly_chart(plots.pixel_intensity_figure(real, out.images, real_label="real"), key="phys_pt")
    with tab_n:
        st.plotly_chart(plots.multiplicity_figure(image_multiplicity(real), image_multiplicity(out.images),
                                                  real_label="real"), key="phys_mult")

    st.subheader("Metrics")
    clf = ui.classifier_choice()
    rows = ui.quick_metrics(out.images, real, out.grid.to_dict(), clf.path if clf else None,
                            clf.stamp if clf else 0.0, s.seed)
    token = (out.meta["model"], s.jet_type, n, s.steps, s.seed, source)
    full_done = st.session_state.setdefault("_full_metrics", set())
    if st.button("Compute full metrics (AUC, pixel FD, FPD, KPD)", key="phys_full",
                 help="a classifier two-sample test and the jetnet EFP metrics: tens of seconds at 1,000 jets"):
        full_done.add(token)
    if token in full_done:
        rows = rows + ui.full_metrics(out.images, real, out.grid.to_dict(), s.seed)
    table(rows)
    st.caption(f"Values are means (± spread) over {ui.METRIC_RESAMPLES} resamplings of "
               f"{rows[0]['jets per sample']:,} jets per sample; a metric near its floor means the generated "
               "sample is as close to real data as another real sample would be. Below ~1,000 jets the "
               "distances are biased and noisy.")


ui.run_page(body)
