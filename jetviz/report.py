"""The report folder of ``python -m jetviz evaluate`` (and the provenance lines shared with ``bench``): ``metrics.csv``, ``per_seed.csv``, ``generation.csv``,
``report.md`` and the plots (``plots.html``, self-contained with plotly.js inlined once; PNG files as well when
``kaleido`` is installed).

Every number in ``report.md`` is printed with its uncertainty and beside its floor; the definitions are those of
:mod:`jetviz.evaluate` (repeated at the end of the report).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from jetviz import stats
from jetviz.config import CLASS_NAMES, REPO_ROOT

TABLE_METRICS = ("FID", "W1M", "pixel_WD", "pixel_FD", "KS_D", "AUC", "DI", "W1P", "FPD", "KPD")
METRIC_TITLES = {
    "FID": "FID (classifier features)", "W1M": "W1M (m/p_T)", "pixel_WD": "pixel WD", "pixel_FD": "pixel FD",
    "KS_D": "KS statistic of m/p_T", "AUC": "classifier AUC", "DI": "diversity index DI", "W1P": "jetnet W1P",
    "FPD": "jetnet FPD", "KPD": "jetnet KPD", "W1M_pooled": "W1M, all seeds pooled",
}


# -------------------------------------------------------------------------------------------- provenance
def command_line(args=None) -> str:
    """The command that reproduces a run: every option of the parsed ``args`` spelled out (defaults included;
    options follow the ``--some-flag`` ↔ ``some_flag`` convention), or ``sys.argv`` when ``args`` is None."""
    if args is None:
        return "python -m jetviz " + shlex.join(sys.argv[1:])
    parts = ["python -m jetviz", args.command]
    for key, v in vars(args).items():
        if key in ("func", "command", "command_line") or v is None or v is False:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if v is True else [flag, shlex.quote(str(v))]
    return " ".join(parts)


def git_revision() -> str:
    """Short commit of the jetviz checkout, "(modified)" if tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{rev}{' (modified)' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def hardware() -> str:
    """The evaluate header's machine line: torch's view, the CPU, its load (a shared machine is slower)."""
    from jetviz.training import hardware_string

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{hardware_string()}; {cpu_name()}, {os.cpu_count()} logical CPUs, load average {load}; "
            "jets generated on the CPU")


def machine() -> str:
    """CPU, load, GPU and torch version (the thread count is per row)."""
    import os

    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "; no GPU"
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs, load average {load}{gpu}; torch {torch.__version__}"


# ------------------------------------------------------------------------------------------------ format
def fmt(value: float, err: float | None = None) -> str:
    """``value ± err`` rounded to two significant digits of ``err`` (``value`` alone with 4 if no err)."""
    if value is None or not np.isfinite(value):
        return "—"
    if err is None or not np.isfinite(err) or err <= 0:
        return f"{value:.4g}"
    decimals = 1 - int(math.floor(math.log10(err)))
    if decimals > 8 or abs(value) >= 1e6 or (abs(value) < 1e-3 and value != 0):
        return f"{value:.3g} ± {err:.2g}"
    decimals = max(decimals, 0)
    return f"{value:.{decimals}f} ± {err:.{decimals}f}"


def fmt_ratio(r: float, e: float) -> str:
    return "" if not np.isfinite(r) else f" (×{fmt(r, e)})"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _label(model: str, steps: int) -> str:
    return model if steps == 0 else f"{model} ({steps} step{'s' if steps != 1 else ''})"


def _entries(df: pd.DataFrame) -> list[tuple[str, int]]:
    return list(dict.fromkeys(zip(df["model"], df["steps"], strict=True)))


def class_mean(sub: pd.DataFrame, col: str, err_col: str, partial: bool = False) -> tuple[float, float]:
    """Mean over classes and its error (classes independent); nan if a class lacks the number, unless
    ``partial`` (then the mean of the classes that have it)."""
    v, e = sub[col].to_numpy(float), sub[err_col].to_numpy(float)
    ok = np.isfinite(v)
    if not ok.any() or (not partial and not ok.all()):
        return math.nan, math.nan
    v, e = v[ok], e[ok]
    return float(v.mean()), float(np.sqrt(np.nansum(e**2)) / v.size) if np.isfinite(e).any() else math.nan


# ------------------------------------------------------------------------------------------------ tables
def per_class_table(df: pd.DataFrame, metric: str, classes: Sequence[str], floor_label: str = "floor") -> str:
    """Rows model × steps, columns classes: ``value ± err (×ratio ± err)``; last row the floor."""
    sub = df[df["metric"] == metric]
    rows = []
    for model, steps in _entries(sub):
        r = sub[(sub["model"] == model) & (sub["steps"] == steps)].set_index("class")
        rows.append([_label(model, steps)] + [
            fmt(r.at[c, "value"], r.at[c, "err"]) + fmt_ratio(r.at[c, "ratio"], r.at[c, "ratio_err"])
            if c in r.index else "—" for c in classes])
    first = sub.drop_duplicates("class").set_index("class")
    rows.append([f"*{floor_label}*"] + [fmt(first.at[c, "floor"], first.at[c, "floor_err"]) if c in first.index
                                        else "—" for c in classes])
    return table(["model (steps)", *classes], rows)


