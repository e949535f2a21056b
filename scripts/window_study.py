"""Choose and document the image window: p_T containment and m/p_T fidelity per class.

    python scripts/window_study.py [--data DIR] [--half-widths 0.4,0.6,0.8,1.0]

For each class and window ±w (η and φ, 25×25 pixels) prints: the mean and 1st-percentile fraction of the
stored p_T inside the window, the share of jets with ≥ 99 % inside, and the bias (median of
m_image/m_true − 1) and resolution (half the 16–84 % spread of that ratio) of the image-derived m/p_T.
"""

from __future__ import annotations

import argparse

import numpy as np

from jetviz.config import CLASSES, ImageGrid
from jetviz.data import load_jets
from jetviz.images import to_images, window_fraction
from jetviz.physics import image_mass_rel, jet_mass_rel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--half-widths", default="0.4,0.6,0.8,1.0")
    a = ap.parse_args()
    print("| class | window | mean p_T inside | 1st pct | jets ≥ 99 % inside | m/p_T bias | m/p_T resolution |")
    print("|---|---|---|---|---|---|---|")
    for c in CLASSES:
        pf, _ = load_jets(c, a.data)
        m_true = jet_mass_rel(pf)
        for w in map(float, a.half_widths.split(",")):
            g = ImageGrid(25, (-w, w), (-w, w))
            frac = window_fraction(pf, g)
            r = image_mass_rel(to_images(pf, g), g) / np.where(m_true > 0, m_true, np.nan)
            r = r[np.isfinite(r)]
            q16, q50, q84 = np.percentile(r, [16, 50, 84])
            print(f"| {c} | ±{w:.1f} | {frac.mean():.4f} | {np.percentile(frac, 1):.4f} | "
                  f"{(frac >= 0.99).mean():.3f} | {q50 - 1:+.4f} | {(q84 - q16) / 2:.4f} |")
    print(f"\n(N = {len(pf)} jets per class)")


if __name__ == "__main__":
    main()
