from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import random_clouds

from jetviz import data
from jetviz.config import CLASSES


def _jf(pf):
    n = len(pf)
    return np.stack([np.full(n, 1000.0), np.zeros(n), np.full(n, 50.0), pf[..., 3].sum(1)], 1).astype(np.float32)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("g", "t"):
        pf = random_clouds(40, rng)
        data.write_jetnet(tmp_path / f"{c}.hdf5", pf, _jf(pf))
    return tmp_path


def test_written_file_is_plain_jetnet_hdf5_and_loads(folder):
    # exactly the layout of the real JetNet files: two float32 datasets
    with h5py.File(folder / "g.hdf5") as f:
        assert f["particle_features"].shape == (40, 30, 4)
        assert f["jet_features"].shape == (40, 4)
        assert f["particle_features"].dtype == np.float32
    pf, jf = data.load_jets("g", folder)
    assert pf.shape == (40, 30, 4) and jf.shape == (40, 4)
    assert data.available_classes(folder) == ["g", "t"]


def test_file_written_by_raw_h5py_loads_like_real_jetnet(tmp_path):
    # what jetnet's own files look like: no attributes, no compression
    pf = random_clouds(10, np.random.default_rng(5))
    with h5py.File(tmp_path / "q.hdf5", "w") as f:
        f["particle_features"] = pf
        f["jet_features"] = _jf(pf)
    got, _ = data.load_jets("q", tmp_path)
    np.testing.assert_array_equal(got, pf)


def test_same_arrays_give_byte_identical_files(tmp_path):
    pf = random_clouds(20, np.random.default_rng(1))
    a = data.write_jetnet(tmp_path / "a.hdf5", pf, _jf(pf), attrs={"seed": 3})
    b = data.write_jetnet(tmp_path / "b.hdf5", pf, _jf(pf), attrs={"seed": 3})
    assert a.read_bytes() == b.read_bytes()


def test_splits_are_deterministic_disjoint_and_cover():
    parts = [data.split_indices(1000, s) for s in ("train", "valid", "test")]
    assert [len(p) for p in parts] == [700, 150, 150]
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == 1000
    np.testing.assert_array_equal(data.split_indices(1000, "test"), parts[2])
    with pytest.raises(ValueError, match="split"):
        data.split_indices(10, "training")


def test_max_jets_and_split(folder):
    pf, _ = data.load_jets("t", folder, split="train", max_jets=5)
    assert len(pf) == 5


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p.write_text("not hdf5"), "not a readable HDF5"),
        (lambda p: h5py.File(p, "w").create_dataset("particles", data=np.zeros((2, 30, 4))), "lacks dataset"),
    ],
)
def test_bad_files_are_rejected(tmp_path, make, match):
    path = tmp_path / "g.hdf5"
    make(path)
    with pytest.raises(ValueError, match=match):
        data.load_jets("g", tmp_path)


def test_wrong_shape_and_nan_rejected(tmp_path):
    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        f["particle_features"] = np.zeros((5, 30, 3), np.float32)
        f["jet_features"] = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match=r"\[N, P, 4\]"):
        data.load_jets("g", tmp_path)
    pf = random_clouds(5, np.random.default_rng(0))
    pf[2, 0, 0] = np.nan
    with h5py.File(tmp_path / "w.hdf5", "w") as f:
        f["particle_features"] = pf
        f["jet_features"] = _jf(pf)
    with pytest.raises(ValueError, match="NaN"):
        data.load_jets("w", tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        data.write_jetnet(tmp_path / "x.hdf5", pf, _jf(pf))
    assert not (tmp_path / "x.hdf5").exists()


def test_missing_file_folder_and_unknown_class(tmp_path):
    with pytest.raises(ValueError, match="no z.hdf5"):
        data.load_jets("z", tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        data.load_jets("g", tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown jet class"):
        data.load_jets("b", tmp_path)


@pytest.mark.skipif(not (data.BUNDLED_DIR / "g.hdf5").exists(), reason="bundled sample not generated yet")
@pytest.mark.parametrize("c", CLASSES)
def test_bundled_sample_loads(c):
    pf, jf = data.load_jets(c)
    assert pf.shape == (10_000, 30, 4)
    assert np.all((jf[:, 0] > 800) & (jf[:, 0] < 1600))
    assert np.all(np.abs(pf[..., 1]) <= np.pi)
