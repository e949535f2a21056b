"""Pythia 8 + FastJet → JetNet-format jets: the truth generator (``python -m jetviz simulate`` / ``merge``).

Physics (settings, truth definitions and the per-block engine live in :mod:`jetviz._pythia`): 13 TeV pp,
Monash, particle level, MPI on, 995 < p̂_T < 1005 GeV. Anti-k_T R = 0.8 on all visible final-state particles
(neutrinos dropped); jets with 800 < p_T < 1600 GeV and |η| < 2.5 are kept if a truth object of the requested
class lies within ΔR = √(Δη² + Δφ²) < 0.8 of the jet axis. Jets keep their event order, and p_T order within an
event (two jets of one event may both be kept, as in JetNet).

Output arrays (physics space, JetNet conventions):

* ``particle_features`` float32 ``[N, 30, 4]`` = (η_rel, φ_rel, p_T,rel, mask) of the 30 hardest constituents,
  p_T-ordered, zero-padded; η_rel = η − η_jet, φ_rel = φ − φ_jet wrapped to (−π, π], p_T,rel = p_T / p_T,jet
  with p_T,jet the (vector) p_T of the full jet, mask = 1 for real particles. The scalar sum of constituent p_T
  exceeds the vector sum by the opening angles, so Σ p_T,rel over the stored particles can reach ≈ 1.005
  (measured: 1–17 % of jets above 1, depending on class); jets with many soft constituents sum to less (≥ 0.6).
* ``jet_features`` float32 ``[N, 4]`` = (p_T [GeV], η, mass [GeV], n_particles) of the full jet, with
  n_particles = min(constituents, 30), the number of stored particles, as in JetNet's files.

Determinism: a class's request is cut into blocks of :data:`BLOCK_SIZE` jets; block ``b`` runs in a fresh Pythia
whose ``Random:seed`` comes from ``SeedSequence(seed, spawn_key=(class index, b))``, and blocks are joined in
block order. Output therefore depends only on (class, n_jets, seed), never on ``workers``; shard ``i/n`` holds the
blocks with ``b % n == i`` and :func:`merge_shards` rebuilds the unsharded file byte for byte.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from jetviz import _pythia as engine
from jetviz._pythia import ETA_MAX, JET_R, MATCH_DR, PT_RANGE, jets_from_events, wrap_phi
from jetviz.config import CLASS_INDEX, CLASSES, NUM_PARTICLES, check_class

__all__ = ["BLOCK_SIZE", "SimResult", "simulate_jets", "simulate_to_dir", "merge_shards", "register", "parse_shard",
           "block_sizes", "pythia_seed", "jets_from_events", "wrap_phi"]

BLOCK_SIZE = 500  # jets per independently seeded Pythia run; changing it changes every output
FORMAT = "jetviz-simulate/1"  # recorded in file attributes; merge refuses other files

Progress = Callable[[int, int], None]


@dataclass
class SimResult:
    """Simulated jets of one class (see the module docstring for the feature order)."""

    particle_features: np.ndarray  # float32 [N, 30, 4] (eta_rel, phi_rel, pt_rel, mask)
    jet_features: np.ndarray  # float32 [N, 4] (pt, eta, mass, n_particles)
    info: dict  # settings, seed, blocks, versions, events, timing


# ----------------------------------------------------------------------------------------------- inputs


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based ``i``) → ``(i, n)``; raises ``ValueError`` for anything else."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n with integers (e.g. 0/4), got {text!r}") from None
    return check_shard((i, n))


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {i}/{n} is invalid: need n >= 1 and 0 <= i < n (0-based, e.g. 0/{max(n, 2)})")
    return int(i), int(n)


def _check_request(jet_type: str, n_jets: int, seed: int, workers: int) -> None:
    check_class(jet_type)
    for name, value, lo in (("n_jets", n_jets, 1), ("seed", seed, 0), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")


def block_sizes(n_jets: int, block_size: int | None = None) -> list[int]:
    """Jets per block (default :data:`BLOCK_SIZE`): full blocks, then the remainder; they sum to ``n_jets``."""
    block_size = BLOCK_SIZE if block_size is None else block_size
    full, rest = divmod(n_jets, block_size)
    return [block_size] * full + ([rest] if rest else [])


def pythia_seed(seed: int, jet_type: str, block: int) -> int:
    """``Random:seed`` (1..900 000 000) of ``block`` of ``jet_type`` for the user ``seed``."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(CLASS_INDEX[jet_type], int(block)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] % 900_000_000) + 1


