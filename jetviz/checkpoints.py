"""Shipped checkpoints: ``checkpoints/<name>/{unet/, scheduler/, card.json}`` with sha256 checksums.

The card (``card.json``) records what a user needs to trust and reproduce a model: ``kind`` (``"ve-sde"``,
``"consistency-ct"``, ``"consistency-cd"``, ``"classifier"``), the exact command, training data and seed,
steps, wall time, hardware, image grid and pixel scaling, preconditioning constants, and a ``"files"`` map of
the sha256 of every file in the checkpoint. :func:`load_card` verifies every checksum and refuses weights that
are not safetensors, so a tampered, truncated or pickled file never reaches ``torch``.

A checkpoint is written into a temporary sibling folder and renamed into place, so a killed job leaves either
the old checkpoint or the new one, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from jetviz.config import CHECKPOINT_DIR

KINDS = ("ve-sde", "consistency-ct", "consistency-cd", "classifier")
GENERATOR_KINDS = KINDS[:3]
CARD = "card.json"
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint folder from a path, or from a bare name under ``checkpoints/``."""
    p = Path(name_or_path).expanduser()
    if not p.exists() and not p.is_absolute() and len(p.parts) == 1:
        p = CHECKPOINT_DIR / p
    return p


def resolve_existing(name_or_path: str | os.PathLike) -> Path:
    """:func:`resolve`, raising ``ValueError`` (with the checkpoints found) when the folder does not exist."""
    path = resolve(name_or_path)
    if not path.is_dir():
        have = ", ".join(p.name for p in list_checkpoints()) or "none"
        raise ValueError(f"unknown checkpoint {str(name_or_path)!r}: no folder {path} (checkpoints found: {have})")
    return path


def list_checkpoints(root: str | os.PathLike = CHECKPOINT_DIR) -> list[Path]:
    """Folders under ``root`` that hold a ``card.json``, sorted by name."""
    root = Path(root)
    return sorted(p.parent for p in root.glob(f"*/{CARD}")) if root.is_dir() else []


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Write JSON to ``path`` via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def finalize(tmp_dir: Path, out: Path, card: dict) -> Path:
    """Checksum every file in ``tmp_dir``, write the card, and move the folder to ``out`` atomically."""
    if card.get("kind") not in KINDS:
        raise ValueError(f"card kind must be one of {KINDS}, got {card.get('kind')!r}")
    files = {}
    for p in sorted(tmp_dir.rglob("*")):
        if p.is_file() and p.name != CARD:
            if p.suffix in UNSAFE_SUFFIXES:
                raise ValueError(f"refusing to ship a pickle-format file {p.name}; save weights as safetensors")
            files[p.relative_to(tmp_dir).as_posix()] = sha256_file(p)
    write_json_atomic(tmp_dir / CARD, {**card, "files": files})
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(tmp_dir, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def staging_dir(out: str | os.PathLike) -> Path:
    """A fresh temporary folder beside ``out`` to write a checkpoint into before :func:`finalize`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))


def save_generator(out: str | os.PathLike, unet, scheduler, card: dict, extra_files: dict | None = None) -> Path:
    """Save a diffusers ``UNet2DModel`` (safetensors) and scheduler with ``card`` to ``out``; ``extra_files``
    maps names in the checkpoint to files copied in (e.g. the training ``loss.csv``)."""
    out = Path(out)
    tmp = staging_dir(out)
    try:
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        for name, src in (extra_files or {}).items():
            if Path(src).is_file():
                shutil.copyfile(src, tmp / name)
        return finalize(tmp, out, card)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_card(path: str | os.PathLike, verify: bool = True) -> dict:
    """Read ``card.json`` of a checkpoint and (by default) verify every recorded sha256.

    Raises ``ValueError`` for a missing folder or card, an unknown kind, a missing or changed file, or a
    weight file in a pickle format.
    """
    path = resolve(path)
    if not path.is_dir():
        have = ", ".join(p.name for p in list_checkpoints()) or "none"
        raise ValueError(f"no checkpoint folder {path} (checkpoints found: {have})")
    card_path = path / CARD
    if not card_path.is_file():
        raise ValueError(f"{path} has no {CARD}; not a jetviz checkpoint")
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{card_path} is not valid JSON ({e})") from None
    if card.get("kind") not in KINDS:
        raise ValueError(f"{card_path}: unknown kind {card.get('kind')!r}; expected one of {KINDS}")
    unsafe = [p.name for p in path.rglob("*") if p.suffix in UNSAFE_SUFFIXES]
    if unsafe:
        raise ValueError(f"{path} contains pickle-format files {unsafe}; jetviz loads safetensors only")
    if verify:
        files = card.get("files") or {}
        if not any(f.endswith(".safetensors") for f in files):
            raise ValueError(f"{card_path} lists no .safetensors weights; refusing to load")
        for rel, digest in files.items():
            f = path / rel
            if not f.is_file():
                raise ValueError(f"{path}: file {rel} listed in the card is missing")
            if sha256_file(f) != digest:
                raise ValueError(
                    f"{path}: checksum mismatch for {rel} (file changed or corrupt since it was saved); "
                    "re-download or retrain this checkpoint"
                )
    card["path"] = str(path)
    return card


def load_unet(path: str | os.PathLike, card: dict | None = None):
    """(card, ``UNet2DModel``) from a generator checkpoint, checksums verified, safetensors only."""
    from diffusers import UNet2DModel

    card = card or load_card(path)
    unet = UNet2DModel.from_pretrained(Path(card["path"]) / "unet", use_safetensors=True, local_files_only=True)
    return card, unet.eval()
