"""Sampling: loops over the schedulers, a loaded-generator object, and ``python -m jetviz sample``.

Reproducibility: jets are generated in fixed chunks of :data:`CHUNK` jets; chunk ``c`` of class ``k`` draws all
its noise from a generator seeded by ``SeedSequence([seed, k, c])``. The same seed therefore gives the same
jets, and the jets of a complete chunk do not depend on how many jets were asked for in all (the last,
partial chunk draws its noise in a different shape, so it differs); and ``--shard i/n`` (chunks with c % n == i) produces parts of one big sample
that ``merge-samples`` joins into exactly the unsharded result.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jetviz import checkpoints
from jetviz.config import CLASS_INDEX, DEFAULT_GENERATOR, ImageGrid, check_class
from jetviz.images import PixelScaling, to_physics_space
from jetviz.models import ConsistencyFunction, EDMDenoiser, JetUNet
from jetviz.schedulers import ConsistencyScheduler, VESDEScheduler

CHUNK = 250  # jets per seeded chunk (also the largest forward batch: bounded memory for any N)
MAX_STEPS = 1000


@torch.no_grad()
def sample_ve(denoiser, scheduler: VESDEScheduler, labels: torch.Tensor, steps: int, generator: torch.Generator,
              size: int = 25) -> torch.Tensor:
    """VE-SDE sampling (predictor-corrector, or probability-flow ODE with Heun), model space (B, 1, S, S)."""
    scheduler.set_timesteps(steps)
    x = torch.randn((len(labels), 1, size, size), generator=generator) * scheduler.init_noise_sigma
    sig = scheduler.sigmas
    for i, s in enumerate(scheduler.timesteps):
        if scheduler.config.sampler == "pc":
            for _ in range(scheduler.config.n_corrector):
                x = scheduler.step_correct(denoiser(x, s, labels), i, x, generator).prev_sample
            x = scheduler.step(denoiser(x, s, labels), i, x, generator).prev_sample
        else:
            euler = scheduler.step_ode_euler(denoiser(x, s, labels), i, x)
            if sig[i + 1] > 0:
                x = scheduler.heun_correct(denoiser(euler.prev_sample, sig[i + 1], labels), i, x, euler).prev_sample
            else:
                x = euler.prev_sample
    return x


@torch.no_grad()
def sample_cm(f, scheduler: ConsistencyScheduler, labels: torch.Tensor, steps: int, generator: torch.Generator,
              size: int = 25) -> torch.Tensor:
    """Multistep consistency sampling (CM Algorithm 1), model space (B, 1, S, S); one evaluation per step."""
    scheduler.set_timesteps(steps)
    x = torch.randn((len(labels), 1, size, size), generator=generator) * scheduler.init_noise_sigma
    for i, s in enumerate(scheduler.timesteps):
        x = scheduler.step(f(x, s, labels), i, x, generator).prev_sample
    return x


def chunk_generator(seed: int, class_index: int, chunk: int) -> torch.Generator:
    s = np.random.SeedSequence([seed, class_index, chunk]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(s[0]) << 32 | int(s[1]))


@dataclass
class Generator:
    """A loaded generator checkpoint. :meth:`sample` returns physics-space images ``[N, S, S]``.

    Example (``tests/test_sampling.py`` runs it with ``path`` set to a checkpoint folder)::

        >>> gen = load_generator(path)
        >>> images = gen.sample("t", n=10, steps=2, seed=0)   # 10 top jets, 2 consistency steps
        >>> images.shape, bool(images.min() >= 0)
        ((10, 25, 25), True)
    """

    name: str
    kind: str
    card: dict
    model: torch.nn.Module
    scheduler: VESDEScheduler | ConsistencyScheduler
    grid: ImageGrid
    scaling: PixelScaling

    def sample_model_space(self, jet_type: str, n: int, steps: int, seed: int = 0, shard: tuple[int, int] = (0, 1),
                           progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Model-space images ``[n_shard, S, S]`` (float32) of the chunks this shard owns."""
        check_class(jet_type)
        _check_request(n, steps)
        i_shard, n_shards = shard
        k = CLASS_INDEX[jet_type]
        chunks = [c for c in range(-(-n // CHUNK)) if c % n_shards == i_shard]
        out, done = [], 0
        loop = sample_ve if self.kind == "ve-sde" else sample_cm
        for c in chunks:
            b = min(CHUNK, n - c * CHUNK)
            labels = torch.full((b,), k, dtype=torch.long)
            x = loop(self.model, self.scheduler, labels, steps, chunk_generator(seed, k, c), self.grid.size)
            out.append(x[:, 0].numpy())
            done += b
            if progress:
                progress(done, sum(min(CHUNK, n - c * CHUNK) for c in chunks))
        size = self.grid.size
        return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)

    def sample(self, jet_type: str, n: int, steps: int = 1, seed: int = 0, shard: tuple[int, int] = (0, 1),
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Generate ``n`` jets of ``jet_type`` with ``steps`` steps → physics-space images ``[N, S, S]``
        (non-negative p_T fractions, pixels below the card's floor zeroed)."""
        x = self.sample_model_space(jet_type, n, steps, seed, shard, progress)
        return to_physics_space(x, self.scaling)

    def evaluations_per_sample(self, steps: int) -> int:
        """Network evaluations one sampling run of ``steps`` steps costs."""
        if self.kind == "ve-sde":
            self.scheduler.set_timesteps(steps)
            return self.scheduler.model_evaluations()
        return steps


def _check_request(n: int, steps: int) -> None:
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"number of jets must be a positive integer, got {n!r}")
    if not isinstance(steps, int | np.integer) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")


def load_generator(path: str | os.PathLike, sampler: str | None = None) -> Generator:
    """Load a generator checkpoint (checksums verified, safetensors only).

    ``sampler`` overrides a VE-SDE checkpoint's sampler (``"pc"`` or ``"ode"``).
    """
    card = checkpoints.load_card(path)
    if card["kind"] not in checkpoints.GENERATOR_KINDS:
        raise ValueError(f"{path} is a {card['kind']!r} checkpoint, not a generator")
    _, unet = checkpoints.load_unet(path, card)
    net = JetUNet.from_unet(unet, card["grid"]["size"])
    pre = card["precond"]
    sched_dir = Path(card["path"]) / "scheduler"
    if card["kind"] == "ve-sde":
        model = EDMDenoiser(net, pre["sigma_data"])
        scheduler = VESDEScheduler.from_pretrained(sched_dir)
        if sampler:  # PC keeps Song's geometric grid; the ODE uses EDM's
            grid = "karras" if sampler == "ode" else "geometric"
            scheduler = VESDEScheduler.from_config(scheduler.config, sampler=sampler, grid=grid)
    else:
        model = ConsistencyFunction(net, pre["sigma_data"], pre["sigma_min"])
        scheduler = ConsistencyScheduler.from_pretrained(sched_dir)
    return Generator(name=Path(card["path"]).name, kind=card["kind"], card=card, model=model.eval(),
                     scheduler=scheduler, grid=ImageGrid.from_dict(card["grid"]),
                     scaling=PixelScaling.from_dict(card["scaling"]))


from jetviz.export import FORMATS, merge_samples, write_samples  # noqa: E402  (file writers; after Generator)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 ≤ i < n."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate jets with a checkpoint and write CSV / HDF5 / NPZ")
    p.add_argument("--checkpoint", default=None, help=f"checkpoint folder or name (default: the shipped {DEFAULT_GENERATOR})")
    p.add_argument("--jet-type", required=True, choices=sorted(CLASS_INDEX))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", choices=("pc", "ode"), default=None, help="VE-SDE only")
    p.add_argument("--shard", default="0/1")
    p.add_argument("--out", required=True, help="output file: .csv, .hdf5/.h5 or .npz")
    p.set_defaults(func=_cmd_sample)
    m = sub.add_parser("merge-samples", help="join shard files of `sample` (same settings) into one file")
    m.add_argument("inputs", nargs="+")
    m.add_argument("--out", required=True)
    m.set_defaults(func=lambda a: (merge_samples([Path(p) for p in a.inputs], Path(a.out)), 0)[1])




def _cmd_sample(args) -> int:
    from tqdm import tqdm

    torch.set_flush_denormal(True)
    shard = parse_shard(args.shard)
    _check_request(args.n, args.steps)  # before loading and sampling: bad input costs nothing
    if Path(args.out).suffix not in FORMATS:
        raise ValueError(f"--out must end in one of {FORMATS}, got {args.out!r}")
    gen = load_generator(checkpoints.resolve(args.checkpoint or DEFAULT_GENERATOR), sampler=args.sampler)
    bar = tqdm(total=args.n, desc=f"sample {args.jet_type}", file=sys.stderr, dynamic_ncols=True)

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    t0 = time.time()
    images = gen.sample(args.jet_type, args.n, args.steps, args.seed, shard, progress)
    bar.close()
    meta = {"jet_type": args.jet_type, "model": gen.name, "kind": gen.kind, "steps": args.steps,
            "seed": args.seed, "n_requested": args.n, "shard": list(shard), "chunk": CHUNK,
            "seconds": round(time.time() - t0, 3)}
    path = write_samples(args.out, images, gen.grid, meta)
    print(f"wrote {len(images)} jets to {path} ({meta['seconds']} s)", file=sys.stderr)
    return 0
