from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy may already be loaded: see the fixture below

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    # One BLAS thread: on a loaded 2-core machine OpenBLAS with 2 threads made a 625×625 eigh 60× slower
    # (4.2 s vs 0.065 s), which dominated the evaluate tests.
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
        torch.set_flush_denormal(True)
    except ImportError:
        pass
    yield
    limits.restore_original_limits()


def random_clouds(n: int, rng: np.random.Generator, n_max: int = 30, spread: float = 0.3) -> np.ndarray:
    """Random JetNet-like point clouds [n, 30, 4]: p_T-ordered, zero-padded, p_T,rel summing to 1."""
    pf = np.zeros((n, 30, 4), dtype=np.float32)
    for i in range(n):
        k = int(rng.integers(1, n_max + 1))
        pt = np.sort(rng.exponential(size=k))[::-1]
        pf[i, :k, 0] = rng.normal(0, spread, k)
        pf[i, :k, 1] = rng.normal(0, spread, k)
        pf[i, :k, 2] = pt / pt.sum()
        pf[i, :k, 3] = 1
    return pf
