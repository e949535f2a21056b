"""Read and write JetNet-format HDF5 files; the bundled sample; deterministic splits; validation.

A JetNet-format file ``<cls>.hdf5`` holds

* ``particle_features`` float32 ``[N, P, 4]`` = (η_rel, φ_rel, p_T,rel, mask), p_T-ordered, zero-padded
  (P = 30 for JetNet's ``g.hdf5 … z.hdf5``, 150 for ``t150.hdf5``);
* ``jet_features`` float32 ``[N, 4]`` = (p_T [GeV], η, mass [GeV], n_particles).

jetviz files may add an ``images`` dataset ``[N, size, size]`` and attributes (``eta_range``, ``phi_range``,
provenance). Files are read with h5py only (no network); :func:`download_jetnet` is the one function that goes
online, and only when a user asks.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from jetviz.config import CLASSES, DATA_DIR, check_class

BUNDLED_DIR = DATA_DIR / "sample"
SPLITS = ("train", "valid", "test", "all")
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # JetNet's fractions (train, valid, test)
SPLIT_SEED = 42


def _atomic_h5(path: Path):
    """A temporary HDF5 path in the target folder; the caller renames it over ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; data files are meant to be shared
    return Path(tmp)


def write_jetnet(
    path: str | os.PathLike,
    particle_features: np.ndarray,
    jet_features: np.ndarray,
    attrs: dict | None = None,
    images: np.ndarray | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Write a JetNet-format HDF5 file atomically (temp file + rename); returns the path.

    Datasets are written without timestamps, so the same arrays and attributes give byte-identical files.
    """
    path = Path(path)
    pf = np.asarray(particle_features, dtype=np.float32)
    jf = np.asarray(jet_features, dtype=np.float32)
    validate_arrays(pf, jf, source=str(path))
    tmp = _atomic_h5(path)
    try:
        kw = dict(compression=compression, shuffle=compression is not None, track_times=False)
        with h5py.File(tmp, "w", track_order=True) as f:
            f.create_dataset("particle_features", data=pf, **kw)
            f.create_dataset("jet_features", data=jf, **kw)
            if images is not None:
                im = np.asarray(images, dtype=np.float32)
                if im.ndim != 3 or len(im) != len(pf):
                    raise ValueError(f"images must be [N, size, size] with N={len(pf)}, got {im.shape}")
                f.create_dataset("images", data=im, **kw)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def validate_arrays(pf: np.ndarray, jf: np.ndarray, source: str = "input") -> None:
    """Raise ``ValueError`` naming ``source`` unless (particle, jet) features have JetNet shapes and are finite."""
    if pf.ndim != 3 or pf.shape[-1] != 4:
        raise ValueError(
            f"{source}: particle_features must have shape [N, P, 4] (eta_rel, phi_rel, pt_rel, mask), got {pf.shape}"
        )
    if jf.ndim != 2 or jf.shape[-1] != 4:
        raise ValueError(
            f"{source}: jet_features must have shape [N, 4] (pt, eta, mass, num_particles), got {jf.shape}"
        )
    if len(pf) != len(jf):
        raise ValueError(f"{source}: {len(pf)} particle rows but {len(jf)} jet rows")
    for name, a in (("particle_features", pf), ("jet_features", jf)):
        bad = ~np.isfinite(a)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{source}: {name} has {int(bad.sum())} NaN/inf values (first in jet {row})")


def read_jetnet(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a JetNet-format file → (particle_features ``[N, P, 4]``, jet_features ``[N, 4]``, attrs).

    Raises ``ValueError`` with the reason for a missing file, a non-HDF5 file, missing datasets, wrong shapes or
    non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file ({e})") from None
    with f:
        missing = [k for k in ("particle_features", "jet_features") if k not in f]
        if missing:
            raise ValueError(
                f"{path} lacks dataset(s) {missing}; found {sorted(f.keys())}. "
                "A JetNet-format file needs 'particle_features' and 'jet_features'."
            )
        pf = np.asarray(f["particle_features"][...], dtype=np.float32)
        jf = np.asarray(f["jet_features"][...], dtype=np.float32)
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    validate_arrays(pf, jf, source=str(path))
    return pf, jf, attrs


def resolve_source(source: str | os.PathLike | None) -> Path:
    """``None``/``"bundled"`` → the bundled sample folder; anything else is a folder of ``<cls>.hdf5`` files."""
    if source is None or str(source) == "bundled":
        return BUNDLED_DIR
    p = Path(source).expanduser()
    if not p.is_dir():
        raise ValueError(f"data folder {p} does not exist (expected a folder holding g.hdf5 … z.hdf5)")
    return p


def class_file(jet_type: str, source: str | os.PathLike | None = None) -> Path:
    """Path of the file holding ``jet_type`` jets in ``source`` (raises ``ValueError`` if absent)."""
    check_class(jet_type)
    folder = resolve_source(source)
    path = folder / f"{jet_type}.hdf5"
    if not path.is_file():
        have = sorted(p.name for p in folder.glob("*.hdf5")) if folder.is_dir() else []
        raise ValueError(f"no {jet_type}.hdf5 in {folder} (found: {', '.join(have) or 'no .hdf5 files'})")
    return path


def available_classes(source: str | os.PathLike | None = None) -> list[str]:
    """Classes with a file in ``source``, in :data:`CLASSES` order."""
    folder = resolve_source(source)
    return [c for c in CLASSES if (folder / f"{c}.hdf5").is_file()]


def split_indices(n: int, split: str, seed: int = SPLIT_SEED) -> np.ndarray:
    """Deterministic indices of ``split`` (train/valid/test 0.7/0.15/0.15 of a seeded permutation, or all)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if split == "all":
        return np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(SPLIT_FRACTIONS[0] * n))
    n_valid = int(round(SPLIT_FRACTIONS[1] * n))
    lo, hi = {"train": (0, n_train), "valid": (n_train, n_train + n_valid), "test": (n_train + n_valid, n)}[split]
    return np.sort(perm[lo:hi])


def load_jets(
    jet_type: str,
    source: str | os.PathLike | None = None,
    split: str = "all",
    max_jets: int | None = None,
    max_particles: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """Jets of one class → (particle_features ``[N, max_particles, 4]``, jet_features ``[N, 4]``) float32.

    ``source``: ``None``/``"bundled"`` (the sample shipped in ``data/sample``) or a folder of JetNet-format files
    (for example the real JetNet ``g.hdf5 … z.hdf5``). ``split`` selects a deterministic subset; ``max_jets``
    keeps the first jets of it. Files with more particles per jet are cut to the ``max_particles`` hardest.
    """
    if max_jets is not None and max_jets < 1:
        raise ValueError(f"max_jets must be >= 1 or None, got {max_jets}")
    pf, jf, _ = read_jetnet(class_file(jet_type, source))
    idx = split_indices(len(pf), split)
    if max_jets is not None:
        idx = idx[:max_jets]
    return pf[idx, :max_particles].copy(), jf[idx].copy()


def download_jetnet(jet_types: list[str], out: str | os.PathLike) -> list[Path]:
    """Download the real JetNet (30-particle) files through the ``jetnet`` package. Needs internet (Zenodo)."""
    from jetnet.datasets import JetNet  # imported here: the only network path in jetviz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for c in jet_types:
        check_class(c)
        JetNet.getData(jet_type=c, data_dir=str(out), download=True)
    return [out / f"{c}.hdf5" for c in jet_types]