def versions() -> dict[str, str]:
    import fastjet

    import jetviz

    return {"pythia8mc": metadata.version("pythia8mc"), "fastjet": fastjet.__version__,
            "jetviz": jetviz.__version__}


def physics_settings(jet_type: str) -> dict:
    """Everything that defines the sample apart from the seed (recorded in files and sidecars)."""
    return {
        "pythia": [*engine.COMMON_SETTINGS, *engine.PROCESS_SETTINGS[jet_type]],
        "truth": list(engine.TRUTH[jet_type][1]), "truth_mode": engine.TRUTH[jet_type][0],
        "jet_algorithm": "antikt", "jet_r": JET_R, "pt_range": list(PT_RANGE), "eta_max": ETA_MAX,
        "match_dr": MATCH_DR, "num_particles": NUM_PARTICLES, "invisible_ids": list(engine.INVISIBLE_IDS),
    }


# ------------------------------------------------------------------------------------------ many blocks


def simulate_jets(jet_type: str, n_jets: int, seed: int, *, workers: int = 1, shard: tuple[int, int] = (0, 1),
                  progress: Progress | None = None) -> SimResult:
    """Simulate ``n_jets`` truth-matched jets of ``jet_type`` (or, with ``shard=(i, n)``, the blocks ``b % n == i``
    of that request). Same (jet_type, n_jets, seed) → identical arrays for any ``workers``.

    ``progress(done, total)`` is called as jets accumulate (total = jets of this shard).
    """
    _check_request(jet_type, n_jets, seed, workers)
    i, n = check_shard(shard)
    sizes = block_sizes(n_jets)
    blocks = [b for b in range(len(sizes)) if b % n == i]
    if not blocks:
        warnings.warn(f"shard {i}/{n} holds no blocks: {n_jets} jets make {len(sizes)} block(s) of {BLOCK_SIZE}; "
                      "use fewer shards", RuntimeWarning, stacklevel=2)
    total = sum(sizes[b] for b in blocks)
    done: dict[int, int] = dict.fromkeys(blocks, 0)

    def update(block: int, have: int) -> None:
        done[block] = have
        if progress is not None:
            progress(sum(done.values()), total)

    t0 = time.perf_counter()
    n_proc = min(workers, len(blocks))
    if n_proc <= 1:
        results = [engine.generate_block(jet_type, pythia_seed(seed, jet_type, b), sizes[b],
                                         report=lambda h, b=b: update(b, h)) for b in blocks]
    else:
        results = _run_parallel(jet_type, seed, blocks, sizes, n_proc, update)
    seconds = time.perf_counter() - t0

    empty_pf, empty_jf = np.zeros((0, NUM_PARTICLES, 4), np.float32), np.zeros((0, 4), np.float32)
    pf = np.concatenate([empty_pf] + [r["particle_features"] for r in results])
    jf = np.concatenate([empty_jf] + [r["jet_features"] for r in results])
    events = sum(r["events"] for r in results)
    info = {
        "format": FORMAT, "jet_type": jet_type, "n_jets_requested": int(n_jets), "seed": int(seed),
        "shard": f"{i}/{n}", "block_size": BLOCK_SIZE, "n_blocks": len(sizes), "blocks": blocks,
        "block_jets": [sizes[b] for b in blocks], "block_events": [r["events"] for r in results],
        "pythia_seeds": [pythia_seed(seed, jet_type, b) for b in blocks],
        "jets": len(pf), "events": events, "events_generated": sum(r["events_generated"] for r in results),
        "jets_per_event": len(pf) / events if events else 0.0,
        "workers": max(n_proc, 1), "seconds": seconds, "jets_per_s": len(pf) / seconds if seconds else 0.0,
        "settings": physics_settings(jet_type), "versions": versions(),
    }
    return SimResult(pf, jf, info)


def _run_parallel(jet_type, seed, blocks, sizes, n_proc, update) -> list[dict]:
    """Blocks on ``n_proc`` spawned processes; returns results in block order and forwards progress."""
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")  # fork is unsafe under threaded callers such as Streamlit
    with ctx.Manager() as manager, ProcessPoolExecutor(n_proc, mp_context=ctx) as pool:
        q = manager.Queue()
        futures = [pool.submit(_block_in_worker, jet_type, seed, b, sizes[b], q) for b in blocks]
        while True:
            try:
                update(*q.get(timeout=0.2))
            except queue_mod.Empty:
                if all(f.done() for f in futures):
                    break
        results = [f.result() for f in futures]
        while not q.empty():
            update(*q.get())
    return results


