"""Tiny seeded datasets and models shared by the generator tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import random_clouds

from jetviz import data
from jetviz.config import CLASSES
from jetviz.models import UNetConfig

TINY_UNET = UNetConfig(block_out_channels=(8, 16, 16))


def tiny_dataset(folder: Path, n: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        pf = random_clouds(n, rng, spread=0.2)
        jf = np.stack([np.full(n, 1000.0), np.zeros(n), np.full(n, 50.0), pf[..., 3].sum(1)], 1)
        data.write_jetnet(folder / f"{c}.hdf5", pf, jf)
    return folder
