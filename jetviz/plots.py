"""Pure plotly figure builders for the app (no streamlit): jet images, histograms with a ratio panel, step
sweeps, loss curves.

Inputs are numpy arrays in physics space: images ``[N, size, size]`` indexed ``[jet, η bin, φ bin]`` (pixel =
p_T,rel), observables ``[N]``. Every builder returns a new ``plotly.graph_objects.Figure`` and never modifies its
inputs; the small numeric helpers (:func:`density_histogram`, :func:`ratio`, :func:`common_edges`) are what the
figures plot, so tests can check the numbers directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from jetviz.config import DEFAULT_GRID, ImageGrid

PHI_TITLE = "φ_rel = φ − φ_jet [rad]"
ETA_TITLE = "η_rel = η − η_jet [dimensionless]"
PT_REL_TITLE = "p_T,rel = p_T / p_T,jet"
MASS_TITLE = "m / p_T (relative jet mass) [dimensionless]"
MULT_TITLE = "multiplicity (non-empty pixels)"
RATIO_TITLE = "gen / real"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
REAL_COLOUR = "#333333"
LOG_FLOOR = 1e-5  # smallest p_T,rel shown on a log colour scale (pixels below are blank)


# ------------------------------------------------------------------------------------------ numbers
def density_histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(density ``[B]``, Poisson error ``[B]``) of ``values`` in bins ``edges`` ``[B+1]``; integrates to the
    fraction of values inside the edges (1 when none fall outside). Empty input gives zeros."""
    values = np.asarray(values, dtype=np.float64).ravel()
    edges = np.asarray(edges, dtype=np.float64)
    counts, _ = np.histogram(values, bins=edges)
    width = np.diff(edges)
    norm = values.size * width if values.size else np.ones_like(width)
    return counts / norm, np.sqrt(counts) / norm


def ratio(num: np.ndarray, den: np.ndarray, num_err: np.ndarray | None = None,
          den_err: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bin-by-bin ``num / den`` and its first-order error; ``nan`` where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    ne = np.zeros_like(num) if num_err is None else np.asarray(num_err, dtype=np.float64)
    de = np.zeros_like(den) if den_err is None else np.asarray(den_err, dtype=np.float64)
    safe = np.where(den > 0, den, 1.0)
    r = np.where(den > 0, num / safe, np.nan)
    rel = np.sqrt((ne / safe) ** 2 + (num * de / safe**2) ** 2)
    return r, np.where(den > 0, rel, np.nan)


def common_edges(a: np.ndarray, b: np.ndarray, bins: int = 40, quantile: float = 0.995,
                 lo: float | None = None, log: bool = False, integer: bool = False) -> np.ndarray:
    """Bin edges covering both samples up to their ``quantile`` (so a far tail does not squash the plot).

    ``log``: log-spaced over the positive values; ``integer``: unit-wide bins centred on integers.
    """
    both = np.concatenate([np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()])
    both = both[np.isfinite(both)]
    if log:
        both = both[both > 0]
    if both.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    low = float(np.min(both)) if lo is None else float(lo)
    high = float(np.quantile(both, quantile))
    if integer:
        return np.arange(np.floor(low) - 0.5, np.ceil(max(high, low)) + 1.5)
    if log:
        low = max(low, float(np.quantile(both, 1 - quantile)))
        high = max(high, low * 10)
        return np.logspace(np.log10(low), np.log10(high), bins + 1)
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, bins + 1)


# ------------------------------------------------------------------------------------------- images
def _heatmap(z: np.ndarray, grid: ImageGrid, coloraxis: str, log: bool) -> go.Heatmap:
    z = np.asarray(z, dtype=np.float64)
    if log:
        z = np.where(z > LOG_FLOOR, np.log10(np.maximum(z, LOG_FLOOR)), np.nan)
    return go.Heatmap(z=z, x=grid.phi_centres, y=grid.eta_centres, coloraxis=coloraxis,
                      hovertemplate="φ_rel %{x:.3f}<br>η_rel %{y:.3f}<br>value %{z:.3g}<extra></extra>")


def _colorbar(title: str, log: bool, x: float) -> dict:
    return {"title": {"text": f"log₁₀ {title}" if log else title, "side": "right"}, "x": x, "len": 0.9,
            "thickness": 12, "xpad": 4}


def _square(fig: go.Figure, rows: int, cols: int) -> None:
    """Make every subplot's pixels square (y axis scaled to its own x axis)."""
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            sp = fig.get_subplot(r, c)
            if sp is not None:
                sp.yaxis.scaleanchor = sp.xaxis.plotly_name.replace("axis", "")
                sp.yaxis.constrain = "domain"
                sp.xaxis.constrain = "domain"