def per_model_table(df: pd.DataFrame) -> str:
    """WD and DI per model (means over classes): pixel WD, W1M and DI of generated and real jets."""
    rows = []
    for model, steps in _entries(df):
        r = df[(df["model"] == model) & (df["steps"] == steps)]
        cells = [_label(model, steps)]
        for metric in ("pixel_WD", "W1M"):
            m = r[r["metric"] == metric]
            v, e = class_mean(m, "value", "err")
            f, fe = class_mean(m, "floor", "floor_err")
            cells += [fmt(v, e), fmt(f, fe)]
        d = r[r["metric"] == "DI"]
        cells += [fmt(*class_mean(d, "value", "err")), fmt(*class_mean(d, "floor", "floor_err")),
                  fmt(*class_mean(d, "ratio", "ratio_err"))]
        rows.append(cells)
    return table(["model (steps)", "pixel WD", "pixel WD floor", "W1M", "W1M floor", "DI gen", "DI real",
                  "DI gen/real"], rows)


def summary_table(df: pd.DataFrame, metrics: Sequence[str]) -> str:
    """Ratio to floor, mean over classes, one column per metric; "(k/K)" marks a mean over the k of K classes
    whose floor is not consistent with 0."""
    rows = []
    for model, steps in _entries(df):
        r = df[(df["model"] == model) & (df["steps"] == steps)]
        cells = [_label(model, steps)]
        for m in metrics:
            sub = r[r["metric"] == m]
            k = int(np.isfinite(sub["ratio"].to_numpy(float)).sum())
            cells.append(fmt(*class_mean(sub, "ratio", "ratio_err", partial=True))
                         + (f" ({k}/{len(sub)})" if 0 < k < len(sub) else ""))
        rows.append(cells)
    return table(["model (steps)", *metrics], rows)


def pooled_ci_table(ev, classes: Sequence[str]) -> str:
    """W1M of all S·N pooled jets vs the whole held-out pool, with 95 % percentile-bootstrap intervals."""
    def cell(ci: stats.ConfidenceInterval) -> str:
        return f"{ci.estimate:.4g} [{ci.low:.4g}, {ci.high:.4g}]"

    keys = list(dict.fromkeys((m, s) for (m, s, _) in ev.ci if m != "floor"))
    rows = [[_label(m, s)] + [cell(ev.ci[(m, s, c)]) if (m, s, c) in ev.ci else "—" for c in classes]
            for m, s in keys]
    rows.append(["*floor: reference*"] + [cell(ev.ci[("floor", 0, c)]) if ("floor", 0, c) in ev.ci else "—"
                                          for c in classes])
    return table(["model (steps)", *classes], rows)


def welch_rows(per_seed: pd.DataFrame, classes: Sequence[str], metric: str = "W1M") -> list[list[str]]:
    """Welch t-tests between models over seeds: the metric's per-seed value (mean over draws), averaged over
    classes, for every pair of models at each step count (the pseudo-model ``real`` is paired with all)."""
    ps = per_seed[per_seed["metric"] == metric]
    if ps.empty or ps["seed"].nunique() < 2:
        return []
    by = {k: g for k, g in ps.groupby(["model", "steps"], sort=False)}
    pairs = [(a, b) for a, b in itertools.combinations(by, 2) if a[1] == b[1] or 0 in (a[1], b[1])]
    rows = []
    for a, b in pairs:
        va = by[a].groupby("seed")["value"].mean().to_numpy()
        vb = by[b].groupby("seed")["value"].mean().to_numpy()
        t = stats.welch_t_test(va, vb)
        per_c = []
        for c in classes:
            ca = by[a][by[a]["class"] == c]["value"].to_numpy()
            cb = by[b][by[b]["class"] == c]["value"].to_numpy()
            per_c.append(f"{stats.welch_t_test(ca, cb).pvalue:.2g}" if min(ca.size, cb.size) >= 2 else "—")
        rows.append([_label(*a), _label(*b), fmt(va.mean(), va.std(ddof=1)), fmt(vb.mean(), vb.std(ddof=1)),
                     f"{t.statistic:.2f}", f"{t.extra['df']:.1f}", f"{t.pvalue:.2g}", *per_c])
    return rows


