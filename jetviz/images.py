"""Point cloud ↔ jet image, and the map between physics space and model space.

*Physics space*: images ``[N, size, size]`` float32 indexed ``[jet, η bin, φ bin]``; each pixel is the summed
p_T,rel (= p_T / p_T,jet) of the particles inside it, so pixels are ≥ 0 and a full jet sums to ≈ 1.

*Model space*: what the networks see, ``x = 2·p^γ − 1`` (γ = ½ by default). The power compresses the heavy
tail (the leading pixel often holds 30–80 % of the jet) and lifts the soft pixels, and the affine map puts the
empty background at exactly −1 and a pixel holding the whole jet at +1. The inverse clips x to [−1, 1] and
sets every pixel below ``floor`` (in p_T,rel) to zero, so generated images are non-negative and as sparse as
real ones rather than covered in faint noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from jetviz.config import DEFAULT_GRID, NUM_PARTICLES, ImageGrid


def _check_clouds(pf: np.ndarray) -> np.ndarray:
    pf = np.asarray(pf)
    if pf.ndim != 3 or pf.shape[-1] < 3:
        raise ValueError(f"point clouds must have shape [N, P, 3 or 4], got {pf.shape}")
    return pf


def pixel_indices(pf: np.ndarray, grid: ImageGrid = DEFAULT_GRID) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """η-bin and φ-bin index of every particle ``[N, P]`` and a boolean ``[N, P]`` of real particles inside
    the window (bins are half-open [lo, hi), the last bin also takes its upper edge)."""
    pf = _check_clouds(pf)
    eta, phi, pt = pf[..., 0], pf[..., 1], pf[..., 2]
    real = (pf[..., 3] > 0) if pf.shape[-1] >= 4 else (pt > 0)
    (elo, ehi), (plo, phi_hi) = grid.eta_range, grid.phi_range
    ie = np.floor((eta - elo) / (ehi - elo) * grid.size).astype(np.int64)
    ip = np.floor((phi - plo) / (phi_hi - plo) * grid.size).astype(np.int64)
    ie = np.where(eta == ehi, grid.size - 1, ie)
    ip = np.where(phi == phi_hi, grid.size - 1, ip)
    inside = real & (ie >= 0) & (ie < grid.size) & (ip >= 0) & (ip < grid.size)
    return ie, ip, inside


def to_images(pf: np.ndarray, grid: ImageGrid = DEFAULT_GRID) -> np.ndarray:
    """Pixelise point clouds ``[N, P, 3|4]`` (η_rel, φ_rel, p_T,rel[, mask]) into images ``[N, size, size]``
    (physics space, float32). Particles outside the window are dropped: see :func:`window_fraction`."""
    pf = _check_clouds(pf)
    n, s = len(pf), grid.size
    ie, ip, inside = pixel_indices(pf, grid)
    jet = np.broadcast_to(np.arange(n)[:, None], ie.shape)
    flat = (jet * s * s + ie * s + ip)[inside]
    w = pf[..., 2][inside].astype(np.float64)
    out = np.bincount(flat, weights=w, minlength=n * s * s)
    return out.reshape(n, s, s).astype(np.float32)


def window_fraction(pf: np.ndarray, grid: ImageGrid = DEFAULT_GRID) -> np.ndarray:
    """Fraction of each jet's stored p_T,rel that falls inside the image window ``[N]``."""
    pf = _check_clouds(pf)
    _, _, inside = pixel_indices(pf, grid)
    real = (pf[..., 3] > 0) if pf.shape[-1] >= 4 else (pf[..., 2] > 0)
    pt = pf[..., 2].astype(np.float64)
    tot = np.where(real, pt, 0.0).sum(-1)
    return np.where(inside, pt, 0.0).sum(-1) / np.where(tot > 0, tot, 1.0)


def to_point_clouds(
    images: np.ndarray, grid: ImageGrid = DEFAULT_GRID, max_particles: int = NUM_PARTICLES
) -> np.ndarray:
    """Images ``[N, size, size]`` (physics space) → JetNet point clouds ``[N, max_particles, 4]`` float32.

    Every non-zero pixel becomes a massless particle at the pixel centre carrying the pixel's p_T,rel (the seed
    paper's Algorithm 4); the ``max_particles`` hardest are kept, p_T-ordered, zero-padded, mask = 1 for real
    particles. Pixels hold no more than one particle's worth of information, so multiplicities count pixels.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (grid.size, grid.size):
        raise ValueError(f"images must have shape [N, {grid.size}, {grid.size}], got {images.shape}")
    if max_particles < 1:
        raise ValueError(f"max_particles must be >= 1, got {max_particles}")
    n, s = len(images), grid.size
    flat = images.reshape(n, s * s).astype(np.float32)
    k = min(max_particles, s * s)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]  # (N, k) hardest first
    pt = np.take_along_axis(flat, order, axis=1)
    real = pt > 0
    eta = grid.eta_centres[order // s]
    phi = grid.phi_centres[order % s]
    out = np.zeros((n, max_particles, 4), dtype=np.float32)
    out[:, :k, 0] = np.where(real, eta, 0.0)
    out[:, :k, 1] = np.where(real, phi, 0.0)
    out[:, :k, 2] = np.where(real, pt, 0.0)
    out[:, :k, 3] = real
    return out


@dataclass(frozen=True)
class PixelScaling:
    """Physics space ↔ model space: ``x = 2·p^gamma − 1``; the inverse zeroes pixels below ``floor``."""

    gamma: float = 0.5
    floor: float = 1e-3  # p_T,rel below which a generated pixel is set to zero (see docs/README)

    def __post_init__(self) -> None:
        if not (0 < self.gamma <= 1):
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not (0 <= self.floor < 1):
            raise ValueError(f"floor must be in [0, 1), got {self.floor}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PixelScaling:
        return cls(gamma=float(d["gamma"]), floor=float(d["floor"]))


def to_model_space(images: np.ndarray, scaling: PixelScaling = PixelScaling()) -> np.ndarray:
    """Physics-space images (p_T,rel ≥ 0) → model space in [−1, 1] (float32, same shape)."""
    p = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0)
    return (2.0 * p**scaling.gamma - 1.0).astype(np.float32)


def to_physics_space(x: np.ndarray, scaling: PixelScaling = PixelScaling()) -> np.ndarray:
    """Model-space images → physics space: non-negative p_T,rel, pixels below ``scaling.floor`` zeroed."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    p = ((x + 1.0) / 2.0) ** (1.0 / scaling.gamma)
    p[p < scaling.floor] = 0.0
    return p.astype(np.float32)