def _range(images: Sequence[np.ndarray], log: bool) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(im, np.float64).ravel() for im in images]) if images else np.zeros(1)
    if log:
        pos = vals[vals > LOG_FLOOR]
        return (np.log10(LOG_FLOOR), 0.0) if pos.size == 0 else (float(np.log10(pos.min())), float(np.log10(pos.max())))
    top = float(vals.max()) if vals.size else 1.0
    return 0.0, top if top > 0 else 1.0


def jet_images_figure(rows: Mapping[str, np.ndarray], grid: ImageGrid = DEFAULT_GRID, n_show: int = 3,
                      log: bool = False, height: int | None = None) -> go.Figure:
    """Rows of jet images: for each ``label → images [N, S, S]``, the first ``n_show`` jets and the average.

    All individual jets share one colour scale and all average images share a second one (an average is
    ≈ N times fainter than a jet), so rows (e.g. generated vs real) compare directly. ``log`` shows log₁₀ of
    p_T,rel with empty pixels blank. Row labels go into the y-axis titles of the first column.
    """
    labels = list(rows)
    if not labels:
        raise ValueError("jet_images_figure needs at least one row of images")
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    for k, a in arrays.items():
        if a.ndim != 3 or a.shape[1:] != (grid.size, grid.size) or len(a) == 0:
            raise ValueError(f"{k}: images must be [N >= 1, {grid.size}, {grid.size}], got {a.shape}")
    n_show = max(0, min(int(n_show), min(len(a) for a in arrays.values())))
    cols = n_show + 1
    titles = [f"jet {i}" for i in range(n_show)] + ["average"]
    fig = make_subplots(rows=len(labels), cols=cols, column_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.08 if len(labels) > 1 else 0.0)
    singles = [arrays[k][i] for k in labels for i in range(n_show)]
    means = [arrays[k].mean(0) for k in labels]
    for r, k in enumerate(labels, start=1):
        for i in range(n_show):
            fig.add_trace(_heatmap(arrays[k][i], grid, "coloraxis", log), row=r, col=i + 1)
        fig.add_trace(_heatmap(means[r - 1], grid, "coloraxis2", log), row=r, col=cols)
    lo, hi = _range(singles, log) if singles else (0.0, 1.0)
    mlo, mhi = _range(means, log)
    fig.update_layout(
        coloraxis={"colorscale": "Viridis", "cmin": lo, "cmax": hi, "showscale": bool(singles),
                   "colorbar": _colorbar(f"{PT_REL_TITLE} (jets)", log, 1.01)},
        coloraxis2={"colorscale": "Plasma", "cmin": mlo, "cmax": mhi,
                    "colorbar": _colorbar(f"{PT_REL_TITLE} (average)", log, 1.01 + 0.09 * bool(singles))},
        height=height or 250 * len(labels) + 70, margin={"l": 70, "r": 150, "t": 40, "b": 50},
        font={"size": 11},
    )
    for r, k in enumerate(labels, start=1):
        for c in range(1, cols + 1):
            fig.update_xaxes(title_text=PHI_TITLE if r == len(labels) else None, row=r, col=c,
                             title_font={"size": 10})
            fig.update_yaxes(title_text=f"<b>{k}</b><br>{ETA_TITLE}" if c == 1 else None, row=r, col=c,
                             title_font={"size": 10})
    _square(fig, len(labels), cols)
    return fig


def average_images_figure(means: Mapping[str, np.ndarray], grid: ImageGrid = DEFAULT_GRID, log: bool = False,
                          height: int = 380) -> go.Figure:
    """Precomputed average images ``label → [S, S]`` side by side on one colour scale."""
    labels = list(means)
    if not labels:
        raise ValueError("average_images_figure needs at least one image")
    fig = make_subplots(rows=1, cols=len(labels), subplot_titles=labels, horizontal_spacing=0.06)
    for i, k in enumerate(labels, start=1):
        m = np.asarray(means[k])
        if m.shape != (grid.size, grid.size):
            raise ValueError(f"{k}: an average image must be [{grid.size}, {grid.size}], got {m.shape}")
        fig.add_trace(_heatmap(m, grid, "coloraxis", log), row=1, col=i)
        fig.update_xaxes(title_text=PHI_TITLE, row=1, col=i)
    fig.update_yaxes(title_text=ETA_TITLE, row=1, col=1)
    lo, hi = _range([np.asarray(v) for v in means.values()], log)
    fig.update_layout(coloraxis={"colorscale": "Plasma", "cmin": lo, "cmax": hi,
                                 "colorbar": _colorbar(f"{PT_REL_TITLE} (average)", log, 1.01)},
                      height=height, margin={"l": 60, "r": 110, "t": 50, "b": 50})
    _square(fig, 1, len(labels))
    return fig


