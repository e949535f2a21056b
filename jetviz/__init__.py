"""jetviz: diffusion and consistency models for jet images, compared with Pythia 8 simulation.

Quick use from a notebook::

    import jetviz
    gen = jetviz.load_generator("checkpoints/cm-ct")
    images = gen.sample("t", n=1000, steps=2, seed=0)   # [1000, 25, 25], physics space (p_T fractions)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_generator"]


def __getattr__(name: str):
    # Lazy: `import jetviz` stays cheap (no torch/diffusers) until a generator is asked for.
    if name == "load_generator":
        from jetviz.sampling import load_generator

        return load_generator
    raise AttributeError(f"module 'jetviz' has no attribute {name!r}")
