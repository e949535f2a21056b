"""The command line end to end on tiny inputs: train → sample, export-only, classifier, error exits."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from helpers_tiny import tiny_dataset

from jetviz import cli
from jetviz.classifier import embed, load_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = tiny_dataset(root / "data")
    argv = ["train", "--kind", "consistency-ct", "--run", str(root / "run"), "--data", str(data), "--split", "all",
            "--steps", "3", "--batch-size", "8", "--channels", "8,16,16", "--checkpoint-every", "2",
            "--export", str(root / "ckpt")]
    assert cli.main(argv) == 0
    return root, data, argv


def test_train_then_sample_csv_and_hdf5(trained, capsys):
    root, _, argv = trained
    card = json.loads((root / "ckpt" / "card.json").read_text())
    assert card["training"]["steps"] == 3 and card["kind"] == "consistency-ct"
    assert card["command"] == "python -m jetviz " + " ".join(argv)
    for ext in ("csv", "hdf5"):
        out = root / f"t.{ext}"
        assert cli.main(["sample", "--checkpoint", str(root / "ckpt"), "--jet-type", "t", "--n", "7",
                         "--steps", "2", "--seed", "1", "--out", str(out)]) == 0
    df = pd.read_csv(root / "t.csv")
    assert set(df.jet_id) <= set(range(7)) and (df.pt_rel > 0).all() and (df.steps == 2).all()
    with h5py.File(root / "t.hdf5") as f:
        assert f["particle_features"].shape == (7, 30, 4) and f["images"].shape == (7, 25, 25)
        assert list(f.attrs["eta_range"]) == [-0.8, 0.8]
        # the HDF5 particles are the CSV's pixels (30 hardest per jet)
        np.testing.assert_allclose(f["images"][...].sum(), df.pt_rel.sum(), rtol=1e-5)


def test_export_only_keeps_the_training_command(trained, tmp_path):
    root, _, argv = trained
    assert cli.main(["train", "--kind", "consistency-ct", "--run", str(root / "run"), "--resume", "--export-only",
                     "--export", str(tmp_path / "again")]) == 0
    a = json.loads((root / "ckpt" / "card.json").read_text())
    b = json.loads((tmp_path / "again" / "card.json").read_text())
    assert b["command"] == a["command"] and b["training"]["steps"] == 3
    assert b["files"] == a["files"]  # same weights, byte for byte


@pytest.mark.parametrize("argv,msg", [
    (["sample", "--checkpoint", "/nonexistent/ckpt", "--jet-type", "t", "--n", "5", "--out", "x.csv"], "no checkpoint"),
    (["sample", "--checkpoint", "CKPT", "--jet-type", "t", "--n", "5", "--steps", "0", "--out", "x.csv"], "steps"),
    (["sample", "--checkpoint", "CKPT", "--jet-type", "t", "--n", "5", "--shard", "3/2", "--out", "x.csv"], "shard"),
    (["sample", "--checkpoint", "CKPT", "--jet-type", "t", "--n", "5", "--out", "x.txt"], "must end"),
    (["train", "--kind", "consistency-cd", "--run", "RUN2"], "teacher"),
    (["train", "--kind", "ve-sde", "--run", "RUN", "--steps", "5"], "--resume"),
    (["train", "--kind", "ve-sde", "--run", "RUN2", "--export-only"], "--resume"),
])
def test_bad_input_exits_2_with_a_message(trained, capsys, tmp_path, monkeypatch, argv, msg):
    root, _, _ = trained
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("CKPT", str(root / "ckpt")).replace("RUN2", str(tmp_path / "r2")).replace("RUN", str(root / "run"))
            for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and msg in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.txt").exists()


def test_classifier_train_save_load_round_trip(trained, tmp_path):
    _, data, _ = trained
    out = tmp_path / "clf"
    assert cli.main(["train-classifier", "--data", str(data), "--split", "all", "--epochs", "1", "--out", str(out)]) == 0
    model, card = load_classifier(out)
    assert card["kind"] == "classifier" and card["feature_dim"] == 64
    feats = embed(model, np.zeros((3, 25, 25), np.float32))
    assert feats.shape == (3, 64)
    model2, _ = load_classifier(out)
    np.testing.assert_array_equal(feats, embed(model2, np.zeros((3, 25, 25), np.float32)))