# -------------------------------------------------------------------------------------- histograms
def hist_ratio_figure(real: np.ndarray, gen: Mapping[str, np.ndarray] | np.ndarray, edges: np.ndarray,
                      x_title: str, real_label: str = "real", log_x: bool = False, log_y: bool = False,
                      title: str | None = None) -> go.Figure:
    """Overlaid normalised histograms (real and one or more generated samples) with a ratio panel below.

    ``gen`` is one array or ``label → array``. The upper panel shows densities as steps with Poisson error
    bars; the lower panel shows ``gen / real`` per bin (gaps where real is empty) around a line at 1.
    """
    gens = {"generated": gen} if not isinstance(gen, Mapping) else dict(gen)
    edges = np.asarray(edges, dtype=np.float64)
    centres = np.sqrt(edges[1:] * edges[:-1]) if log_x and edges[0] > 0 else 0.5 * (edges[1:] + edges[:-1])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.03)
    h_real, e_real = density_histogram(real, edges)
    step_x = np.repeat(edges, 2)[1:-1]

    def steps(h: np.ndarray, name: str, colour: str, dash: str | None = None) -> None:
        fig.add_trace(go.Scatter(x=step_x, y=np.repeat(h, 2), mode="lines", name=name, legendgroup=name,
                                 line={"color": colour, "dash": dash, "width": 2}), row=1, col=1)

    steps(h_real, real_label, REAL_COLOUR)
    fig.add_trace(go.Scatter(x=centres, y=h_real, mode="markers", marker={"size": 1, "color": REAL_COLOUR},
                             error_y={"array": e_real, "width": 0}, showlegend=False, legendgroup=real_label,
                             hoverinfo="skip"), row=1, col=1)
    for i, (name, values) in enumerate(gens.items()):
        colour = COLOURS[i % len(COLOURS)]
        h, e = density_histogram(values, edges)
        steps(h, name, colour)
        r, re = ratio(h, h_real, e, e_real)
        fig.add_trace(go.Scatter(x=centres, y=r, mode="markers", name=f"{name} / {real_label}", legendgroup=name,
                                 showlegend=False, marker={"color": colour, "size": 5},
                                 error_y={"array": re, "width": 0}), row=2, col=1)
    fig.add_hline(y=1.0, line={"color": REAL_COLOUR, "dash": "dot", "width": 1}, row=2, col=1)
    fig.update_yaxes(title_text="normalised density", type="log" if log_y else "linear", row=1, col=1)
    fig.update_yaxes(title_text=RATIO_TITLE, range=[0, 2], row=2, col=1)
    fig.update_xaxes(title_text=x_title, type="log" if log_x else "linear", row=2, col=1)
    if log_x:
        fig.update_xaxes(type="log", row=1, col=1)
    fig.update_layout(title=title, height=460, margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 50},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    return fig


def mass_figure(real: np.ndarray, gen, edges: np.ndarray | None = None, **kw) -> go.Figure:
    """m/p_T real vs generated with a ratio panel."""
    g0 = gen if not isinstance(gen, Mapping) else np.concatenate([np.ravel(v) for v in gen.values()])
    edges = common_edges(real, g0, lo=0.0) if edges is None else edges
    return hist_ratio_figure(real, gen, edges, MASS_TITLE, **kw)


def pixel_intensity_figure(real_images: np.ndarray, gen_images: np.ndarray, **kw) -> go.Figure:
    """Distribution of non-empty pixel intensities p_T,rel (log x), real vs generated, with a ratio panel."""
    r = np.asarray(real_images).ravel()
    g = np.asarray(gen_images).ravel()
    r, g = r[r > 0], g[g > 0]
    edges = common_edges(r, g, bins=40, quantile=0.9995, log=True)
    return hist_ratio_figure(r, g, edges, f"{PT_REL_TITLE} of non-empty pixels", log_x=True, log_y=True, **kw)


def multiplicity_figure(real_mult: np.ndarray, gen_mult: np.ndarray, **kw) -> go.Figure:
    """Number of non-empty pixels per jet, real vs generated, unit bins, with a ratio panel."""
    edges = common_edges(real_mult, gen_mult, integer=True, quantile=1.0, lo=0.0)
    return hist_ratio_figure(real_mult, gen_mult, edges, MULT_TITLE, **kw)


def jet_feature_figure(values: np.ndarray, x_title: str, bins: int = 40, name: str = "jets") -> go.Figure:
    """A single normalised histogram (e.g. jet p_T [GeV] of a dataset)."""
    edges = common_edges(values, values, bins=bins, quantile=0.999)
    h, e = density_histogram(values, edges)
    fig = go.Figure(go.Bar(x=0.5 * (edges[1:] + edges[:-1]), y=h, width=np.diff(edges), name=name,
                           error_y={"array": e, "width": 0}, marker={"color": COLOURS[0]}))
    fig.update_layout(xaxis_title=x_title, yaxis_title="normalised density", height=300, bargap=0,
                      margin={"l": 60, "r": 20, "t": 20, "b": 50})
    return fig


