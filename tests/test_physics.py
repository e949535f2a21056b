from __future__ import annotations

import numpy as np
import pytest
from conftest import random_clouds

from jetviz.config import ImageGrid
from jetviz.physics import (
    image_mass_rel,
    jet_mass,
    jet_mass_rel,
    jet_pt_rel,
    multiplicity,
    wrap_phi,
)


def cloud(*particles):
    """[1, P, 4] from (eta, phi, pt) triples."""
    pf = np.zeros((1, 30, 4), np.float32)
    for i, (e, p, pt) in enumerate(particles):
        pf[0, i] = (e, p, pt, 1)
    return pf


def test_single_particle_has_zero_mass():
    assert jet_mass_rel(cloud((0.3, -0.2, 1.0)))[0] == pytest.approx(0.0, abs=1e-6)


def test_two_particles_known_mass():
    # two massless particles: m^2 = 2 pT1 pT2 (cosh Δη − cos Δφ)
    pt1, pt2, deta, dphi = 0.6, 0.4, 0.3, 0.2
    m_expected = np.sqrt(2 * pt1 * pt2 * (np.cosh(deta) - np.cos(dphi)))
    m = jet_mass_rel(cloud((0.1, 0.0, pt1), (0.1 + deta, dphi, pt2)))[0]
    assert m == pytest.approx(m_expected, rel=1e-5)
    # absolute version in GeV: back-to-back particles of 100 GeV at η = 0 give m = 200 GeV
    assert jet_mass([100, 100], [0, 0], [0, np.pi]) == pytest.approx(200.0)


def test_mass_invariant_under_eta_shift_and_phi_rotation():
    pf = random_clouds(20, np.random.default_rng(0))
    shifted = pf.copy()
    shifted[..., 0] += 1.3 * pf[..., 3]
    shifted[..., 1] = wrap_phi(pf[..., 1] + 2.9) * pf[..., 3]
    np.testing.assert_allclose(jet_mass_rel(shifted), jet_mass_rel(pf), rtol=1e-4, atol=1e-6)


def test_mask_is_respected():
    pf = cloud((0.0, 0.0, 0.5), (0.2, 0.1, 0.5))
    pf[0, 1, 3] = 0  # masked out: a one-particle jet
    assert jet_mass_rel(pf)[0] == pytest.approx(0.0, abs=1e-6)
    assert multiplicity(pf)[0] == 1


def test_pt_rel_of_collinear_particles_is_sum():
    assert jet_pt_rel(cloud((0.1, 0.1, 0.3), (0.1, 0.1, 0.7)))[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "phi,expected",
    [(0.0, 0.0), (np.pi, np.pi), (-np.pi, np.pi), (3 * np.pi, np.pi), (2 * np.pi + 0.1, 0.1), (-3.3, 2 * np.pi - 3.3)],
)
def test_wrap_phi(phi, expected):
    w = wrap_phi(np.array([phi]))[0]
    assert w == pytest.approx(expected)
    assert -np.pi < w <= np.pi


def test_image_mass_of_one_pixel_is_zero_and_two_pixels_known():
    g = ImageGrid(size=5, eta_range=(-0.5, 0.5), phi_range=(-0.5, 0.5))
    im = np.zeros((1, 5, 5))
    im[0, 2, 2] = 1.0
    assert image_mass_rel(im, g)[0] == pytest.approx(0.0, abs=1e-7)
    im = np.zeros((1, 5, 5))
    im[0, 0, 2] = 0.5  # η = −0.4, φ = 0
    im[0, 4, 2] = 0.5  # η = +0.4, φ = 0
    expect = np.sqrt(2 * 0.25 * (np.cosh(0.8) - 1))
    assert image_mass_rel(im, g)[0] == pytest.approx(expect, rel=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        jet_mass_rel(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        image_mass_rel(np.zeros((2, 24, 24)))