def _block_in_worker(jet_type: str, seed: int, block: int, n_jets: int, queue) -> dict:
    """One block in a worker process; progress goes back through a manager queue as (block, jets)."""
    return engine.generate_block(jet_type, pythia_seed(seed, jet_type, block), n_jets,
                                 report=lambda have: queue.put((block, have)))


# ------------------------------------------------------------------------------------------------ files

# The HDF5 attributes hold only what is deterministic, so shard merges reproduce unsharded files exactly.
_ATTR_KEYS = ("format", "jet_type", "n_jets_requested", "seed", "block_size", "n_blocks", "blocks", "block_jets",
              "block_events", "pythia_seeds", "events")
_JSON_ATTRS = ("settings", "versions")
_MUST_AGREE = ("format", "jet_type", "n_jets_requested", "seed", "block_size", "n_blocks", *_JSON_ATTRS)


def _file_attrs(info: dict) -> dict:
    attrs = {k: (np.asarray(info[k], dtype=np.int64) if isinstance(info[k], list) else info[k]) for k in _ATTR_KEYS}
    attrs.update({k: json.dumps(info[k], sort_keys=True) for k in _JSON_ATTRS})
    return attrs


def _stem(jet_type: str, shard: tuple[int, int]) -> str:
    i, n = shard
    return jet_type if n == 1 else f"{jet_type}.shard-{i}-of-{n}"


def _write_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_CITATION = ("Pythia 8.3: Bierlich et al., SciPost Phys. Codebases 8 (2022); FastJet: Cacciari, Salam, Soyez, "
             "EPJC 72 (2012) 1896; anti-kT: JHEP 04 (2008) 063")


def simulate_to_dir(out, jet_types: str | Sequence[str], n_jets: int, seed: int, workers: int = 1,
                    shard: tuple[int, int] = (0, 1), progress: Progress | None = None) -> list[Path]:
    """Simulate each class into ``<out>/<cls>.hdf5`` (``<cls>.shard-i-of-n.hdf5`` for a shard of n > 1) plus a
    JSON sidecar with the same stem; returns the HDF5 paths. ``jet_types`` may be ``"all"``."""
    from jetviz.data import write_jetnet

    types = list(CLASSES) if jet_types == "all" else [jet_types] if isinstance(jet_types, str) else list(jet_types)
    if not types:
        raise ValueError("jet_types is empty; give one or more of " + ", ".join(CLASSES) + " or 'all'")
    for c in types:
        _check_request(c, n_jets, seed, workers)
    shard = check_shard(shard)
    out = Path(out)
    paths = []
    for c in types:
        res = simulate_jets(c, n_jets, seed, workers=workers, shard=shard, progress=progress)
        path = write_jetnet(out / f"{_stem(c, shard)}.hdf5", res.particle_features, res.jet_features,
                            attrs=_file_attrs(res.info))
        _write_json(path.with_suffix(".json"), {**res.info, "file": path.name, "citation": _CITATION})
        paths.append(path)
    return paths


