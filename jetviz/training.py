"""Resumable training of the VE-SDE score model and the consistency models (CT and CD).

Determinism: every step's randomness (which jets, which flips, σ and noise) is derived from ``(seed, step)``
alone, so a run resumed from its last checkpoint continues bit-for-bit like an uninterrupted one, and no RNG
state has to be stored. A run folder holds

* ``state/`` — model, EMA and AdamW tensors (safetensors) and ``state.json`` (step, config, commands, sha256
  of each file): everything ``--resume`` needs, saved every ``checkpoint_every`` steps so that a killed job
  leaves a complete, verifiable state (layout in :mod:`jetviz.runstate`);
* ``loss.csv`` — step, loss, learning rate, N (CT curriculum), seconds;
* ``export/`` — a loadable checkpoint (EMA weights + scheduler + card), refreshed at each save.

Multi-GPU: ``accelerate launch -m jetviz train ...`` runs the same loop; each process takes its slice of the
global batch (seeded the same way), gradients are averaged by accelerate.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from jetviz import checkpoints, losses, runstate
from jetviz.config import CLASS_INDEX, CLASSES, DEFAULT_GRID
from jetviz.images import PixelScaling, to_images, to_model_space
from jetviz.models import ConsistencyFunction, EDMDenoiser, JetUNet, UNetConfig
from jetviz.schedulers import ConsistencyScheduler, VESDEScheduler

KINDS = ("ve-sde", "consistency-ct", "consistency-cd")


@dataclass
class TrainConfig:
    kind: str = "ve-sde"  # one of KINDS
    data: str | None = None  # None/"bundled" or a folder of JetNet-format <cls>.hdf5 files
    split: str = "train"  # which deterministic split of the data to train on ("all" for a training-only set)
    classes: tuple[str, ...] = CLASSES
    max_jets: int | None = None  # per class
    unet: UNetConfig = field(default_factory=UNetConfig)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup: int = 100  # linear learning-rate warm-up steps
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # with a (1+k)/(10+k) warm-up, so early EMA weights are not stuck at init
    seed: int = 0
    augment: bool = True  # random η → −η and φ → −φ flips (exact symmetries of the jet distribution)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    p_mean: float = -1.2  # DSM σ distribution (EDM); CT/CD use ct_p_mean/ct_p_std
    p_std: float = 1.2
    ct_p_mean: float = -1.1
    ct_p_std: float = 2.0
    ct_s0: int = 10
    ct_s1: int = 1280
    cd_scales: int = 40  # N of the teacher's Karras grid in distillation
    teacher: str | None = None  # VE-SDE checkpoint for consistency-cd
    gamma: float = 0.5  # pixel scaling (jetviz.images.PixelScaling)
    floor: float = 1e-3
    checkpoint_every: int = 100
    log_every: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.unet, dict):
            self.unet = UNetConfig.from_dict(self.unet)
        self.classes = tuple(self.classes)
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "consistency-cd" and not self.teacher:
            raise ValueError("consistency-cd needs --teacher (a ve-sde checkpoint folder)")
        for c in self.classes:
            if c not in CLASS_INDEX:
                raise ValueError(f"unknown class {c!r}; choose from {CLASSES}")
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch_size and checkpoint_every must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        d["classes"] = list(self.classes)
        return d


def load_training_images(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """All training jets as model-space images (M, 1, S, S) and labels (M,) (class index of CLASSES)."""
    from jetviz.data import load_jets

    xs, ys = [], []
    scaling = PixelScaling(cfg.gamma, cfg.floor)
    for c in cfg.classes:
        pf, _ = load_jets(c, cfg.data, split=cfg.split, max_jets=cfg.max_jets)
        xs.append(to_model_space(to_images(pf, DEFAULT_GRID), scaling))
        ys.append(np.full(len(pf), CLASS_INDEX[c]))
    x = torch.from_numpy(np.concatenate(xs))[:, None]  # (M, 1, S, S)
    return x, torch.from_numpy(np.concatenate(ys)).long()


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """The torch generator of one training step, derived from (seed, step, stream) only."""
    s = np.random.SeedSequence([seed, step, stream]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(s[0]) << 32 | int(s[1]))


def batch_indices(seed: int, step: int, batch_size: int, m: int) -> np.ndarray:
    """Indices of step ``step``'s batch: consecutive slices of per-epoch seeded permutations of ``m`` jets."""
    pos = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs = pos // m
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(m)
        sel = epochs == e
        out[sel] = perm[pos[sel] % m]
    return out


