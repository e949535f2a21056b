"""The resumable state of a training run: ``<run>/state/``, written so that a killed job never leaves a torn or
unverifiable state.

Layout::

    state/state.json                     # step, wall time, config, commands, files: {relative path: sha256}
    state/step-00005200/model.safetensors  # raw weights
    state/step-00005200/ema.safetensors    # EMA weights
    state/step-00005200/optim.safetensors  # AdamW moments and step counts

Each save writes a new ``step-XXXXXXXX/`` folder (every file atomically), then replaces ``state.json``
atomically — the commit point — and only then deletes older step folders. A job killed at any moment
therefore leaves a ``state.json`` whose listed files exist and match their sha256. Loading verifies every
checksum and refuses a state without them. (Runs saved before this layout kept the three files directly in
``state/``; such a state loads as long as its ``state.json`` lists their checksums.)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from jetviz.checkpoints import sha256_file, write_json_atomic

STATE_FILES = ("model", "ema", "optim")  # the tensor files of a state, each "<name>.safetensors"


def state_dir(run: str | os.PathLike) -> Path:
    return Path(run) / "state"


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``tensors`` as safetensors to ``path`` via a temporary file and a rename."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save(run: str | os.PathLike, step: int, tensors: dict[str, dict[str, torch.Tensor]], info: dict) -> Path:
    """Save one state (``tensors[name]`` for every name in :data:`STATE_FILES`) plus ``info`` in state.json."""
    missing = set(STATE_FILES) - set(tensors)
    if missing:
        raise ValueError(f"a run state needs tensors for {sorted(missing)}")
    st = state_dir(run)
    gen = f"step-{step:08d}"
    d = st / gen
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in STATE_FILES:
        atomic_save_tensors(tensors[name], d / f"{name}.safetensors")
        files[f"{gen}/{name}.safetensors"] = sha256_file(d / f"{name}.safetensors")
    out = write_json_atomic(st / "state.json", {**info, "step": step, "files": files})
    for old in st.iterdir():  # superseded states (older step folders, the legacy flat files)
        if old.is_dir() and old.name.startswith("step-") and old.name != gen:
            shutil.rmtree(old, ignore_errors=True)
        elif old.is_file() and old.name in {f"{n}.safetensors" for n in STATE_FILES}:
            old.unlink()
    return out


def read_info(run: str | os.PathLike) -> dict:
    """``state.json`` of ``run`` (raises ``ValueError`` if it is missing or not JSON)."""
    path = state_dir(run) / "state.json"
    if not path.is_file():
        raise ValueError(f"{run} has no saved state ({path} is missing)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def files(run: str | os.PathLike, info: dict | None = None) -> dict[str, Path]:
    """``{name: path}`` of the state's tensor files, checksums verified against state.json."""
    info = read_info(run) if info is None else info
    recorded = info.get("files")
    if not recorded:
        raise ValueError(f"{state_dir(run) / 'state.json'} records no checksums of the state files; "
                         "refusing to resume from unverifiable weights (start a new --run)")
    st, out = state_dir(run), {}
    for rel, digest in recorded.items():
        name = Path(rel).name.removesuffix(".safetensors")
        p = st / rel
        if name not in STATE_FILES or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"{st / 'state.json'} lists an unexpected file {rel!r}")
        if not p.is_file():
            raise ValueError(f"{run}: state file {rel} listed in state.json is missing")
        if sha256_file(p) != digest:
            raise ValueError(f"{run}: checksum mismatch for state file {rel} (changed or corrupt since it was "
                             "saved); restore it or start a new --run")
        out[name] = p
    missing = set(STATE_FILES) - set(out)
    if missing:
        raise ValueError(f"{st / 'state.json'} lists no {sorted(missing)} file(s)")
    return out


def load(run: str | os.PathLike) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """(state.json contents, ``{name: tensors}``) of ``run``'s last saved state, checksums verified."""
    from safetensors.torch import load_file

    info = read_info(run)
    return info, {name: load_file(str(p)) for name, p in files(run, info).items()}
