from __future__ import annotations

import numpy as np
import pytest
from conftest import random_clouds

from jetviz.config import DEFAULT_GRID, ImageGrid
from jetviz.images import (
    PixelScaling,
    to_images,
    to_model_space,
    to_physics_space,
    to_point_clouds,
    window_fraction,
)
from jetviz.physics import image_mass_rel, jet_mass_rel


def test_pixel_orientation_eta_rows_phi_columns():
    g = ImageGrid(size=5, eta_range=(-0.5, 0.5), phi_range=(-0.5, 0.5))
    pf = np.zeros((1, 30, 4), np.float32)
    pf[0, 0] = (0.45, -0.45, 1.0, 1)  # top η bin, first φ bin
    im = to_images(pf, g)
    assert im.shape == (1, 5, 5)
    assert im[0, 4, 0] == pytest.approx(1.0)
    assert im.sum() == pytest.approx(1.0)


def test_cloud_image_cloud_preserves_total_pt():
    rng = np.random.default_rng(1)
    pf = random_clouds(50, rng, spread=0.15)  # well inside the ±0.8 window
    assert window_fraction(pf).min() == pytest.approx(1.0)
    im = to_images(pf)
    np.testing.assert_allclose(im.sum((1, 2)), pf[..., 2].sum(1), rtol=1e-5)
    back = to_point_clouds(im)
    assert back.shape == (50, 30, 4)
    np.testing.assert_allclose(back[..., 2].sum(1), pf[..., 2].sum(1), rtol=1e-5)
    # p_T-ordered, mask consistent with padding
    assert np.all(np.diff(back[..., 2], axis=1) <= 0)
    assert np.array_equal(back[..., 3] > 0, back[..., 2] > 0)
    # the mass of the reconstructed cloud equals the mass computed directly from the image
    np.testing.assert_allclose(jet_mass_rel(back), image_mass_rel(im), rtol=1e-4, atol=1e-6)


def test_image_mass_tracks_true_mass():
    pf = random_clouds(200, np.random.default_rng(2), spread=0.2)
    m_true = jet_mass_rel(pf)
    m_img = image_mass_rel(to_images(pf))
    sel = m_true > 0.05  # one-particle jets have zero mass in both
    assert np.all(m_img[~sel] < 0.05)
    # pixel width 0.064: mass resolution should be a few per cent for these spreads
    assert np.median(np.abs(m_img[sel] - m_true[sel]) / m_true[sel]) < 0.05


def test_particles_outside_window_are_dropped():
    pf = np.zeros((1, 30, 4), np.float32)
    pf[0, 0] = (0.0, 0.0, 0.7, 1)
    pf[0, 1] = (0.0, 1.5, 0.3, 1)  # outside ±0.8
    assert to_images(pf).sum() == pytest.approx(0.7)
    assert window_fraction(pf)[0] == pytest.approx(0.7)


def test_edges_are_inclusive_of_upper_boundary():
    pf = np.zeros((1, 30, 4), np.float32)
    pf[0, 0] = (DEFAULT_GRID.eta_range[1], DEFAULT_GRID.phi_range[1], 1.0, 1)
    assert to_images(pf)[0, -1, -1] == pytest.approx(1.0)


def test_point_clouds_keep_hardest_pixels():
    im = np.zeros((1, 25, 25), np.float32)
    vals = np.linspace(0.01, 0.4, 40)
    im.reshape(-1)[:40] = vals
    pc = to_point_clouds(im, max_particles=30)
    np.testing.assert_allclose(pc[0, :, 2], np.sort(vals)[::-1][:30], rtol=1e-6)


def test_model_space_round_trip_and_non_negative():
    rng = np.random.default_rng(3)
    p = rng.exponential(0.05, size=(4, 25, 25)).clip(0, 1).astype(np.float32)
    p[p < 1e-3] = 0
    s = PixelScaling()
    x = to_model_space(p, s)
    assert x.min() >= -1 and x.max() <= 1
    assert np.all(x[p == 0] == -1)
    np.testing.assert_allclose(to_physics_space(x, s), p, rtol=1e-4, atol=1e-7)
    noisy = to_physics_space(x + rng.normal(0, 0.5, x.shape).astype(np.float32), s)
    assert noisy.min() >= 0
    assert np.all((noisy == 0) | (noisy >= s.floor))


def test_invalid_inputs():
    with pytest.raises(ValueError):
        to_images(np.zeros((2, 30)))
    with pytest.raises(ValueError):
        to_point_clouds(np.zeros((2, 10, 10)))
    with pytest.raises(ValueError):
        ImageGrid(size=0)
    with pytest.raises(ValueError):
        ImageGrid(eta_range=(0.5, -0.5))
    with pytest.raises(ValueError):
        PixelScaling(gamma=0)
