"""Jet observables from point clouds and images (JetNet conventions, massless constituents).

Point clouds are ``[N, P, 4]`` arrays of (η_rel, φ_rel, p_T,rel, mask) (a 3-feature array without the mask is
also accepted: a particle is then real when p_T,rel > 0). Because the invariant mass of massless particles is
unchanged by a common shift in η (a boost along the beam) or in φ (a rotation), the mass of the summed
(p_T,rel, η_rel, φ_rel) four-vectors is exactly m_jet / p_T,jet: jetviz calls this the *relative mass* m/p_T,
the quantity JetNet's W1M compares.
"""

from __future__ import annotations

import numpy as np

from jetviz.config import DEFAULT_GRID, ImageGrid


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap azimuthal angles to (−π, π] (returns a new array)."""
    phi = np.asarray(phi, dtype=np.float64)
    return np.pi - np.mod(np.pi - phi, 2.0 * np.pi)


def _split(pf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(η, φ, p_T) of real particles, float64, with p_T zeroed where the mask is off."""
    pf = np.asarray(pf)
    if pf.ndim != 3 or pf.shape[-1] < 3:
        raise ValueError(f"point clouds must have shape [N, P, 3 or 4], got {pf.shape}")
    eta, phi, pt = (pf[..., i].astype(np.float64) for i in range(3))
    mask = pf[..., 3] > 0 if pf.shape[-1] >= 4 else pt > 0
    return eta, phi, np.where(mask, pt, 0.0)


def _mass_from_sums(e: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    m2 = e**2 - px**2 - py**2 - pz**2
    return np.sqrt(np.clip(m2, 0.0, None))


def summed_four_vector(pf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(E, p_x, p_y, p_z) of the sum of massless constituents, each ``[N]``, in units of p_T,jet."""
    eta, phi, pt = _split(pf)
    return (
        (pt * np.cosh(eta)).sum(-1),
        (pt * np.cos(phi)).sum(-1),
        (pt * np.sin(phi)).sum(-1),
        (pt * np.sinh(eta)).sum(-1),
    )


def jet_mass_rel(pf: np.ndarray) -> np.ndarray:
    """Relative jet mass m/p_T ``[N]`` of point clouds ``[N, P, 3|4]`` (massless constituents)."""
    return _mass_from_sums(*summed_four_vector(pf))


def jet_pt_rel(pf: np.ndarray) -> np.ndarray:
    """Transverse momentum of the summed constituents over p_T,jet ``[N]`` (≈ 1 for a full jet)."""
    _, px, py, _ = summed_four_vector(pf)
    return np.hypot(px, py)


def multiplicity(pf: np.ndarray) -> np.ndarray:
    """Number of real particles per jet ``[N]`` (int)."""
    _, _, pt = _split(pf)
    return (pt > 0).sum(-1)


def jet_mass(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> float:
    """Invariant mass of one set of massless particles given in absolute (p_T [GeV], η, φ); result in GeV."""
    pt, eta, phi = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi))
    return float(
        _mass_from_sums(
            (pt * np.cosh(eta)).sum(), (pt * np.cos(phi)).sum(), (pt * np.sin(phi)).sum(), (pt * np.sinh(eta)).sum()
        )
    )


def image_mass_rel(images: np.ndarray, grid: ImageGrid = DEFAULT_GRID) -> np.ndarray:
    """Relative mass m/p_T ``[N]`` of images ``[N, size, size]`` (physics space): each pixel is a massless
    particle at the pixel centre carrying the pixel's p_T,rel (the seed paper's Algorithm 4)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1:] != (grid.size, grid.size):
        raise ValueError(f"images must have shape [N, {grid.size}, {grid.size}], got {images.shape}")
    eta = grid.eta_centres  # (size,) rows
    phi = grid.phi_centres  # (size,) columns
    e = np.einsum("nij,i->n", images, np.cosh(eta))
    pz = np.einsum("nij,i->n", images, np.sinh(eta))
    px = np.einsum("nij,j->n", images, np.cos(phi))
    py = np.einsum("nij,j->n", images, np.sin(phi))
    return _mass_from_sums(e, px, py, pz)


def image_multiplicity(images: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Number of pixels above ``threshold`` per image ``[N]``."""
    images = np.asarray(images)
    return (images.reshape(len(images), -1) > threshold).sum(-1)


def image_pt_sum(images: np.ndarray) -> np.ndarray:
    """Summed pixel p_T,rel per image ``[N]`` (≈ 1 minus what fell outside the window)."""
    images = np.asarray(images, dtype=np.float64)
    return images.reshape(len(images), -1).sum(-1)