def merge_shards(inputs: list[Path], out: Path) -> Path:
    """Join shard files of one class and one request in block order; returns the written path.

    ``out`` is a file (``*.hdf5``/``*.h5``) or a folder (→ ``<out>/<cls>.hdf5``). With every shard present the
    result is byte-identical to the unsharded run; a partial merge is written with a ``RuntimeWarning``.
    """
    from jetviz.data import read_jetnet, write_jetnet

    if not inputs:
        raise ValueError("merge needs at least one shard file")
    parts, ref = {}, None
    for path in map(Path, inputs):
        pf, jf, attrs = read_jetnet(path)
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path} was not written by jetviz simulate (format {attrs.get('format')!r})")
        if ref is None:
            ref = (path, attrs)
        bad = [k for k in _MUST_AGREE if attrs[k] != ref[1][k]]
        if bad:
            raise ValueError(f"{path} and {ref[0]} come from different requests (differ in {', '.join(bad)})")
        offsets = np.concatenate([[0], np.cumsum(attrs["block_jets"])])
        for k, b in enumerate(attrs["blocks"]):
            if b in parts:
                raise ValueError(f"block {b} appears twice ({parts[b][-1]} and {path}); pass each shard once")
            s = slice(offsets[k], offsets[k + 1])
            parts[b] = (pf[s], jf[s], attrs["block_jets"][k], attrs["block_events"][k], attrs["pythia_seeds"][k], path)
    attrs = ref[1]
    blocks = sorted(parts)
    missing = sorted(set(range(attrs["n_blocks"])) - set(blocks))
    if missing:
        warnings.warn(f"merging without blocks {missing} of {attrs['n_blocks']}: the result is incomplete",
                      RuntimeWarning, stacklevel=2)
    info = {k: int(attrs[k]) if isinstance(attrs[k], np.integer) else attrs[k]
            for k in _MUST_AGREE if k not in _JSON_ATTRS}
    info.update({k: json.loads(attrs[k]) for k in _JSON_ATTRS})
    info.update(blocks=blocks, block_jets=[int(parts[b][2]) for b in blocks],
                block_events=[int(parts[b][3]) for b in blocks], pythia_seeds=[int(parts[b][4]) for b in blocks])
    info["events"] = sum(info["block_events"])
    out = Path(out)
    path = out if out.suffix in (".hdf5", ".h5") else out / f"{attrs['jet_type']}.hdf5"
    pf = np.concatenate([np.zeros((0, NUM_PARTICLES, 4), np.float32)] + [parts[b][0] for b in blocks])
    jf = np.concatenate([np.zeros((0, 4), np.float32)] + [parts[b][1] for b in blocks])
    write_jetnet(path, pf, jf, attrs=_file_attrs(info))
    sidecar = {**info, "jets": len(pf), "file": path.name, "merged_from": [str(p) for p in inputs],
               "complete": not missing, "citation": _CITATION}
    _write_json(path.with_suffix(".json"), sidecar)
    return path


# -------------------------------------------------------------------------------------------------- CLI


def _cmd_simulate(args) -> int:
    from tqdm import tqdm

    shard = parse_shard(args.shard)
    types = list(CLASSES) if args.jet_type == "all" else [args.jet_type]
    if args.n_jets < 1:
        raise ValueError(f"--n-jets must be >= 1, got {args.n_jets}")
    total = sum(s for b, s in enumerate(block_sizes(args.n_jets)) if b % shard[1] == shard[0])
    for c in types:
        with tqdm(total=total, desc=f"{c} jets", unit="jet", file=sys.stderr, dynamic_ncols=True) as bar:
            def progress(done, _total, bar=bar):
                bar.update(done - bar.n)

            (path,) = simulate_to_dir(args.out, [c], args.n_jets, args.seed, workers=args.workers, shard=shard,
                                      progress=progress)
        info = json.loads(path.with_suffix(".json").read_text())
        print(f"{path}: {info['jets']} jets from {info['events']} events, {info['jets_per_s']:.0f} jets/s")
    return 0


def _cmd_merge(args) -> int:
    from jetviz.data import read_jetnet

    files: list[Path] = []
    for p in map(Path, args.inputs):
        files += sorted(p.glob("*.shard-*-of-*.hdf5")) if p.is_dir() else [p]
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(str(read_jetnet(f)[2].get("jet_type")), []).append(f)
    if not groups:
        raise ValueError(f"no shard files found in {args.inputs}")
    if len(groups) > 1 and Path(args.out).suffix in (".hdf5", ".h5"):
        raise ValueError(f"inputs hold classes {sorted(groups)}: give --out a folder, not the file {args.out}")
    for _, group in sorted(groups.items()):
        print(merge_shards(group, Path(args.out)))
    return 0


def register(subparsers) -> None:
    """Add the ``simulate`` and ``merge`` subcommands."""
    p = subparsers.add_parser("simulate", help="generate JetNet-format jets with Pythia 8 + FastJet",
                              description=__doc__.splitlines()[0])
    p.add_argument("--jet-type", choices=[*CLASSES, "all"], default="all")
    p.add_argument("--n-jets", type=int, required=True, help="jets per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder (<out>/<cls>.hdf5 + .json)")
    p.add_argument("--workers", type=int, default=1, help="processes; does not change the output")
    p.add_argument("--shard", default="0/1", help="i/n: only blocks b %% n == i (for batch-system arrays)")
    p.set_defaults(func=_cmd_simulate)

    m = subparsers.add_parser("merge", help="join simulate --shard outputs back in block order")
    m.add_argument("inputs", nargs="+", help="shard .hdf5 files, or folders holding them")
    m.add_argument("--out", required=True, help="output folder (or a single .hdf5 file for one class)")
    m.set_defaults(func=_cmd_merge)
