"""Generate: generated vs real jet images side by side, timing, and downloads (CSV, JetNet HDF5)."""

from __future__ import annotations

import functools

import streamlit as st

from jetviz import plots, ui
from jetviz.config import CLASS_NAMES


def body() -> None:
    s = ui.settings()
    st.title("Generate jets")
    st.caption("Generated jet images next to real (Pythia 8) ones of the same class, on the same colour scale. "
               "Change the class, model, steps, number of jets and seed in the sidebar.")
    c1, c2 = st.columns(2)
    n_show = c1.slider("Individual jets shown", 0, 6, 3, key="gen_n_show")
    log = c2.toggle("Log colour scale", value=False, key="gen_log")

    out = ui.generated(s, button_key="gen_run")
    if out is None:
        return
    m1, m2, m3 = st.columns(3)
    m1.metric("Jets", f"{len(out.images):,}")
    m2.metric("Time taken", f"{out.seconds:.2f} s", help="sampling time when first generated")
    m3.metric("Rate", f"{out.jets_per_s:,.0f} jets/s")
    if out.cached:
        st.caption(f"Served from the cache (first generated in {out.seconds:.2f} s).")

    source, label = ui.real_source()
    rows = {f"generated ({out.meta['model']}, {s.steps} step{'s' if s.steps > 1 else ''})": out.images}
    if ui.has_real(s.jet_type, source):
        real = ui.real_images(s.jet_type, source, out.grid.to_dict(), len(out.images))
        rows[f"real ({label})"] = real
    elif source == str(ui.bundled_dir()):
        ui.explain_no_data(s.jet_type)
    else:
        st.warning(f"No {s.jet_type}.hdf5 in {source}: showing generated jets only.")
    st.plotly_chart(plots.jet_images_figure(rows, out.grid, n_show=n_show, log=log), key="gen_images", theme=None)
    st.caption(f"{CLASS_NAMES[s.jet_type]} jets. Pixel value = p_T of the particles in the pixel / jet p_T. "
               "Averages use every jet of each sample.")

    st.subheader("Download")
    stem = ui.file_stem(out.meta)
    d1, d2 = st.columns(2)
    d1.download_button("CSV (one row per non-empty pixel)",
                       functools.partial(ui.csv_bytes, out.images, out.grid, out.meta),
                       file_name=f"{stem}.csv", mime="text/csv", key="gen_dl_csv", on_click="ignore")
    d2.download_button("HDF5 (JetNet format + images)",
                       functools.partial(ui.hdf5_bytes, out.images, out.grid, out.meta),
                       file_name=f"{stem}.hdf5", mime="application/x-hdf5", key="gen_dl_hdf5",
                       on_click="ignore")
    st.caption("The HDF5 file holds `particle_features` [N, 30, 4] (each pixel a massless particle), relative "
               "`jet_features` (Σp_T,rel, 0, m/p_T, n), `images` [N, 25, 25] and the generation settings.")


ui.run_page(body)
