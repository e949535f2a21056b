"""Tests for jetviz.simulate: determinism (seed, workers, shards), physics sanity, file format, error paths.

Blocks are shrunk to 10 jets so a 30-jet request spans three independently seeded blocks and the shard and worker
logic is exercised on a tiny sample (each block is a fresh Pythia: ≈ 0.5 s init + ≈ 0.1 s of events).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from jetviz import simulate
from jetviz.data import read_jetnet, write_jetnet

N_JETS = 30
SEED = 11


@pytest.fixture(scope="module", autouse=True)
def small_blocks():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(simulate, "BLOCK_SIZE", 10)
        yield


@pytest.fixture(scope="module")
def w_dir(tmp_path_factory):
    """An unsharded 30-jet W run written by simulate_to_dir (3 blocks of 10)."""
    out = tmp_path_factory.mktemp("w_full")
    (path,) = simulate.simulate_to_dir(out, "w", N_JETS, SEED)
    assert path == out / "w.hdf5"
    return out


@pytest.fixture(scope="module")
def w_arrays(w_dir):
    pf, jf, attrs = read_jetnet(w_dir / "w.hdf5")
    return pf, jf, attrs


# ------------------------------------------------------------------------------------------- determinism


def test_same_seed_same_arrays_and_other_seed_differs(w_arrays):
    pf, jf, _ = w_arrays
    again = simulate.simulate_jets("w", N_JETS, SEED)
    np.testing.assert_array_equal(again.particle_features, pf)
    np.testing.assert_array_equal(again.jet_features, jf)
    other = simulate.simulate_jets("w", 10, SEED + 1)
    assert not np.array_equal(other.jet_features, jf[:10])


def test_fewer_jets_give_a_prefix(w_arrays):
    pf, jf, _ = w_arrays
    few = simulate.simulate_jets("w", 4, SEED)  # first 4 jets of block 0
    np.testing.assert_array_equal(few.particle_features, pf[:4])
    np.testing.assert_array_equal(few.jet_features, jf[:4])


@pytest.mark.slow
def test_workers_do_not_change_the_result(w_arrays):
    pf, jf, _ = w_arrays
    seen = []
    res = simulate.simulate_jets("w", N_JETS, SEED, workers=2, progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_array_equal(res.particle_features, pf)
    np.testing.assert_array_equal(res.jet_features, jf)
    assert res.info["workers"] == 2
    assert seen[-1] == (N_JETS, N_JETS)


def test_shards_merge_to_the_unsharded_file(w_dir, tmp_path):
    (s0,) = simulate.simulate_to_dir(tmp_path / "a", ["w"], N_JETS, SEED, shard=(0, 2))
    (s1,) = simulate.simulate_to_dir(tmp_path / "b", ["w"], N_JETS, SEED, shard=(1, 2))
    assert s0.name == "w.shard-0-of-2.hdf5"
    assert read_jetnet(s0)[2]["blocks"] == [0, 2] and read_jetnet(s1)[2]["blocks"] == [1]
    merged = simulate.merge_shards([s1, s0], tmp_path / "merged")  # order of inputs does not matter
    assert merged == tmp_path / "merged" / "w.hdf5"
    assert merged.read_bytes() == (w_dir / "w.hdf5").read_bytes()
    assert json.loads(merged.with_suffix(".json").read_text())["complete"] is True


def test_partial_merge_warns_and_duplicates_fail(tmp_path):
    (s0,) = simulate.simulate_to_dir(tmp_path, "w", 15, SEED, shard=(0, 2))
    with pytest.warns(RuntimeWarning, match="incomplete"):
        out = simulate.merge_shards([s0], tmp_path / "partial.hdf5")
    assert read_jetnet(out)[2]["blocks"] == [0]
    with pytest.raises(ValueError, match="appears twice"):
        simulate.merge_shards([s0, s0], tmp_path / "dup.hdf5")


def test_merge_refuses_mixed_requests_and_foreign_files(w_dir, tmp_path):
    (other,) = simulate.simulate_to_dir(tmp_path, "w", 15, SEED, shard=(1, 2))
    with pytest.raises(ValueError, match="different requests"):
        simulate.merge_shards([w_dir / "w.hdf5", other], tmp_path / "x.hdf5")
    foreign = write_jetnet(tmp_path / "foreign.hdf5", np.zeros((1, 30, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="not written by jetviz simulate"):
        simulate.merge_shards([foreign], tmp_path / "y.hdf5")
    with pytest.raises(ValueError, match="at least one"):
        simulate.merge_shards([], tmp_path / "z.hdf5")


def test_pythia_seeds_are_valid_and_distinct():
    seeds = {simulate.pythia_seed(s, c, b) for s in (0, 1) for c in "gqtwz" for b in range(20)}
    assert len(seeds) == 2 * 5 * 20
    assert all(1 <= s <= 900_000_000 for s in seeds)
    assert simulate.pythia_seed(3, "t", 7) == simulate.pythia_seed(3, "t", 7)


def test_block_sizes():
    assert simulate.block_sizes(25, 10) == [10, 10, 5]
    assert simulate.block_sizes(20, 10) == [10, 10]
    assert simulate.block_sizes(3, 10) == [3]


# ---------------------------------------------------------------------------------------- physics sanity


def test_jet_cuts_and_features(w_arrays):
    pf, jf, attrs = w_arrays
    assert pf.shape == (N_JETS, 30, 4) and jf.shape == (N_JETS, 4)
    assert pf.dtype == np.float32 and jf.dtype == np.float32
    pt, eta, mass, n = jf.T
    assert np.all((pt > 800) & (pt < 1600))
    assert np.all(np.abs(eta) < 2.5)
    assert np.all(mass > 0)
    assert 60 < np.median(mass) < 130  # W peak plus underlying event, on a tiny sample
    assert attrs["events"] > 0 and attrs["jet_type"] == "w"


def test_particle_features(w_arrays):
    pf, jf, _ = w_arrays
    eta_rel, phi_rel, pt_rel, mask = np.moveaxis(pf, -1, 0)
    real = mask == 1
    assert set(np.unique(mask)) <= {0.0, 1.0}
    # mask is a prefix of ones, its count is n_particles, and padding is all zero
    assert np.all(np.diff(mask, axis=1) <= 0)
    np.testing.assert_array_equal(real.sum(1), jf[:, 3])
    assert np.all(pf[~real] == 0)
    assert np.all(pt_rel[real] > 0)
    # p_T-ordered
    assert np.all(np.diff(pt_rel, axis=1) <= 0)
    # φ_rel in (−π, π]; constituents lie near the axis
    assert np.all((phi_rel > -np.pi) & (phi_rel <= np.pi))
    assert np.all(np.hypot(eta_rel, phi_rel)[real] < 1.2)
    # Σ p_T,rel of the 30 hardest: at most the scalar-over-vector p_T excess (< 1 %), typically > 0.8
    s = pt_rel.sum(1)
    assert np.all(s <= 1.01) and np.all(s > 0.5)
    assert np.median(s) > 0.85


def test_wrap_phi_analytic():
    x = np.array([0.0, np.pi, -np.pi, 1.5 * np.pi, -1.5 * np.pi, 4 * np.pi + 0.1])
    np.testing.assert_allclose(simulate.wrap_phi(x), [0.0, np.pi, np.pi, -0.5 * np.pi, 0.5 * np.pi, 0.1], atol=1e-12)


def test_sidecar(w_dir):
    info = json.loads((w_dir / "w.json").read_text())
    assert info["jets"] == N_JETS and info["seed"] == SEED and info["blocks"] == [0, 1, 2]
    assert set(info["versions"]) == {"pythia8mc", "fastjet", "jetviz"}
    assert "SpaceShower:pTmaxMatch = 1" in info["settings"]["pythia"]
    assert info["jets_per_s"] > 0 and info["events"] == sum(info["block_events"])


def test_progress_reaches_total():
    seen = []
    simulate.simulate_jets("z", 5, SEED, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5)
    assert all(t == 5 for _, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)


# ------------------------------------------------------------------------------------------- error paths


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jet_type": "h"}, "unknown jet class 'h'"),
        ({"n_jets": 0}, "n_jets must be an integer >= 1, got 0"),
        ({"n_jets": 2.5}, "n_jets"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"workers": 0}, "workers must be"),
        ({"shard": (3, 2)}, "shard 3/2 is invalid"),
    ],
)
def test_bad_requests(kwargs, match):
    args = {"jet_type": "w", "n_jets": 5, "seed": 0} | kwargs
    shard = args.pop("shard", (0, 1))
    workers = args.pop("workers", 1)
    with pytest.raises(ValueError, match=match):
        simulate.simulate_jets(**args, shard=shard, workers=workers)


@pytest.mark.parametrize("text", ["3/2", "1", "a/b", "-1/2", "0/0", "1/2/3"])
def test_bad_shard_strings(text):
    with pytest.raises(ValueError, match="shard"):
        simulate.parse_shard(text)
    assert simulate.parse_shard("1/4") == (1, 4)


def test_empty_jet_types(tmp_path):
    with pytest.raises(ValueError, match="jet_types is empty"):
        simulate.simulate_to_dir(tmp_path, [], 5, 0)


# ---------------------------------------------------------------------------------------------------- CLI


def _parser():
    parser = argparse.ArgumentParser()
    simulate.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_simulate_and_merge(tmp_path, capsys):
    parser = _parser()
    for i in (0, 1):
        args = parser.parse_args(["simulate", "--jet-type", "z", "--n-jets", "12", "--seed", "2",
                                  "--out", str(tmp_path / "shards"), "--shard", f"{i}/2"])
        assert args.func(args) == 0
    args = parser.parse_args(["merge", str(tmp_path / "shards"), "--out", str(tmp_path / "merged")])
    assert args.func(args) == 0
    pf, jf, attrs = read_jetnet(tmp_path / "merged" / "z.hdf5")
    assert len(jf) == 12 and attrs["blocks"] == [0, 1]
    assert "z.hdf5" in capsys.readouterr().out


def test_cli_bad_shard(tmp_path):
    args = _parser().parse_args(["simulate", "--jet-type", "w", "--n-jets", "5", "--out", str(tmp_path),
                                 "--shard", "3/2"])
    with pytest.raises(ValueError, match="shard 3/2"):
        args.func(args)