def augment_flips(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image in η (rows) and/or φ (columns) with probability ½ each; returns a new tensor."""
    b = x.shape[0]
    flips = torch.randint(0, 2, (b, 2), generator=generator).bool()
    x = torch.where(flips[:, 0].reshape(-1, 1, 1, 1), x.flip(-2), x)
    return torch.where(flips[:, 1].reshape(-1, 1, 1, 1), x.flip(-1), x)


def build_model(cfg: TrainConfig):
    net = JetUNet(cfg.unet)
    if cfg.kind == "ve-sde":
        return EDMDenoiser(net, cfg.sigma_data)
    return ConsistencyFunction(net, cfg.sigma_data, cfg.sigma_min)


def build_scheduler(cfg: TrainConfig):
    if cfg.kind == "ve-sde":
        # the deterministic Heun ODE on EDM's grid is the shipped default: at 10-20 steps it beat
        # predictor-corrector on early checkpoints (README); load_generator(..., sampler="pc") selects PC
        return VESDEScheduler(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, sampler="ode", grid="karras")
    return ConsistencyScheduler(sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, rho=cfg.rho,
                                sigma_data=cfg.sigma_data)


def load_teacher(path: str) -> EDMDenoiser:
    card, unet = checkpoints.load_unet(path)
    if card["kind"] != "ve-sde":
        raise ValueError(f"the distillation teacher must be a ve-sde checkpoint, {path} is {card['kind']!r}")
    teacher = EDMDenoiser(JetUNet.from_unet(unet), card["precond"]["sigma_data"]).eval()
    teacher.requires_grad_(False)
    return teacher, card


def loss_fn(cfg: TrainConfig, model, teacher, x0, labels, gen, step):
    """Per-sample loss (B,) and the CT discretisation N (0 where not used)."""
    if cfg.kind == "ve-sde":
        return losses.dsm_loss(model, x0, labels, gen, cfg.p_mean, cfg.p_std, cfg.sigma_min, cfg.sigma_max), 0
    if cfg.kind == "consistency-ct":
        n = losses.ct_num_scales(step, cfg.steps, cfg.ct_s0, cfg.ct_s1)
        return losses.consistency_training_loss(model, x0, labels, gen, n, cfg.sigma_min, cfg.sigma_max, cfg.rho,
                                                cfg.ct_p_mean, cfg.ct_p_std), n
    return losses.consistency_distillation_loss(model, teacher, x0, labels, gen, cfg.cd_scales, cfg.sigma_min,
                                                cfg.sigma_max, cfg.rho, cfg.ct_p_mean, cfg.ct_p_std), cfg.cd_scales


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1 - d)


def _optim_tensors(opt: torch.optim.Optimizer) -> dict:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def _load_optim(opt: torch.optim.Optimizer, tensors: dict) -> None:
    sd = opt.state_dict()
    state: dict = {}
    for key, v in tensors.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def save_state(run: Path, cfg: TrainConfig, step: int, model, ema, opt, wall: float,
               commands: list[str] | None = None) -> None:
    """Save everything needed to resume after ``step`` completed steps (see :mod:`jetviz.runstate`)."""
    runstate.save(run, step, {"model": model.state_dict(), "ema": ema.state_dict(), "optim": _optim_tensors(opt)},
                  {"wall_time_s": wall, "config": cfg.to_dict(), "commands": commands or []})


def export(run: Path, cfg: TrainConfig, ema, step: int, wall: float, out: Path | None = None,
           commands: list[str] | None = None, extra: dict | None = None) -> Path:
    """Write a loadable checkpoint (EMA weights, scheduler, card) to ``out`` (default ``run/export``)."""
    out = Path(out) if out else run / "export"
    card = {
        "kind": cfg.kind,
        "name": out.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": (commands or [current_command()])[0],
        "resumed_with": (commands or [])[1:],
        "training": {"steps": step, "wall_time_s": round(wall, 1), "config": cfg.to_dict()},
        "data": {"source": cfg.data or "bundled", "split": cfg.split, "classes": list(cfg.classes),
                 "max_jets_per_class": cfg.max_jets},
        "seed": cfg.seed,
        "hardware": hardware_string(),
        "grid": DEFAULT_GRID.to_dict(),
        "scaling": PixelScaling(cfg.gamma, cfg.floor).to_dict(),
        "precond": {"sigma_data": cfg.sigma_data, "sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max},
        "unet": cfg.unet.to_dict(),
        "classes": list(CLASSES),
        **(extra or {}),
    }
    return checkpoints.save_generator(out, ema.net.unet, build_scheduler(cfg), card,
                                      extra_files={"loss.csv": run / "loss.csv"})


def current_command() -> str:
    return " ".join(["python -m jetviz", *sys.argv[1:]])


def hardware_string() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA), torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def train(cfg: TrainConfig, run: str | os.PathLike, resume: bool = False, progress=None,
          export_to: str | os.PathLike | None = None, stop_after: int | None = None,
          command: str | None = None) -> dict:
    """Train (or resume) into the run folder ``run``; returns a summary dict.

    The EMA weights are exported as a loadable checkpoint to ``export_to`` (default ``run/export``) at every
    checkpoint. ``stop_after`` ends the call after that many completed steps (the run can be resumed later), which is how
    the tests interrupt a run. ``progress(step, total, loss)`` is called after each step.
    """
    from accelerate import Accelerator

    run = Path(run)
    state_json = run / "state" / "state.json"
    start, wall0 = 0, 0.0
    saved_tensors = None
    if resume and state_json.is_file():
        saved, saved_tensors = runstate.load(run)  # checksums verified before anything is built
        cfg = TrainConfig(**{**saved["config"], "steps": cfg.steps})  # the run's own settings; steps may grow
        start, wall0 = int(saved["step"]), float(saved["wall_time_s"])
        commands = list(saved.get("commands") or [])
    elif run.exists() and (run / "state").exists() and not resume:
        raise ValueError(f"{run} already holds a training run; pass --resume to continue it or choose a new --run")
    if start == 0:
        commands = []
    if stop_after != 0:
        commands.append(command or current_command())
    run.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(cfg.seed)  # parameter initialisation only; everything else uses step generators
    model = build_model(cfg)
    teacher = None
    if cfg.kind == "consistency-cd":
        teacher, tcard = load_teacher(cfg.teacher)
        if start == 0 and tcard["unet"] == cfg.unet.to_dict():  # CM paper: initialise the student from the teacher
            model.net.load_state_dict(teacher.net.state_dict())
        teacher = teacher.to(acc.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if start > 0:
        model.load_state_dict(saved_tensors["model"])
        ema.load_state_dict(saved_tensors["ema"])
        _load_optim(opt, saved_tensors["optim"])
    model, opt = acc.prepare(model, opt)
    ema = ema.to(acc.device)
    x_all, y_all = load_training_images(cfg)
    per_proc = max(1, cfg.batch_size // acc.num_processes)

    log_path = run / "loss.csv"
    _truncate_log(log_path, start)
    new_log = not log_path.exists()
    logf = open(log_path, "a", newline="")
    writer = csv.writer(logf)
    if new_log:
        writer.writerow(["step", "loss", "lr", "num_scales", "seconds"])
    t0 = time.time()
    step = start
    last_loss = float("nan")
    try:
        end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
        for step in range(start, end):
            idx = batch_indices(cfg.seed, step, cfg.batch_size, len(x_all))
            idx = idx[acc.process_index * per_proc:(acc.process_index + 1) * per_proc]
            gen = step_generator(cfg.seed, step, acc.process_index)
            x0, labels = x_all[idx], y_all[idx]
            if cfg.augment:
                x0 = augment_flips(x0, gen)
            lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
            for g in opt.param_groups:
                g["lr"] = lr
            model.train()
            loss_vec, n_scales = loss_fn(cfg, acc.unwrap_model(model), teacher, x0.to(acc.device),
                                         labels.to(acc.device), gen, step)
            loss = loss_vec.mean()
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            if cfg.grad_clip > 0:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema_update(ema, acc.unwrap_model(model), cfg.ema_decay, step)
            last_loss = float(loss.detach())
            if not np.isfinite(last_loss):
                raise RuntimeError(f"loss became {last_loss} at step {step}; lower --lr or check the data")
            done = step + 1
            if acc.is_main_process and done % cfg.log_every == 0:
                writer.writerow([done, f"{last_loss:.6g}", f"{lr:.3g}", n_scales, f"{time.time() - t0:.2f}"])
            if progress:
                progress(done, cfg.steps, last_loss)
            if acc.is_main_process and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                logf.flush()
                wall = wall0 + time.time() - t0
                save_state(run, cfg, done, acc.unwrap_model(model), ema, opt, wall, commands)
                export(run, cfg, ema, done, wall, out=export_to, commands=commands)
        step = end
    finally:
        logf.close()
    wall = wall0 + time.time() - t0
    if acc.is_main_process and stop_after == 0 and start > 0:  # --export-only: re-export the saved state
        export(run, cfg, ema, start, wall0, out=export_to, commands=commands)
    if acc.is_main_process and step > start and step % cfg.checkpoint_every and step != cfg.steps:
        save_state(run, cfg, step, acc.unwrap_model(model), ema, opt, wall, commands)
        export(run, cfg, ema, step, wall, out=export_to, commands=commands)
    return {"step": step, "loss": last_loss, "wall_time_s": wall, "run": str(run)}


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows after ``step`` (a killed run may have logged steps it never checkpointed)."""
    if not path.exists():
        return
    rows = list(csv.reader(path.open()))
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(keep)
    os.replace(tmp, path)


def register(sub) -> None:
    p = sub.add_parser("train", help="train a VE-SDE score model or a consistency model (CT/CD)")
    p.add_argument("--kind", choices=KINDS, default="ve-sde")
    p.add_argument("--run", required=True, help="run folder (state, loss.csv, export/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its last checkpoint")
    p.add_argument("--data", default=None, help="folder of JetNet-format files (default: bundled sample)")
    p.add_argument("--split", default="train", choices=("train", "valid", "test", "all"))
    p.add_argument("--classes", default=",".join(CLASSES))
    p.add_argument("--max-jets", type=int, default=None, help="jets per class")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels", default="16,32,32", help="UNet block_out_channels")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--attention", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--teacher", default=None, help="ve-sde checkpoint (consistency-cd)")
    p.add_argument("--cd-scales", type=int, default=40)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--export", default=None,
                   help="write the loadable checkpoint here at every checkpoint (default RUN/export), e.g. checkpoints/cm-ct")
    p.add_argument("--export-only", action="store_true",
                   help="with --resume: write the checkpoint of the saved state and stop (no training)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from tqdm import tqdm

    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise ValueError(f"--channels must be comma-separated integers, got {args.channels!r}") from None
    cfg = TrainConfig(
        kind=args.kind, data=args.data, split=args.split, classes=tuple(args.classes.split(",")),
        max_jets=args.max_jets, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        unet=UNetConfig(block_out_channels=channels, layers_per_block=args.layers_per_block,
                        attention=args.attention, dropout=args.dropout),
        ema_decay=args.ema_decay, augment=not args.no_augment, teacher=args.teacher, cd_scales=args.cd_scales,
        checkpoint_every=args.checkpoint_every,
    )
    if args.export_only and not args.resume:
        raise ValueError("--export-only needs --resume (it re-exports a saved run)")
    if not args.resume and (Path(args.run) / "state").exists():
        raise ValueError(f"{args.run} already holds a training run; pass --resume to continue it or choose a new --run")
    torch.set_flush_denormal(True)
    bar = tqdm(total=cfg.steps, desc=f"train {cfg.kind}", file=sys.stderr, dynamic_ncols=True)

    def progress(done, total, loss):
        bar.n = done
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        bar.refresh()

    summary = train(cfg, args.run, resume=args.resume, progress=progress, export_to=args.export,
                    stop_after=0 if args.export_only else None, command=getattr(args, "command_line", None))
    bar.close()
    print(json.dumps(summary))
    return 0

