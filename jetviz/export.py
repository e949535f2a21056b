"""Writers for generated jets: tidy CSV, JetNet-format HDF5 (+ images), NPZ; and merging of shard files.

* ``.csv``: one row per non-zero pixel: ``jet_type, model, steps, seed, jet_id, eta_rel, phi_rel, pt_rel``
  (η_rel/φ_rel at the pixel centre; pt_rel = the pixel's p_T / p_T,jet). ``jet_id`` is the jet's index in the
  full (unsharded) request.
* ``.hdf5``/``.h5``: JetNet format: ``particle_features`` [N, 30, 4] from the image (each non-zero pixel a
  massless particle, 30 hardest), ``jet_features`` [N, 4]; plus ``images`` [N, S, S], ``jet_ids`` [N] and
  attributes ``eta_range``, ``phi_range`` = [lo, hi], and the generation settings. A generated jet has no
  absolute p_T or η, so its ``jet_features`` are *relative*: (Σ p_T,rel, 0, m/p_T, n_particles) — the file
  attribute ``jet_features_units`` says so.
* ``.npz``: arrays ``images`` [N, S, S] and ``jet_ids`` [N], plus ``meta`` (JSON text).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from jetviz.config import ImageGrid
from jetviz.images import to_point_clouds
from jetviz.physics import image_mass_rel, image_multiplicity, image_pt_sum

CSV_COLUMNS = ["jet_type", "model", "steps", "seed", "jet_id", "eta_rel", "phi_rel", "pt_rel"]
FORMATS = (".csv", ".hdf5", ".h5", ".npz")
META_KEYS = ("jet_type", "model", "kind", "steps", "seed", "n_requested", "shard", "chunk")


def shard_jet_ids(n: int, shard: tuple[int, int], chunk: int) -> np.ndarray:
    """Global jet indices held by ``shard`` = (i, n_shards) when ``n`` jets are made in chunks of ``chunk``."""
    i, k = shard
    ids = [np.arange(c * chunk, min(n, (c + 1) * chunk)) for c in range(-(-n // chunk)) if c % k == i]
    return np.concatenate(ids) if ids else np.zeros(0, np.int64)


def samples_table(images: np.ndarray, grid: ImageGrid, meta: dict, jet_ids: np.ndarray | None = None) -> pd.DataFrame:
    """The tidy table of the CSV format (one row per non-zero pixel), as a DataFrame."""
    images = np.asarray(images)
    ids = np.arange(len(images)) if jet_ids is None else np.asarray(jet_ids)
    j, ie, ip = np.nonzero(images)
    return pd.DataFrame({
        "jet_type": meta.get("jet_type", ""),
        "model": meta.get("model", ""),
        "steps": meta.get("steps", 0),
        "seed": meta.get("seed", 0),
        "jet_id": ids[j],
        "eta_rel": grid.eta_centres[ie].round(6),
        "phi_rel": grid.phi_centres[ip].round(6),
        "pt_rel": images[j, ie, ip].astype(np.float64).round(8),
    }, columns=CSV_COLUMNS)


def samples_csv(images: np.ndarray, grid: ImageGrid, meta: dict, jet_ids: np.ndarray | None = None) -> bytes:
    """CSV bytes of :func:`samples_table` (what the app's download button serves)."""
    buf = io.StringIO()
    samples_table(images, grid, meta, jet_ids).to_csv(buf, index=False)
    return buf.getvalue().encode()


def images_from_table(df: pd.DataFrame, grid: ImageGrid, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`samples_table`: (images [N, S, S], jet_ids [N]); jets with no pixels need ``n``."""
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"CSV lacks columns {missing}; expected {CSV_COLUMNS}")
    ids = np.unique(df["jet_id"].to_numpy()) if n is None else np.arange(n)
    pos = np.searchsorted(ids, df["jet_id"].to_numpy())
    s = grid.size
    ie = np.clip(np.floor((df["eta_rel"].to_numpy() - grid.eta_range[0]) / np.diff(grid.eta_range) * s), 0, s - 1)
    ip = np.clip(np.floor((df["phi_rel"].to_numpy() - grid.phi_range[0]) / np.diff(grid.phi_range) * s), 0, s - 1)
    out = np.zeros((len(ids), s, s), np.float32)
    out[pos, ie.astype(int), ip.astype(int)] = df["pt_rel"].to_numpy()
    return out, ids


def _tmp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def hdf5_bytes_safe_attrs(meta: dict) -> dict:
    return {k: (json.dumps(v) if isinstance(v, list | dict | tuple) else v) for k, v in meta.items() if v is not None}


def write_samples(path: str | os.PathLike, images: np.ndarray, grid: ImageGrid, meta: dict,
                  jet_ids: np.ndarray | None = None) -> Path:
    """Write generated images (physics space) to ``.csv``, ``.hdf5``/``.h5`` or ``.npz`` atomically."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"output must end in one of {FORMATS}, got {path.name!r}")
    meta = {k: meta[k] for k in META_KEYS if k in meta}
    if jet_ids is None:
        shard = tuple(meta.get("shard", (0, 1)))
        jet_ids = (shard_jet_ids(int(meta["n_requested"]), shard, int(meta["chunk"]))
                   if "n_requested" in meta and "chunk" in meta else np.arange(len(images)))
    if len(jet_ids) != len(images):
        raise ValueError(f"{len(images)} images but {len(jet_ids)} jet ids")
    tmp = _tmp_beside(path)
    try:
        if path.suffix == ".csv":
            tmp.write_bytes(samples_csv(images, grid, meta, jet_ids))
        elif path.suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez_compressed(f, images=np.asarray(images, np.float32), jet_ids=jet_ids,
                                    meta=np.array(json.dumps({**meta, "grid": grid.to_dict()})))
        else:
            from jetviz.data import write_jetnet

            pf = to_point_clouds(images, grid)
            jf = np.stack([image_pt_sum(images), np.zeros(len(images)), image_mass_rel(images, grid),
                           np.minimum(image_multiplicity(images), pf.shape[1])], 1)
            attrs = {**hdf5_bytes_safe_attrs(meta), "eta_range": list(grid.eta_range),
                     "phi_range": list(grid.phi_range), "image_size": grid.size,
                     "jet_features_units": "relative: (sum pt_rel, 0, m/pT, n_particles)",
                     "jet_ids": np.asarray(jet_ids)}
            write_jetnet(tmp, pf, jf, attrs=attrs, images=images)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_samples(path: str | os.PathLike, grid: ImageGrid | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a file written by :func:`write_samples` → (images, jet_ids, meta)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return z["images"], z["jet_ids"], meta
    if path.suffix in (".hdf5", ".h5"):
        with h5py.File(path, "r") as f:
            meta = {k: (json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v) for k, v in f.attrs.items()}
            meta = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in meta.items()}
            return f["images"][...], np.asarray(meta.pop("jet_ids")), meta
    if path.suffix == ".csv":
        df = pd.read_csv(path)
        if grid is None:
            raise ValueError("reading a CSV back needs the image grid")
        images, ids = images_from_table(df, grid)
        first = df.iloc[0] if len(df) else {}
        meta = {k: (first[k].item() if hasattr(first[k], "item") else first[k]) for k in ("jet_type", "model", "steps", "seed")
                if k in first}
        return images, ids, meta
    raise ValueError(f"unknown sample format {path.suffix!r}; expected one of {FORMATS}")


def merge_samples(inputs: list[Path], out: Path, grid: ImageGrid | None = None) -> Path:
    """Join shard files (same format and settings) into one file ordered by ``jet_id``."""
    if not inputs:
        raise ValueError("merge-samples needs at least one input file")
    parts = [read_samples(p, grid) for p in inputs]
    first = parts[0][2]
    for p, (_, _, m) in zip(inputs, parts, strict=True):
        for k in ("jet_type", "model", "steps", "seed"):
            if k in first and m.get(k) != first.get(k):
                raise ValueError(f"{p}: {k}={m.get(k)!r} differs from {inputs[0]}'s {first.get(k)!r}; not shards of one run")
    images = np.concatenate([p[0] for p in parts])
    ids = np.concatenate([p[1] for p in parts])
    if len(np.unique(ids)) != len(ids):
        raise ValueError("the inputs overlap (the same jet_id appears twice); pass each shard once")
    order = np.argsort(ids, kind="stable")
    g = grid or (ImageGrid(size=first["image_size"], eta_range=tuple(first["eta_range"]),
                           phi_range=tuple(first["phi_range"])) if "eta_range" in first else None)
    if g is None and "grid" in first:
        g = ImageGrid.from_dict(first["grid"])
    meta = {**{k: v for k, v in first.items() if k in META_KEYS}, "shard": [0, 1]}
    return write_samples(out, images[order], g, meta, jet_ids=ids[order])
