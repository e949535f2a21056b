"""Figure builders (jetviz.plots) as pure functions, and the app's download and provenance helpers (jetviz.ui)
as plain functions: AppTest cannot read download bytes or plotly internals."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from jetviz import plots
from jetviz.config import DEFAULT_GRID, ImageGrid


# ------------------------------------------------------------------------------------------ numbers
def test_density_histogram_integrates_to_one_with_poisson_errors():
    edges = np.array([0.0, 1.0, 3.0])
    h, e = plots.density_histogram([0.5, 0.5, 2.0, 2.5], edges)
    np.testing.assert_allclose(h, [2 / 4, 2 / (4 * 2)])
    np.testing.assert_allclose(e, [np.sqrt(2) / 4, np.sqrt(2) / 8])
    assert (h * np.diff(edges)).sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(plots.density_histogram([], edges)[0], [0.0, 0.0])


def test_ratio_of_known_histograms():
    r, err = plots.ratio([1.0, 2.0, 0.0, 3.0], [2.0, 0.0, 4.0, 3.0], [0.1, 0.1, 0.0, 0.3], [0.2, 0.1, 0.4, 0.0])
    np.testing.assert_allclose(r, [0.5, np.nan, 0.0, 1.0])
    # first order: sqrt((dn/d)^2 + (n dd / d^2)^2)
    np.testing.assert_allclose(err[[0, 2, 3]], [np.hypot(0.1 / 2, 1 * 0.2 / 4), 0.0, 0.1])
    assert np.isnan(err[1])


def test_common_edges():
    a, b = np.arange(10.0), np.arange(5.0, 20.0)
    e = plots.common_edges(a, b, bins=10, quantile=1.0)
    assert e[0] == 0.0 and e[-1] == 19.0 and len(e) == 11
    ints = plots.common_edges([0, 3], [5], integer=True, quantile=1.0, lo=0.0)
    np.testing.assert_array_equal(ints, np.arange(-0.5, 6.0))
    logs = plots.common_edges([1e-3, 0.0, 0.5], [0.1], bins=5, log=True, quantile=1.0)
    assert logs[0] == pytest.approx(1e-3) and logs[-1] == pytest.approx(0.5) and np.all(np.diff(np.log(logs)) > 0)
    assert len(plots.common_edges([], [], bins=4)) == 5


def test_smooth_is_a_trailing_mean():
    np.testing.assert_allclose(plots.smooth([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(plots.smooth([1, 2], 1), [1, 2])


# ------------------------------------------------------------------------------------------- images
def _images(n, value=0.5, seed=0):
    rng = np.random.default_rng(seed)
    im = np.zeros((n, 25, 25), np.float32)
    im[:, 12, 12] = value
    im[:, rng.integers(0, 25, n), rng.integers(0, 25, n)] += 0.1
    return im


def test_jet_images_share_colour_scales_between_rows():
    gen, real = _images(5, 0.9), _images(7, 0.4)
    before = gen.copy()
    fig = plots.jet_images_figure({"generated": gen, "real": real}, DEFAULT_GRID, n_show=3)
    np.testing.assert_array_equal(gen, before)  # inputs untouched
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 * 4
    assert [t.coloraxis for t in heat] == ["coloraxis"] * 3 + ["coloraxis2"] + ["coloraxis"] * 3 + ["coloraxis2"]
    assert fig.layout.coloraxis.cmax == pytest.approx(max(gen[:3].max(), real[:3].max()))
    assert fig.layout.coloraxis2.cmax == pytest.approx(max(gen.mean(0).max(), real.mean(0).max()))
    np.testing.assert_allclose(heat[3].z, gen.mean(0))
    np.testing.assert_allclose(heat[0].x, DEFAULT_GRID.phi_centres)
    np.testing.assert_allclose(heat[0].y, DEFAULT_GRID.eta_centres)
    assert fig.layout.xaxis5.title.text == plots.PHI_TITLE and "[rad]" in plots.PHI_TITLE
    assert "η_rel" in fig.layout.yaxis.title.text and "real" in fig.layout.yaxis5.title.text
    assert fig.layout.yaxis.scaleanchor == "x"  # square pixels


def test_jet_images_log_scale_blanks_empty_pixels():
    im = _images(2)
    fig = plots.jet_images_figure({"real": im}, n_show=1, log=True)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 0]) and z[12, 12] == pytest.approx(np.log10(0.5), abs=0.2)
    assert fig.layout.coloraxis.colorbar.title.text.startswith("log₁₀")


def test_jet_images_reject_bad_shapes():
    with pytest.raises(ValueError, match="25, 25"):
        plots.jet_images_figure({"x": np.zeros((3, 10, 10))})
    with pytest.raises(ValueError, match="at least one"):
        plots.jet_images_figure({})
    fig = plots.jet_images_figure({"x": _images(1)}, n_show=10)  # more asked than there are
    assert len(fig.data) == 2


def test_average_images_figure():
    g = ImageGrid(size=9)
    fig = plots.average_images_figure({"a": np.ones((9, 9)), "b": np.zeros((9, 9))}, g)
    assert len(fig.data) == 2 and fig.layout.coloraxis.cmax == 1.0
    with pytest.raises(ValueError):
        plots.average_images_figure({"a": np.ones((25, 25))}, g)


# -------------------------------------------------------------------------------------- histograms
def test_hist_ratio_panel_values():
    real = np.array([0.5, 1.5, 1.5, 2.5])
    gen = np.array([0.5, 0.5, 1.5, 2.5])
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    fig = plots.hist_ratio_figure(real, {"m": gen}, edges, plots.MASS_TITLE)
    ratio_trace = [t for t in fig.data if t.yaxis == "y2"][0]
    np.testing.assert_allclose(ratio_trace.x, [0.5, 1.5, 2.5])
    np.testing.assert_allclose(ratio_trace.y, [2.0, 0.5, 1.0])
    real_steps = fig.data[0]
    np.testing.assert_allclose(real_steps.y, np.repeat([0.25, 0.5, 0.25], 2))
    assert fig.layout.xaxis2.title.text == plots.MASS_TITLE and "[dimensionless]" in plots.MASS_TITLE
    assert fig.layout.yaxis2.title.text == plots.RATIO_TITLE
    assert {t.name for t in fig.data if t.showlegend is not False} >= {"real", "m"}


def test_ratio_panel_has_gaps_where_real_is_empty():
    fig = plots.hist_ratio_figure(np.array([0.5]), np.array([0.5, 1.5]), np.array([0.0, 1.0, 2.0]), "x")
    r = [t for t in fig.data if t.yaxis == "y2"][0].y
    assert r[0] == pytest.approx(0.5)
    assert r[1] is None or np.isnan(r[1])


def test_physics_figures_build_from_images():
    gen, real = _images(20, 0.7, 1), _images(30, 0.5, 2)
    from jetviz.physics import image_mass_rel, image_multiplicity

    m = plots.mass_figure(image_mass_rel(real), {"gen": image_mass_rel(gen)})
    p = plots.pixel_intensity_figure(real, gen)
    n = plots.multiplicity_figure(image_multiplicity(real), image_multiplicity(gen))
    assert p.layout.xaxis2.type == "log" and "p_T,rel" in p.layout.xaxis2.title.text
    assert n.layout.xaxis2.title.text == plots.MULT_TITLE
    assert all(len(f.data) == 4 for f in (m, p, n))
    f = plots.jet_feature_figure(np.array([900.0, 1000.0, 1100.0]), "jet p_T [GeV]")
    assert f.layout.xaxis.title.text == "jet p_T [GeV]"


# ------------------------------------------------------------------------------------------- sweeps
ROWS = [{"model": "cm", "steps": s, "w1m": 1.0 / s, "w1m_err": 0.1, "jets_per_s": 100.0 / s} for s in (1, 2, 4)] + \
       [{"model": "ve", "steps": s, "w1m": 2.0 / s, "jets_per_s": 10.0 / s} for s in (4, 1)]


def test_sweep_metric_figure_has_lines_and_a_floor_band():
    fig = plots.sweep_metric_figure(ROWS, "w1m", "W1M", floor=(0.2, 0.05))
    band = [t for t in fig.data if t.name == plots.FLOOR_NAME][0]
    assert band.fill == "toself" and min(band.y) == pytest.approx(0.15) and max(band.y) == pytest.approx(0.25)
    assert min(band.x) == 1 and max(band.x) == 4
    ve = [t for t in fig.data if t.name == "ve"][0]
    assert list(ve.x) == [1, 4] and list(ve.y) == [2.0, 0.5]  # sorted by steps
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [1, 2, 4]
    assert len(plots.sweep_metric_figure(ROWS, "w1m", "W1M").data) == 2


def test_sweep_rate_figure_with_pythia_line():
    fig = plots.sweep_rate_figure(ROWS, 150.0, "Pythia 150 jets/s")
    line = [t for t in fig.data if t.name == "Pythia 150 jets/s"][0]
    assert list(line.y) == [150.0, 150.0]
    assert fig.layout.yaxis.type == "log" and "jets / s" in fig.layout.yaxis.title.text
    assert len(plots.sweep_rate_figure(ROWS, None, "").data) == 2


def test_loss_figure():
    steps, loss = np.arange(1, 11), np.linspace(1, 0.1, 10)
    fig = plots.loss_figure({"cm": (steps, loss)}, window=3)
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(fig.data[1].y, plots.smooth(loss, 3))
    assert len(plots.loss_figure({"cm": (steps, loss)}, log_y=False).data) == 1


# ---------------------------------------------------------------------------------------- downloads
META = {"jet_type": "t", "model": "cm-ct", "kind": "consistency-ct", "steps": 1, "seed": 3, "n_requested": 4,
        "chunk": 250, "shard": [0, 1]}


def test_csv_download_bytes():
    from jetviz import ui

    im = _images(4)
    df = pd.read_csv(io.BytesIO(ui.csv_bytes(im, DEFAULT_GRID, META)))
    assert list(df.columns) == ["jet_type", "model", "steps", "seed", "jet_id", "eta_rel", "phi_rel", "pt_rel"]
    assert len(df) == int((im > 0).sum()) and set(df.jet_id) == {0, 1, 2, 3}
    assert (df.jet_type == "t").all() and (df.seed == 3).all()
    np.testing.assert_allclose(df.groupby("jet_id").pt_rel.sum(), im.sum((1, 2)), rtol=1e-6)


def test_hdf5_download_bytes_are_jetnet_format(tmp_path):
    import h5py

    from jetviz import ui
    from jetviz.export import read_samples

    im = _images(4)
    raw = ui.hdf5_bytes(im, DEFAULT_GRID, META)
    path = tmp_path / "dl.hdf5"
    path.write_bytes(raw)
    images, ids, meta = read_samples(path)
    np.testing.assert_allclose(images, im)
    np.testing.assert_array_equal(ids, np.arange(4))
    assert meta["model"] == "cm-ct" and meta["steps"] == 1
    with h5py.File(path) as f:
        assert f["particle_features"].shape == (4, 30, 4) and f["jet_features"].shape == (4, 4)
    assert ui.file_stem(META) == "jetviz_cm-ct_t_1step_4jets_seed3"


# --------------------------------------------------------------------------------------- provenance
def test_pythia_rate_from_sidecar_or_documented_constant(tmp_path, monkeypatch):
    from jetviz import ui

    monkeypatch.setenv("JETVIZ_DATA", str(tmp_path))
    rate, label = ui.pythia_rate("g")
    assert rate == ui.PYTHIA_FALLBACK_RATE and "documented constant" in label
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "w.json").write_text(json.dumps({"jets": 400, "seconds": 1.0, "workers": 2}))
    rate, label = ui.pythia_rate("g")  # no g sidecar: mean of the others, per core
    assert rate == pytest.approx(200.0) and "mean" in label
    (tmp_path / "sample" / "g.json").write_text(json.dumps({"jets_per_s": 110.0, "workers": 1}))
    rate, label = ui.pythia_rate("g")
    assert rate == pytest.approx(110.0) and "g:" in label
    (tmp_path / "sample" / "g.json").write_text("{broken")
    assert ui.pythia_rate("g")[0] == pytest.approx(200.0)


def test_locations_are_read_at_call_time(tmp_path, monkeypatch):
    from jetviz import ui

    monkeypatch.setenv("JETVIZ_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("JETVIZ_CHECKPOINTS", str(tmp_path / "c"))
    assert ui.bundled_dir() == tmp_path / "d" / "sample" and ui.checkpoint_root() == tmp_path / "c"
    assert ui.discover() == []
    (tmp_path / "c" / "x").mkdir(parents=True)
    (tmp_path / "c" / "x" / "card.json").write_text("[]")
    assert ui.discover()[0].error and ui.generators() == []


def test_eval_size_and_duration():
    from jetviz import ui

    assert ui.eval_size(1000, 40_000) == 1000 and ui.eval_size(1000, 300) == 150 and ui.eval_size(5, 2) == 2
    assert ui.eval_size(20_000, 40_000) == ui.METRIC_MAX_JETS
    assert ui.duration(42) == "42 s" and ui.duration(600) == "10.0 min" and ui.duration(7200 * 2) == "4.0 h"


def test_card_markdown_summarises_a_card():
    from jetviz import ui

    card = {"kind": "consistency-ct", "name": "cm-ct", "training": {"steps": 2000, "wall_time_s": 5400},
            "data": {"source": "bundled", "split": "train", "classes": ["g", "t"]}, "hardware": "CPU",
            "seed": 0, "checksums_verified": 4, "unet": {"block_out_channels": [32, 64, 64], "layers_per_block": 1}}
    md = ui.card_markdown(card)
    assert "2000" in md and "90.0 min" in md and "4 file(s)" in md and "bundled" in md and "[32, 64, 64]" in md


def test_pythia_rate_prefers_the_bench_table(tmp_path, monkeypatch):
    from jetviz import ui

    (tmp_path / "data" / "sample").mkdir(parents=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "bench.csv").write_text(
        "what,model,jets_per_s,jet_type\npythia,pythia8+fastjet,111.5,g\nmodel,cm-ct,300,\n")
    monkeypatch.setenv("JETVIZ_DATA", str(tmp_path / "data"))
    rate, label = ui.pythia_rate("g")
    assert rate == pytest.approx(111.5) and "bench" in label
    assert ui.pythia_rate("t")[0] == ui.PYTHIA_FALLBACK_RATE  # no t row, no sidecar