def ks_table(ks: dict, classes: Sequence[str]) -> str:
    def cell(r) -> str:
        return f"{r.pvalue:.2g} ({r.pvalue_adjusted:.2g}){' ✗' if r.reject else ''}"

    rows = [[_label(*k)] + [cell(v[c]) for c in classes] for k, v in ks.items() if k[0] != "floor"]
    if ("floor", 0) in ks:
        rows.append(["*floor: reference*"] + [cell(ks[("floor", 0)][c]) for c in classes])
    return table(["model (steps)", *classes], rows)


def generation_table(gen: pd.DataFrame) -> str:
    if gen.empty:
        return ""
    rows = []
    for (model, steps), g in gen.groupby(["model", "steps"], sort=False):
        jets, secs = int(g["jets"].sum()), float(g["seconds"].sum())
        rows.append([_label(model, steps), jets, f"{secs:.1f}", f"{jets / secs:.3g}" if secs > 0 else "—"])
    return table(["model (steps)", "jets", "seconds", "jets/s"], rows)


# ------------------------------------------------------------------------------------------------- plots
def figures(ev) -> list[tuple[str, object]]:
    """(title, plotly figure): m/p_T real vs generated per class, and ratio to floor against steps."""
    from jetviz import plots

    figs = []
    for c in ev.config.classes:
        real = ev.masses[("held", 0, c)]
        gen = {_label(m, s): v for (m, s, cc), v in ev.masses.items() if cc == c and m != "held"}
        edges = np.linspace(0.0, 1.5 * float(np.quantile(real, 0.995)), 41)  # the real range: a broken model's
        outside = {k: float(np.mean(v > edges[-1])) for k, v in gen.items()}  # far tail must not squash it
        gen = {(f"{k} ({100 * f:.0f} % beyond)" if f >= 0.005 else k): v for (k, v), f in
               zip(gen.items(), outside.values(), strict=True)}
        figs.append((f"m/p_T, {CLASS_NAMES[c]} jets ({c}), real held-out pool vs all generated jets",
                     plots.mass_figure(real, gen, edges=edges, real_label="real (held-out)")))
    df = ev.rows[(ev.rows["steps"] > 0) & np.isfinite(ev.rows["ratio"])]
    for metric in dict.fromkeys(df["metric"]):
        sub = df[df["metric"] == metric]
        pts = []
        for (model, steps), g in sub.groupby(["model", "steps"], sort=False):
            r, e = class_mean(g, "ratio", "ratio_err")
            pts.append({"model": model, "steps": int(steps), "ratio": r, "ratio_err": e})
        figs.append((f"{METRIC_TITLES.get(metric, metric)}: ratio to floor vs steps (mean over classes)",
                     plots.sweep_metric_figure(pts, "ratio", f"{metric} / floor", floor=(1.0, 0.0),
                                               log_y=bool(min(p["ratio"] for p in pts) > 0))))
    return figs


