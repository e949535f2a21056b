"""``python -m jetviz bench``: jets per second of Pythia 8 + FastJet and of each generator, on the same machine
in the same run (registered by :func:`jetviz.evaluate.register`).

* **Pythia**: :func:`jetviz.simulate.simulate_jets` (one process, one core, as ``simulate`` runs each worker)
  for ``sim_jets`` jets per class, each class in a fresh spawned process so that its peak RSS is its own.
  The time includes ``pythia.init()`` (≈ 0.5 s per 500-jet block, as in production); the ``all`` row is
  total jets / total seconds (jets of every class in equal numbers).
* **models**: the checkpoint's own sampling loop (:func:`jetviz.sampling.sample_cm` / ``sample_ve``) run on one
  batch of ``batch_size`` jets, class labels cycling over the classes, under ``torch.inference_mode``; one
  untimed warm-up forward per batch size (it includes ``torch.compile``'s compilation, reported as
  ``compile_s``), then whole batches until ``min_seconds`` have passed. ``threads`` torch threads (default 1,
  to compare per core with Pythia's one core per process).
* **peak_mem_mb**: the peak resident set size of the process doing the work during the measurement
  (Linux: ``VmHWM`` after resetting it through ``/proc/self/clear_refs``; else ``ru_maxrss``, the process's
  lifetime peak); on CUDA ``torch.cuda.max_memory_allocated``. It includes the interpreter, the libraries and
  memory the allocator kept from earlier (larger) measurements in the same process, so it is an upper bound
  after the first model; batch sizes run in the order given (ascending gives the tightest numbers).
* **speedup_vs_pythia** = jets_per_s / Pythia's ``all`` rate.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from jetviz import report
from jetviz.config import CLASS_INDEX, CLASSES, check_class

BENCH_COLUMNS = ["what", "model", "steps", "batch_size", "device", "threads", "jets_per_s", "seconds", "jets",
                 "peak_mem_mb", "speedup_vs_pythia", "jet_type", "evals_per_jet", "channels_last", "compiled",
                 "compile_s"]
PYTHIA = "pythia8+fastjet"


# ----------------------------------------------------------------------------------------------- memory
def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ≥ 4.0: ``VmHWM``); ``False`` where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (since the last :func:`reset_peak_rss`, on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


# ----------------------------------------------------------------------------------------------- Pythia
def _pythia_worker(jet_type: str, n_jets: int, seed: int) -> dict:
    """Simulate in this process; the peak RSS is the process's whole life (imports, Pythia, clustering)."""
    from jetviz.simulate import simulate_jets

    res = simulate_jets(jet_type, n_jets, seed, workers=1)
    return {"jets": int(res.info["jets"]), "seconds": float(res.info["seconds"]), "peak_mem_mb": peak_rss_mb()}