# ------------------------------------------------------------------------------------------- sweeps
FLOOR_NAME = "real vs real floor"


def _steps_axis(fig: go.Figure, rows: Sequence[Mapping]) -> tuple[float, float]:
    ticks = sorted({int(r["steps"]) for r in rows}) or [1]
    fig.update_xaxes(title_text="sampling steps", type="log", tickvals=ticks, ticktext=[str(t) for t in ticks])
    return float(min(ticks)), float(max(ticks))


def sweep_metric_figure(rows: Sequence[Mapping], metric: str, y_title: str,
                        floor: tuple[float, float] | None = None, log_y: bool = False) -> go.Figure:
    """Metric against sampling steps, one line per model; the real-vs-real floor (mean ± spread) as a grey
    band (a filled trace named :data:`FLOOR_NAME`) with a dashed line at its mean.

    ``rows``: dicts with ``model``, ``steps``, ``metric`` and optionally ``f"{metric}_err"``.
    """
    fig = go.Figure()
    lo_x, hi_x = _steps_axis(fig, rows)
    if floor is not None:
        mean, spread = floor
        lo = max(mean - spread, mean * 0.1 if log_y else 0.0)
        fig.add_trace(go.Scatter(x=[lo_x, hi_x, hi_x, lo_x, lo_x], y=[lo, lo, mean + spread, mean + spread, lo],
                                 fill="toself", mode="lines", line={"width": 0}, fillcolor="rgba(128,128,128,0.25)",
                                 name=FLOOR_NAME, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[lo_x, hi_x], y=[mean, mean], mode="lines", showlegend=False,
                                 line={"color": "grey", "dash": "dash"}, name=f"{FLOOR_NAME} (mean)"))
    models = list(dict.fromkeys(r["model"] for r in rows))
    for i, m in enumerate(models):
        pts = sorted((r for r in rows if r["model"] == m), key=lambda r: r["steps"])
        err = [r.get(f"{metric}_err", 0.0) for r in pts]
        fig.add_trace(go.Scatter(x=[r["steps"] for r in pts], y=[r[metric] for r in pts], mode="lines+markers",
                                 name=m, line={"color": COLOURS[i % len(COLOURS)]},
                                 error_y={"array": err, "width": 3}))
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    fig.update_layout(height=360, margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0})
    return fig


def sweep_rate_figure(rows: Sequence[Mapping], pythia_rate: float | None, pythia_label: str) -> go.Figure:
    """Generated jets per second against steps (log-log), with the Pythia simulation rate as a dashed line
    (a trace named ``pythia_label``)."""
    fig = go.Figure()
    lo_x, hi_x = _steps_axis(fig, rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for i, m in enumerate(models):
        pts = sorted((r for r in rows if r["model"] == m), key=lambda r: r["steps"])
        fig.add_trace(go.Scatter(x=[r["steps"] for r in pts], y=[r["jets_per_s"] for r in pts],
                                 mode="lines+markers", name=m, line={"color": COLOURS[i % len(COLOURS)]}))
    if pythia_rate:
        fig.add_trace(go.Scatter(x=[lo_x, hi_x], y=[pythia_rate, pythia_rate], mode="lines", name=pythia_label,
                                 line={"color": REAL_COLOUR, "dash": "dash"}))
    fig.update_yaxes(title_text="jets / s [1/s]", type="log")
    fig.update_layout(height=380, margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      legend={"orientation": "h", "y": -0.25, "yanchor": "top", "x": 0})
    return fig


# --------------------------------------------------------------------------------------------- loss
def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (window ≤ 1 returns a copy)."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v.copy()
    c = np.cumsum(np.insert(v, 0, 0.0))
    out = np.empty_like(v)
    k = np.arange(1, v.size + 1)
    lo = np.maximum(k - window, 0)
    out[:] = (c[k] - c[lo]) / (k - lo)
    return out


def loss_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], window: int = 1,
                log_y: bool = True) -> go.Figure:
    """Training loss against step, ``name → (steps, loss)``, optionally smoothed; raw values faint."""
    fig = go.Figure()
    for i, (name, (step, loss)) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        if window > 1:
            fig.add_trace(go.Scatter(x=step, y=loss, mode="lines", line={"color": colour, "width": 1},
                                     opacity=0.25, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=step, y=smooth(loss, window), mode="lines", name=name,
                                 line={"color": colour, "width": 2}))
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="training loss", type="log" if log_y else "linear")
    fig.update_layout(height=360, margin={"l": 60, "r": 20, "t": 30, "b": 50})
    return fig
