"""Frozen configuration shared by every jetviz module: jet classes, the image grid, default paths.

Feature orders (JetNet conventions, used everywhere in jetviz):

* ``particle_features``: float32 ``[N, 30, 4]`` = (η_rel, φ_rel, p_T,rel, mask), p_T-ordered, zero-padded.
  η_rel = η_particle − η_jet, φ_rel = φ_particle − φ_jet wrapped to (−π, π], p_T,rel = p_T / p_T,jet.
* ``jet_features``: float32 ``[N, 4]`` = (p_T [GeV], η, mass [GeV], n_particles).
* images: float32 ``[N, size, size]`` indexed ``[jet, η bin, φ bin]`` (x axis φ_rel, y axis η_rel), each pixel
  the summed p_T,rel of the particles inside it ("physics space").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES: tuple[str, ...] = ("g", "q", "t", "w", "z")
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}
CLASS_NAMES: dict[str, str] = {
    "g": "gluon",
    "q": "light quark",
    "t": "top quark",
    "w": "W boson",
    "z": "Z boson",
}
NUM_PARTICLES = 30  # JetNet's 30 hardest constituents

PARTICLE_FEATURES = ("eta_rel", "phi_rel", "pt_rel", "mask")
JET_FEATURES = ("pt", "eta", "mass", "num_particles")

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("JETVIZ_DATA", REPO_ROOT / "data"))
CHECKPOINT_DIR = Path(os.environ.get("JETVIZ_CHECKPOINTS", REPO_ROOT / "checkpoints"))
# the generator `python -m jetviz sample` and the app use by default; chosen by measurement (README, Results)
DEFAULT_GENERATOR = "cm-ct-small"
GENERATOR_FALLBACKS = ("cm-ct", "cm-cd")  # the app's next choices when the default is absent


def check_class(jet_type: str) -> str:
    """Return ``jet_type`` if it is one of :data:`CLASSES`, else raise a ``ValueError`` naming the choices."""
    if jet_type not in CLASS_INDEX:
        raise ValueError(f"unknown jet class {jet_type!r}; choose one of {', '.join(CLASSES)}")
    return jet_type


@dataclass(frozen=True)
class ImageGrid:
    """A square pixel grid in the (φ_rel, η_rel) plane.

    ``eta_range`` and ``phi_range`` are the [lo, hi] edges of the window (radians for φ, units of
    pseudorapidity for η); particles outside the window are dropped when pixelising (see
    :func:`jetviz.images.to_images`).
    """

    size: int = 25
    eta_range: tuple[float, float] = (-0.8, 0.8)
    phi_range: tuple[float, float] = (-0.8, 0.8)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"image size must be >= 1, got {self.size}")
        for name, (lo, hi) in (("eta_range", self.eta_range), ("phi_range", self.phi_range)):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"{name} must be finite with lo < hi, got {(lo, hi)}")

    @property
    def eta_edges(self) -> np.ndarray:
        return np.linspace(*self.eta_range, self.size + 1)

    @property
    def phi_edges(self) -> np.ndarray:
        return np.linspace(*self.phi_range, self.size + 1)

    @property
    def eta_centres(self) -> np.ndarray:
        e = self.eta_edges
        return 0.5 * (e[1:] + e[:-1])

    @property
    def phi_centres(self) -> np.ndarray:
        e = self.phi_edges
        return 0.5 * (e[1:] + e[:-1])

    def to_dict(self) -> dict:
        return {"size": self.size, "eta_range": list(self.eta_range), "phi_range": list(self.phi_range)}

    @classmethod
    def from_dict(cls, d: dict) -> ImageGrid:
        return cls(size=int(d["size"]), eta_range=tuple(map(float, d["eta_range"])),
                   phi_range=tuple(map(float, d["phi_range"])))


DEFAULT_GRID = ImageGrid()
