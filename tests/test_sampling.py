from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers_tiny import TINY_UNET, tiny_dataset

import jetviz
from jetviz import checkpoints
from jetviz.export import merge_samples, read_samples, samples_table, write_samples
from jetviz.sampling import CHUNK, load_generator
from jetviz.training import TrainConfig, train


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    tiny = tiny_dataset(root / "data")
    out = {}
    for kind in ("ve-sde", "consistency-ct"):
        cfg = TrainConfig(kind=kind, data=str(tiny), unet=TINY_UNET, steps=2, batch_size=8, seed=1)
        train(cfg, root / kind)
        out[kind] = root / kind / "export"
    return out


def test_python_api_docstring_example(ckpts):
    import doctest

    from jetviz.sampling import Generator

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for t in finder.find(Generator, "Generator", globs={"load_generator": load_generator, "path": ckpts["consistency-ct"]}):
        runner.run(t)
    assert runner.failures == 0 and runner.tries >= 3
    gen = jetviz.load_generator(ckpts["consistency-ct"])
    images = gen.sample("t", n=10, steps=2, seed=0)
    assert images.shape == (10, 25, 25) and images.dtype == np.float32
    assert images.min() >= 0


@pytest.mark.parametrize("kind", ["ve-sde", "consistency-ct"])
def test_same_seed_same_jets(ckpts, kind):
    gen = load_generator(ckpts[kind])
    a = gen.sample_model_space("w", n=6, steps=2, seed=3)
    b = gen.sample_model_space("w", n=6, steps=2, seed=3)
    np.testing.assert_array_equal(a, b)
    c = gen.sample_model_space("w", n=6, steps=2, seed=4)
    assert not np.allclose(a, c)


def test_complete_chunks_do_not_depend_on_the_request_size(ckpts):
    gen = load_generator(ckpts["consistency-ct"])
    a = gen.sample_model_space("g", n=CHUNK, steps=1, seed=3)
    d = gen.sample_model_space("g", n=CHUNK + 3, steps=1, seed=3)
    np.testing.assert_array_equal(a, d[:CHUNK])


def test_golden_sampling_loop(tmp_path):
    """A full sampling loop on a fixed tiny untrained model: its output sum is pinned."""
    from jetviz.models import ConsistencyFunction, EDMDenoiser, JetUNet
    from jetviz.sampling import chunk_generator, sample_cm, sample_ve
    from jetviz.schedulers import ConsistencyScheduler, VESDEScheduler

    torch.manual_seed(0)
    net = JetUNet(TINY_UNET).eval()
    labels = torch.tensor([0, 2, 4])
    x_cm = sample_cm(ConsistencyFunction(net), ConsistencyScheduler(), labels, 3, chunk_generator(0, 0, 0))
    x_ve = sample_ve(EDMDenoiser(net), VESDEScheduler(), labels, 4, chunk_generator(0, 0, 0))
    assert x_cm.shape == x_ve.shape == (3, 1, 25, 25)
    assert float(x_cm.double().sum()) == pytest.approx(GOLDEN_CM, rel=1e-4)
    assert float(x_ve.double().sum()) == pytest.approx(GOLDEN_VE, rel=1e-4)


GOLDEN_CM = 43.94695773022249  # recorded with torch 2.13.0 CPU, diffusers 0.42.1, one thread
GOLDEN_VE = 52.57635912759724  # ancestral predictor


@pytest.mark.parametrize("fmt", [".csv", ".hdf5", ".npz"])
def test_outputs_round_trip_and_shards_merge_to_the_full_sample(ckpts, tmp_path, fmt):
    gen = load_generator(ckpts["consistency-ct"])
    n = CHUNK + 7  # two chunks
    meta = dict(jet_type="q", model="cm", kind=gen.kind, steps=1, seed=0, n_requested=n, chunk=CHUNK)
    full = gen.sample("q", n, 1, seed=0)
    write_samples(tmp_path / f"full{fmt}", full, gen.grid, {**meta, "shard": [0, 1]})
    im, ids, m = read_samples(tmp_path / f"full{fmt}", gen.grid)
    np.testing.assert_allclose(im, full, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ids, np.arange(n))
    parts = []
    for i in range(2):
        part = gen.sample("q", n, 1, seed=0, shard=(i, 2))
        p = write_samples(tmp_path / f"s{i}{fmt}", part, gen.grid, {**meta, "shard": [i, 2]})
        parts.append(p)
    merged = merge_samples(parts[::-1], tmp_path / f"merged{fmt}", gen.grid)
    im2, ids2, _ = read_samples(merged, gen.grid)
    np.testing.assert_array_equal(ids2, np.arange(n))
    np.testing.assert_allclose(im2, full, rtol=1e-6, atol=1e-7)


def test_csv_is_tidy():
    g = jetviz.sampling.ImageGrid()
    im = np.zeros((2, 25, 25), np.float32)
    im[0, 12, 12] = 0.7
    im[0, 0, 24] = 0.3
    im[1, 5, 6] = 1.0
    df = samples_table(im, g, dict(jet_type="t", model="m", steps=2, seed=9))
    assert list(df.columns) == ["jet_type", "model", "steps", "seed", "jet_id", "eta_rel", "phi_rel", "pt_rel"]
    assert len(df) == 3
    assert df.groupby("jet_id").pt_rel.sum().tolist() == pytest.approx([1.0, 1.0])
    assert df.iloc[0].eta_rel == pytest.approx(g.eta_centres[0]) and df.iloc[0].phi_rel == pytest.approx(g.phi_centres[24])


def test_bad_requests(ckpts, tmp_path):
    gen = load_generator(ckpts["consistency-ct"])
    with pytest.raises(ValueError, match="steps"):
        gen.sample("t", 5, steps=0)
    with pytest.raises(ValueError, match="positive"):
        gen.sample("t", 0)
    with pytest.raises(ValueError, match="unknown jet class"):
        gen.sample("x", 5)
    with pytest.raises(ValueError, match="must end"):
        write_samples(tmp_path / "a.txt", np.zeros((1, 25, 25)), gen.grid, {})


def test_tampered_or_unsafe_checkpoint_is_refused(ckpts, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(ckpts["consistency-ct"], bad)
    w = bad / "unet" / "diffusion_pytorch_model.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-5] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_generator(bad)
    shutil.rmtree(bad)
    shutil.copytree(ckpts["consistency-ct"], bad)
    (bad / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="pickle"):
        load_generator(bad)
    with pytest.raises(ValueError, match="no checkpoint folder"):
        load_generator(tmp_path / "missing")
    card = json.loads((ckpts["consistency-ct"] / "card.json").read_text())
    assert card["kind"] == "consistency-ct" and card["files"]
    assert all(len(v) == 64 for v in card["files"].values())
    shutil.rmtree(bad)
    shutil.copytree(ckpts["consistency-ct"], bad)
    (bad / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing"):
        checkpoints.load_card(bad)
