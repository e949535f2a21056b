"""`evaluate` and `bench` end to end on a tiny data folder and a tiny checkpoint; real-vs-real calibration."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from helpers_tiny import TINY_UNET, tiny_dataset

from jetviz import classifier, cli
from jetviz.bench import BENCH_COLUMNS
from jetviz.config import CLASSES, DEFAULT_GRID
from jetviz.data import load_jets
from jetviz.evaluate import EvalConfig, load_pools, run_evaluation
from jetviz.images import to_images
from jetviz.report import fmt
from jetviz.scoring import CSV_COLUMNS, combine, floor_stats, ratio_and_excess
from jetviz.training import TrainConfig, train

REQUIRED = ["model", "steps", "class", "metric", "value", "err", "floor", "floor_err", "ratio"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ev")
    data = tiny_dataset(root / "data", n=600)  # 600 jets per class: three disjoint parts of 200
    cfg = TrainConfig(kind="consistency-ct", data=str(data), unet=TINY_UNET, steps=2, batch_size=8, seed=1)
    train(cfg, root / "run", export_to=root / "ck" / "tiny-ct")
    ims, ys = [], []
    for k, c in enumerate(CLASSES):
        pf, _ = load_jets(c, data, max_jets=60)
        ims.append(to_images(pf))
        ys.append(np.full(len(pf), k))
    model, _ = classifier.train_classifier(np.concatenate(ims), np.concatenate(ys), epochs=1, seed=0)
    classifier.save_classifier(model, root / "ck" / "classifier", {"grid": DEFAULT_GRID.to_dict()})
    return SimpleNamespace(root=root, data=data, ckpt=root / "ck" / "tiny-ct", clf=root / "ck" / "classifier")


def test_evaluate_end_to_end_writes_the_report(tiny, tmp_path):
    out = tmp_path / "rep"
    argv = ["evaluate", "--checkpoints", str(tiny.ckpt), "--real", str(tiny.data), "--real-vs-real",
            "--classes", "g,t", "--steps", "1,2", "--n", "60", "--seeds", "0,1", "--n-resamples", "2",
            "--auc-resamples", "1", "--n-boot", "20", "--classifier", str(tiny.clf), "--out", str(out)]
    assert cli.main(argv) == 0
    df = pd.read_csv(out / "metrics.csv")
    assert list(df.columns) == CSV_COLUMNS and list(df.columns[:9]) == REQUIRED
    assert set(df["model"]) == {"tiny-ct", "real"}
    assert set(df[df["model"] == "tiny-ct"]["steps"]) == {1, 2} and set(df[df["model"] == "real"]["steps"]) == {0}
    expected = {"W1M", "pixel_WD", "pixel_FD", "FID", "KS_D", "DI", "AUC", "KS_p", "KS_p_bonferroni", "W1M_pooled"}
    assert set(df["metric"]) == expected
    assert not df.duplicated(["model", "steps", "class", "metric"]).any()
    assert len(df) == 3 * 2 * len(expected)  # (2 steps + pseudo-model) × 2 classes × metrics
    d = df[np.isfinite(df["ratio"])]
    np.testing.assert_allclose(d["ratio"], d["value"] / d["floor"])
    # an untrained model is far from real data: a failable control of the real-vs-real test below
    w = df[(df["model"] == "tiny-ct") & (df["metric"] == "W1M")]
    assert (w["ratio"] > 5).all()
    ks = df[df["metric"] == "KS_p_bonferroni"]
    assert ((ks["value"] >= 0) & (ks["value"] <= 1)).all()
    text = (out / "report.md").read_text()
    for part in ("python -m jetviz evaluate --checkpoints", "--n-resamples 2", "**N** = 60", "seeds** [0, 1]", "## FID per class",
                 "## WD and DI per model", "## Welch t-test", "percentile-bootstrap", "Bonferroni",
                 "*floor*", "## Definitions", "tiny-ct (2 steps)"):
        assert part in text, part
    assert (out / "plots.html").stat().st_size > 10_000
    assert (out / "per_seed.csv").is_file() and (out / "generation.csv").is_file()


def test_real_vs_real_ratios_are_one_within_their_errors(tmp_path):
    torch.set_num_threads(1)
    data = tiny_dataset(tmp_path / "big", n=3000, seed=3)  # thirds of 1000 jets; N = 150 is 15 % of a pool
    cfg = EvalConfig(real=str(data), real_vs_real=True, classes=("g", "t"), n=150, seeds=(0, 1, 2, 3),
                     n_resamples=20, metrics=("W1M", "pixel_WD", "KS_D", "DI"), classifier=None)
    ev = run_evaluation(cfg, log=lambda msg: None)
    df = ev.rows
    assert set(df["model"]) == {"real"}
    ratios = df[df["metric"] != "W1M_pooled"]
    assert len(ratios) == 2 * 4 and np.isfinite(ratios["ratio"]).all()
    assert (ratios["ratio_err"] < 0.35).all(), ratios  # the bound below must be able to fail
    pulls = (ratios["ratio"] - 1) / ratios["ratio_err"]
    assert (pulls.abs() < 3).all(), ratios[["class", "metric", "ratio", "ratio_err"]]
    pooled = df[df["metric"] == "W1M_pooled"]
    assert (pooled["excess"].abs() < 3 * pooled["excess_err"]).all()


def test_pools_are_disjoint_and_sized(tiny):
    cfg = EvalConfig(real=str(tiny.data), real_vs_real=True, classes=("q",), n=50, seeds=(0,))
    pools, info = load_pools(cfg, DEFAULT_GRID, None)
    p = pools["q"]
    assert info["q"]["held_out"] == info["q"]["reference"] == info["q"]["pseudo"] == 200
    flat = [x.images.reshape(len(x), -1) for x in (p.held, p.reference, p.pseudo)]
    keys = [{row.tobytes() for row in f} for f in flat]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


def test_errors_are_clear(tiny, capsys):
    with pytest.raises(ValueError, match="unknown checkpoint 'no-such-model'"):
        run_evaluation(EvalConfig(checkpoints=("no-such-model",), real=str(tiny.data), classes=("g",), n=10,
                                  seeds=(0,)), log=lambda m: None)
    with pytest.raises(ValueError, match="--n 500 exceeds the 200 g jets of the held-out pool"):
        run_evaluation(EvalConfig(real=str(tiny.data), real_vs_real=True, classes=("g",), n=500, seeds=(0,)),
                       log=lambda m: None)
    with pytest.raises(ValueError, match="same data as --real"):
        run_evaluation(EvalConfig(real=str(tiny.data), reference=str(tiny.data), real_vs_real=True,
                                  classes=("g",), n=10, seeds=(0,)), log=lambda m: None)
    with pytest.raises(ValueError, match="n-resamples"):
        EvalConfig(n_resamples=1)
    with pytest.raises(ValueError, match="unknown metric"):
        EvalConfig(metrics=("W2M",))
    assert cli.main(["evaluate", "--real", str(tiny.data), "--real-vs-real", "--n", "500", "--classifier", "none",
                     "--out", str(tiny.root / "x")]) == 2
    assert "error: --n 500 exceeds" in capsys.readouterr().err


def test_bench_writes_positive_rates(tiny, tmp_path):
    out = tmp_path / "bench.csv"
    argv = ["bench", "--checkpoints", str(tiny.ckpt), "--steps", "1,2", "--batch-sizes", "4", "--classes", "t",
            "--sim-jets", "20", "--min-seconds", "0", "--devices", "cpu", "--out", str(out)]
    assert cli.main(argv) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == BENCH_COLUMNS
    assert list(df["what"]) == ["pythia", "model", "model"]
    assert (df["jets_per_s"] > 0).all() and (df["peak_mem_mb"] > 0).all() and (df["jets"] > 0).all()
    m = df[df["what"] == "model"]
    assert list(m["steps"]) == [1, 2] and (m["threads"] == 1).all() and (m["speedup_vs_pythia"] > 0).all()
    assert out.with_suffix(".md").read_text().count("| model | tiny-ct |") == 2


def test_bench_refuses_an_unknown_checkpoint():
    from jetviz.bench import run_bench

    with pytest.raises(ValueError, match="unknown checkpoint 'nope'"):
        run_bench(["nope"], sim_jets=0)


# ------------------------------------------------------------------------------------ statistics helpers
def test_combine_and_floor_errors():
    value, err, spread = combine([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0])])
    assert value == 3.0 and err == pytest.approx(1.0)  # std of the seed means (2, 4) / √2
    assert spread == pytest.approx(np.std([1, 2, 3, 3, 4, 5], ddof=1))
    _, err_f, _ = combine([np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0])], held_frac=0.5)
    assert err_f == pytest.approx(math.sqrt(1.0 + 1.0 * 1.0))  # + s_w² f/(1 − f), s_w = 1, f = ½
    _, err_one, _ = combine([np.array([1.0, 2.0, 3.0])])
    assert err_one == pytest.approx(math.sqrt(1 + 1 / 3))
    assert combine([np.array([0.7])], fallback_err=0.1)[1] == pytest.approx(0.1)
    floor, f_err, f_spread = floor_stats(np.array([1.0, 2.0, 3.0, 4.0]), 0.0, 0.0)
    assert floor == 2.5 and f_err == pytest.approx(f_spread / 2)


def test_ratio_is_left_empty_for_a_floor_consistent_with_zero():
    r, r_err, ex, ex_err = ratio_and_excess(2.0, 0.1, 1.0, 0.1)
    assert r == 2.0 and r_err == pytest.approx(2 * math.hypot(0.05, 0.1)) and ex == 1.0
    r, _, ex, ex_err = ratio_and_excess(0.3, 0.1, 0.01, 0.02)
    assert math.isnan(r) and ex == pytest.approx(0.29) and ex_err == pytest.approx(math.hypot(0.1, 0.02))


def test_fmt_rounds_to_the_error():
    assert fmt(0.012345, 0.00056) == "0.01235 ± 0.00056"
    assert fmt(1.234, 0.05) == "1.234 ± 0.050"
    assert fmt(float("nan"), 1.0) == "—"