def bench_pythia(classes: Sequence[str], n_jets: int, seed: int = 0, isolate: bool = True,
                 log: Callable[[str], None] | None = None) -> list[dict]:
    """One row per class and an ``all`` row (total jets / total seconds)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    rows = []
    for c in classes:
        if isolate:
            with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                r = pool.submit(_pythia_worker, c, n_jets, seed).result()
        else:
            r = _pythia_worker(c, n_jets, seed)
        rows.append(_row("pythia", PYTHIA, None, None, "cpu", 1, r["jets"], r["seconds"], r["peak_mem_mb"], c))
        if log:
            log(f"pythia {c}: {r['jets']} jets in {r['seconds']:.2f} s ({rows[-1]['jets_per_s']:.0f}/s)")
    if len(rows) > 1:
        jets, secs = sum(r["jets"] for r in rows), sum(r["seconds"] for r in rows)
        rows.append(_row("pythia", PYTHIA, None, None, "cpu", 1, jets, secs, max(r["peak_mem_mb"] for r in rows),
                         "all" if len(classes) == len(CLASSES) else ",".join(classes)))
    return rows


# ------------------------------------------------------------------------------------------------ models
def sample_batch(model, scheduler, kind: str, labels, steps: int, generator, size: int = 25):
    """The generator's sampling loop on one batch: model-space images ``(B, 1, S, S)`` on ``labels.device``.

    ``model`` is the checkpoint's denoiser / consistency function (``Generator.model``, possibly compiled or
    channels-last), ``generator`` a ``torch.Generator`` on the same device.
    """
    import torch

    from jetviz.sampling import sample_cm, sample_ve

    loop = sample_ve if kind == "ve-sde" else sample_cm
    if labels.device.type == "cpu":
        return loop(model, scheduler, labels, steps, generator, size)
    with torch.device(labels.device):  # the loops create their noise and σ grids on the default device
        return loop(model, scheduler, labels, steps, generator, size)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_model(gen, device: str = "cpu", steps: Sequence[int] = (1, 2, 4), batch_sizes: Sequence[int] = (64,),
                classes: Sequence[str] = CLASSES, threads: int = 1, channels_last: bool = False,
                compile: bool = False, min_seconds: float = 2.0, seed: int = 0,
                log: Callable[[str], None] | None = None) -> list[dict]:
    """Rows of jets per second of a loaded :class:`jetviz.sampling.Generator` (see the module docstring)."""
    import torch

    torch.set_num_threads(threads)
    model = gen.model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    run = torch.compile(model) if compile else model
    rows = []
    for b in batch_sizes:
        labels = torch.tensor([CLASS_INDEX[classes[i % len(classes)]] for i in range(b)], device=device)
        g = torch.Generator(device=device).manual_seed(seed)
        t0 = time.perf_counter()
        with torch.inference_mode():
            sample_batch(run, gen.scheduler, gen.kind, labels, 1, g, gen.grid.size)  # warm-up (and compile)
        _sync(device)
        warm = time.perf_counter() - t0
        for s in steps:
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            else:
                reset_peak_rss()
            batches, t0 = 0, time.perf_counter()
            with torch.inference_mode():
                while True:
                    sample_batch(run, gen.scheduler, gen.kind, labels, s, g, gen.grid.size)
                    _sync(device)
                    batches += 1
                    if time.perf_counter() - t0 >= min_seconds:
                        break
            secs = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else peak_rss_mb()
            row = _row("model", gen.name, s, b, device, threads, batches * b, secs, peak, "mixed")
            row.update(evals_per_jet=gen.evaluations_per_sample(s), channels_last=channels_last, compiled=compile,
                       compile_s=round(warm, 2) if compile else None)
            rows.append(row)
            if log:
                log(f"{gen.name} {device} steps={s} batch={b}: {row['jets_per_s']:.1f} jets/s "
                    f"({batches} batch(es), {secs:.1f} s)")
    gen.model.to("cpu")
    return rows


def _row(what, model, steps, batch, device, threads, jets, seconds, peak, jet_type) -> dict:
    return {"what": what, "model": model, "steps": steps, "batch_size": batch, "device": device, "threads": threads,
            "jets_per_s": jets / seconds if seconds > 0 else float("nan"), "seconds": seconds, "jets": jets,
            "peak_mem_mb": round(peak, 1), "speedup_vs_pythia": None, "jet_type": jet_type, "evals_per_jet": None,
            "channels_last": None, "compiled": None, "compile_s": None}


def devices(spec: str) -> list[str]:
    """``auto`` → cpu (+ cuda when available); else a comma list of cpu / cuda[:i]."""
    import torch

    if spec == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = [d.strip() for d in spec.split(",") if d.strip()]
    for d in out:
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--devices asks for {d} but torch sees no CUDA device; use --devices cpu")
        if not (d == "cpu" or d.startswith("cuda")):
            raise ValueError(f"unknown device {d!r}; use cpu, cuda or cuda:N")
    return out


def run_bench(checkpoint_names: Sequence[str], steps: Sequence[int] = (1, 2, 4),
              batch_sizes: Sequence[int] = (64, 250, 1000), classes: Sequence[str] = CLASSES, sim_jets: int = 500,
              sim_seed: int = 0, device_list: Sequence[str] = ("cpu",), threads: int = 1,
              channels_last: bool = False, compile: bool = False, min_seconds: float = 2.0,
              isolate_pythia: bool = True, log: Callable[[str], None] | None = None):
    """Benchmark Pythia (``sim_jets`` per class; 0 skips it) and each checkpoint; returns a DataFrame with
    :data:`BENCH_COLUMNS`."""
    import pandas as pd
    import torch

    from jetviz import checkpoints
    from jetviz.sampling import load_generator

    for c in classes:
        check_class(c)
    for name, vals in (("steps", steps), ("batch sizes", batch_sizes)):
        if not vals or any(v < 1 for v in vals):
            raise ValueError(f"{name} must be positive integers, got {list(vals)}")
    if threads < 1 or sim_jets < 0 or min_seconds < 0:
        raise ValueError(f"need threads >= 1, sim_jets >= 0, min_seconds >= 0; got {threads}, {sim_jets}, "
                         f"{min_seconds}")
    gens = []
    for name in checkpoint_names:
        path = checkpoints.resolve_existing(name)
        gens.append(load_generator(path))
    rows = bench_pythia(classes, sim_jets, sim_seed, isolate_pythia, log) if sim_jets else []
    pythia_rate = rows[-1]["jets_per_s"] if rows else None  # the all-classes row (or the only class)
    if rows:
        rows[-1]["speedup_vs_pythia"] = 1.0
    saved_threads = torch.get_num_threads()
    try:
        for gen in gens:
            for d in device_list:
                rows += bench_model(gen, d, steps, batch_sizes, classes, threads, channels_last, compile,
                                    min_seconds, log=log)
    finally:
        torch.set_num_threads(saved_threads)
    for r in rows:
        if pythia_rate and r["what"] == "model":
            r["speedup_vs_pythia"] = r["jets_per_s"] / pythia_rate
    return pd.DataFrame(rows, columns=BENCH_COLUMNS)


def markdown(df) -> str:
    """The bench table as markdown."""
    from jetviz.report import table

    def num(x, f="{:.3g}"):
        return "" if x is None or x != x else f.format(x)

    rows = [[r.what if r.what == "model" else f"pythia ({r.jet_type})", r.model, num(r.steps, "{:.0f}"),
             num(r.batch_size, "{:.0f}"), r.device, r.threads, num(r.jets_per_s), num(r.seconds, "{:.2f}"),
             int(r.jets), num(r.peak_mem_mb, "{:.0f}"), num(r.speedup_vs_pythia)] for r in df.itertuples()]
    return table(["what", "model", "steps", "batch", "device", "threads", "jets/s", "seconds", "jets",
                  "peak RSS [MiB]", "× Pythia"], rows)


def register(sub) -> None:
    p = sub.add_parser("bench", help="jets per second: Pythia 8 + FastJet vs each generator checkpoint",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", default=None,
                   help="comma-separated names under checkpoints/ or paths (default: all generator checkpoints)")
    p.add_argument("--steps", default="1,2,4")
    p.add_argument("--batch-sizes", default="64,250,1000")
    p.add_argument("--classes", default=",".join(CLASSES), help="Pythia classes, and the labels models cycle over")
    p.add_argument("--sim-jets", type=int, default=500, help="Pythia jets per class (0 skips Pythia)")
    p.add_argument("--sim-seed", type=int, default=0)
    p.add_argument("--devices", default="auto", help="auto (cpu, plus cuda if present) or e.g. cpu,cuda")
    p.add_argument("--threads", type=int, default=1, help="torch threads (Pythia uses one core per process)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format for the model")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compile time not timed)")
    p.add_argument("--min-seconds", type=float, default=2.0, help="time whole batches until this much has passed")
    p.add_argument("--out", default="reports/bench.csv", help="CSV path (a .md table is written beside it)")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    import torch

    from jetviz import checkpoints
    from jetviz.evaluate import parse_list

    torch.set_flush_denormal(True)
    names = list(parse_list(args.checkpoints or "", str, "checkpoints"))
    if args.checkpoints is None:
        names = [str(p) for p in checkpoints.list_checkpoints()
                 if checkpoints.load_card(p, verify=False)["kind"] in checkpoints.GENERATOR_KINDS]
        if not names:
            print(f"no generator checkpoints in {checkpoints.CHECKPOINT_DIR}: timing Pythia only", file=sys.stderr)
    df = run_bench(names, parse_list(args.steps, int, "steps"), parse_list(args.batch_sizes, int, "batch-sizes"),
                   parse_list(args.classes, str, "classes"), args.sim_jets, args.sim_seed, devices(args.devices),
                   args.threads, args.channels_last, args.compile, args.min_seconds,
                   log=lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    text = (f"# jetviz bench\n\n* command: `{report.command_line(args)}`\n* hardware: {report.machine()}\n"
            f"* {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{markdown(df)}\n")
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0
