"""The jet-image classifier behind jetviz's FID (an Inception network cannot be downloaded here).

A small CNN (≈ 30 k parameters) is trained to tell the five classes apart on *real* images; the Fréchet
distance is then computed on its penultimate-layer features (64 dimensions), exactly as FID uses Inception's
pool features. Inputs are physics-space images mapped with √p (the model-space scaling's power) so soft
pixels count. Shipped as ``checkpoints/classifier/{model.safetensors, config.json, card.json}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as nnf

from jetviz import checkpoints
from jetviz.config import CLASSES, DEFAULT_GRID

FEATURE_DIM = 64


class JetClassifier(nn.Module):
    """(B, 1, 25, 25) √p images → class logits (B, 5); :meth:`features` gives the (B, 64) penultimate layer."""

    def __init__(self, width: int = 16, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, FEATURE_DIM, 3, padding=1)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = nnf.relu(self.conv1(x))  # (B, w, 25, 25)
        h = nnf.max_pool2d(nnf.relu(self.conv2(h)), 2)  # (B, 2w, 12, 12)
        h = nnf.max_pool2d(nnf.relu(self.conv3(h)), 2)  # (B, 64, 6, 6)
        return h.mean((-2, -1))  # (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def prepare(images: np.ndarray) -> torch.Tensor:
    """Physics-space images [N, 25, 25] → classifier input (N, 1, 25, 25) = √p."""
    return torch.from_numpy(np.sqrt(np.clip(np.asarray(images, np.float32), 0, None)))[:, None]


@torch.no_grad()
def embed(model: JetClassifier, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Penultimate features [N, 64] (float64) of physics-space images."""
    model.eval()
    x = prepare(images)
    return np.concatenate([model.features(x[i:i + batch]).double().numpy() for i in range(0, len(x), batch)]) \
        if len(x) else np.zeros((0, FEATURE_DIM))


def train_classifier(images: np.ndarray, labels: np.ndarray, epochs: int = 5, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, val_fraction: float = 0.1, progress=None):
    """Train on physics-space images [N, 25, 25] with labels [N] (index into CLASSES); returns
    (model, {"val_accuracy": …, "epochs": …}). Augments with η/φ flips; seeded."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(images))
    n_val = int(len(images) * val_fraction)
    val, tr = perm[:n_val], perm[n_val:]
    x, y = prepare(images), torch.as_tensor(np.asarray(labels), dtype=torch.long)
    model = JetClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * (len(tr) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    k = 0
    for _ in range(epochs):
        order = tr[rng.permutation(len(tr))]
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i:i + batch_size]
            xb = x[idx]
            f = torch.randint(0, 2, (len(idx), 2), generator=gen).bool()
            xb = torch.where(f[:, 0, None, None, None], xb.flip(-2), xb)
            xb = torch.where(f[:, 1, None, None, None], xb.flip(-1), xb)
            loss = nnf.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            k += 1
            if progress:
                progress(k, steps, float(loss.detach()))
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[val[i:i + 1000]]).argmax(1) for i in range(0, len(val), 1000)]) if n_val else None
    acc = float((pred == y[val]).float().mean()) if n_val else float("nan")
    return model, {"val_accuracy": acc, "epochs": epochs, "steps": k, "train_jets": len(tr), "val_jets": n_val}


def save_classifier(model: JetClassifier, out: str | Path, card: dict) -> Path:
    from safetensors.torch import save_file

    out = Path(out)
    tmp = checkpoints.staging_dir(out)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps({"width": model.width, "feature_dim": FEATURE_DIM}))
    return checkpoints.finalize(tmp, out, {**card, "kind": "classifier"})


def load_classifier(path: str | Path = "classifier") -> tuple[JetClassifier, dict]:
    """(model, card) from a classifier checkpoint; checksums verified, safetensors only."""
    from safetensors.torch import load_file

    card = checkpoints.load_card(path)
    if card["kind"] != "classifier":
        raise ValueError(f"{path} is a {card['kind']!r} checkpoint, not the FID classifier")
    p = Path(card["path"])
    cfg = json.loads((p / "config.json").read_text())
    model = JetClassifier(width=int(cfg["width"]))
    model.load_state_dict(load_file(str(p / "model.safetensors")))
    return model.eval(), card


def register(sub) -> None:
    p = sub.add_parser("train-classifier", help="train the 5-class jet-image classifier used for FID")
    p.add_argument("--data", default=None, help="folder of JetNet-format files (default: bundled sample)")
    p.add_argument("--split", default="train")
    p.add_argument("--max-jets", type=int, default=None, help="per class")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(checkpoints.CHECKPOINT_DIR / "classifier"))
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    from tqdm import tqdm

    from jetviz.data import load_jets
    from jetviz.images import to_images
    from jetviz.training import hardware_string

    torch.set_flush_denormal(True)
    ims, ys = [], []
    for k, c in enumerate(CLASSES):
        pf, _ = load_jets(c, args.data, split=args.split, max_jets=args.max_jets)
        ims.append(to_images(pf, DEFAULT_GRID))
        ys.append(np.full(len(pf), k))
    bar = tqdm(desc="train classifier", file=sys.stderr)

    def progress(k, total, loss):
        bar.total = total
        bar.n = k
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.refresh()

    t0 = time.time()
    model, info = train_classifier(np.concatenate(ims), np.concatenate(ys), epochs=args.epochs, seed=args.seed,
                                   progress=progress)
    bar.close()
    card = {"name": Path(args.out).name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "python -m jetviz " + " ".join(sys.argv[1:]),
            "data": {"source": args.data or "bundled", "split": args.split, "max_jets_per_class": args.max_jets},
            "seed": args.seed, "training": {**info, "wall_time_s": round(time.time() - t0, 1)},
            "hardware": hardware_string(), "grid": DEFAULT_GRID.to_dict(), "classes": list(CLASSES),
            "feature_dim": FEATURE_DIM}
    save_classifier(model, args.out, card)
    print(json.dumps(info))
    return 0