def write_plots(ev, out: Path) -> list[str]:
    """Write ``plots.html`` (self-contained) and, with kaleido, one PNG per figure; returns the PNG names."""
    figs = figures(ev)
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>jetviz evaluation plots</title></head>"
             "<body style='font-family:sans-serif'>"]
    for i, (title, fig) in enumerate(figs):
        parts.append(f"<h3>{title}</h3>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    parts.append("</body></html>")
    (out / "plots.html").write_text("\n".join(parts), encoding="utf-8")
    pngs = []
    if importlib.util.find_spec("kaleido") is not None:
        for i, (_, fig) in enumerate(figs):
            name = f"plot_{i:02d}.png"
            try:
                fig.write_image(out / name)
                pngs.append(name)
            except Exception as e:  # noqa: BLE001 - kaleido needs a browser; HTML is already written
                ev.notes.append(f"PNG export failed ({e}); see plots.html")
                break
    return pngs


# ------------------------------------------------------------------------------------------------ report
DEFINITIONS = """\
* **floor**: the metric between two independent real samples of the same N, pixelised on the same grid, m/p_T
  and point clouds taken from the images as for generated jets: N reference jets vs N held-out jets, averaged
  over the draws (`n_resamples`). **value**: N generated jets vs N held-out jets, averaged over the same number
  of draws (the same draws for every model), then over seeds.
* **err**: standard error of the value (std of the per-seed means / √S; with one seed, the spread s over
  draws × √(1 + 1/R), assuming the generated sample varies as much as a real one). **floor err**: s / √R.
  Both include the finite-pool term s²·f/(1 − f), f = N / pool size (draws from one pool share jets).
* **ratio** = value / floor (×): ≈ 1 means as close to the held-out set as an independent real sample.
  Left blank when the floor is consistent with 0 (unbiased metrics, e.g. KPD): read `excess` in metrics.csv.
* **DI**: its "floor" is the real data's DI at the same N, so the ratio is DI_gen / DI_real.
* **AUC**: one held-out draw per seed (classifier training costs seconds); floor over `auc_resamples` draws.
* **KS**: p-value of the m/p_T KS test, all S·N generated jets vs the whole held-out pool; in brackets the
  Bonferroni-adjusted p (× number of classes); ✗ = rejected at α = 0.05.
* **W1M pooled**: all S·N generated (or reference) jets vs the whole held-out pool, 95 % percentile-bootstrap
  interval over the generated (reference) jets. Near the floor the interval sits above the estimate (replicas
  repeat jets, which widens the W1 distance): compare the model's interval with the reference's."""


def render(ev, pngs: Sequence[str] = ()) -> str:
    cfg, df, classes = ev.config, ev.rows, list(ev.config.classes)
    meta = ev.meta
    lines = ["# jetviz evaluation", ""]
    lines += [f"* **command**: `{meta.get('command', '')}`",
              f"* **date**: {meta.get('date')}; **git**: {meta.get('git')}; **run time**: {meta.get('seconds')} s",
              f"* **hardware**: {meta.get('hardware')}; torch threads {meta.get('torch_threads')}",
              f"* **N** = {cfg.n} jets per sample and per real draw; **seeds** {list(cfg.seeds)}; "
              f"**draws** R = {cfg.n_resamples} per seed and per floor (AUC: 1 per seed, {cfg.auc_resamples} "
              f"for the floor); classes {', '.join(classes)}",
              f"* **metrics**: {', '.join(meta.get('metrics', []))}"]
    lines += ["* **models**:"]
    for m in ev.models:
        extra = ", ".join(f"{k} {v}" for k, v in m.info.items() if v is not None and k != "path")
        lines.append(f"  * `{m.name}` ({m.kind}; steps {', '.join(map(str, m.steps))}; {m.info.get('path')}"
                     f"{'; ' + extra if extra else ''})")
    lines += ["* **real data** (held-out / reference / pseudo-generated jets per class):"]
    for c, p in ev.pools.items():
        lines.append(f"  * {c}: {p['held_out']} / {p['reference']} / {p['pseudo']} — {p['description']}")
    for note in ev.notes:
        lines.append(f"* **note**: {note}")
    ratio_metrics = [m for m in dict.fromkeys(df["metric"])
                     if m != "W1M_pooled" and np.isfinite(df[df["metric"] == m]["ratio"]).any()]
    lines += ["", "## Ratio to floor (mean over classes)", "", summary_table(df, ratio_metrics), ""]
    present = set(df["metric"])
    if "FID" in present:
        lines += ["## FID per class", "", per_class_table(df, "FID", classes), ""]
    if present & {"pixel_WD", "W1M", "DI"}:
        lines += ["## WD and DI per model (mean over classes)", "", per_model_table(df), ""]
    welch = welch_rows(ev.per_seed, classes)
    lines += ["## Welch t-test between models (W1M per seed, mean over classes)", ""]
    if welch:
        lines += [table(["model A", "model B", "W1M A (mean ± sd over seeds)", "W1M B", "t", "df", "p",
                         *[f"p ({c})" for c in classes]], welch), ""]
    else:
        lines += ["Needs at least two seeds (and two models).", ""]
    if ev.ci:
        lines += ["## W1M with 95 % percentile-bootstrap intervals (all seeds pooled vs the whole held-out pool)",
                  "", pooled_ci_table(ev, classes), ""]
    if ev.ks:
        lines += [f"## KS test of m/p_T per class: p (Bonferroni-adjusted over {len(classes)} classes)", "",
                  ks_table(ev.ks, classes), ""]
    lines += ["## Every metric per class", ""]
    for metric in TABLE_METRICS:
        if metric in present and metric != "FID":
            label = "real DI" if metric == "DI" else "floor"
            lines += [f"### {METRIC_TITLES[metric]}", "", per_class_table(df, metric, classes, label), ""]
    gt = generation_table(ev.generation)
    if gt:
        lines += ["## Generation speed during this run", "", gt, ""]
    lines += ["## Plots", "", "Interactive (offline, self-contained): [plots.html](plots.html)", ""]
    lines += [f"![]({p})" for p in pngs]
    if ev.warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"* {msg} (×{k})" for msg, k in ev.warnings.most_common(20)]
    lines += ["", "## Definitions", "", DEFINITIONS]
    lines += [f"* `{name}`: {doc}" for name, doc in meta.get("metric_docs", {}).items()] + [""]
    return "\n".join(lines)


def write_report(ev, out: str | Path, plots: bool = True) -> Path:
    """Write the report folder; returns the path of ``report.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev.rows.to_csv(out / "metrics.csv", index=False)
    ev.per_seed.to_csv(out / "per_seed.csv", index=False)
    ev.generation.to_csv(out / "generation.csv", index=False)
    pngs = write_plots(ev, out) if plots else []
    path = out / "report.md"
    path.write_text(render(ev, pngs), encoding="utf-8")
    return path
