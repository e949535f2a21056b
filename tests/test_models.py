"""Spec for jetviz.models: padding, config validation, preconditioning formulas, float timesteps."""

from __future__ import annotations

import json
import math

import pytest
import torch
from diffusers import UNet2DModel

from jetviz.models import (
    C_NOISE_SCALE,
    ConsistencyFunction,
    EDMDenoiser,
    JetUNet,
    UNetConfig,
    build_unet,
    c_noise,
    count_parameters,
    padded_size,
)

torch.set_num_threads(1)
TINY = UNetConfig(block_out_channels=(8, 16, 16))


@pytest.fixture(scope="module")
def net() -> JetUNet:
    torch.manual_seed(0)  # weight init only; never used for sampling
    return JetUNet(TINY).eval()


def _batch(b: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, 25, 25, generator=g)
    labels = torch.arange(b) % 5
    return x, labels


@pytest.mark.parametrize(("size", "levels", "want"), [(25, 1, 25), (25, 2, 26), (25, 3, 28), (25, 4, 32),
                                                      (24, 3, 24), (28, 3, 28), (1, 3, 4)])
def test_padded_size_values(size, levels, want):
    assert padded_size(size, levels) == want


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_padded_size_is_what_unet2dmodel_accepts(levels):
    cfg = UNetConfig(block_out_channels=(8,) * levels)
    unet = build_unet(cfg)
    p = padded_size(25, levels)
    t, y = torch.zeros(1), torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        assert unet(torch.zeros(1, 1, p, p), t, class_labels=y).sample.shape == (1, 1, p, p)
        with pytest.raises(RuntimeError):  # one pixel short of the padded size breaks the skip connections
            unet(torch.zeros(1, 1, p - 1, p - 1), t, class_labels=y)


@pytest.mark.parametrize("cfg", [TINY, UNetConfig(block_out_channels=(8, 8, 8, 8)),
                                 UNetConfig(block_out_channels=(8, 16, 16), attention=True, layers_per_block=2)])
def test_jetunet_pads_and_crops_to_25(cfg):
    torch.manual_seed(0)
    model = JetUNet(cfg)
    x, y = _batch(2)
    out = model(x, torch.tensor([0.5, -700.0]), y)
    assert out.shape == (2, 1, 25, 25)
    out.sum().backward()  # gradients flow through pad and crop
    assert model.unet.conv_in.weight.grad is not None
    assert model.unet.config.sample_size == cfg.padded_size


def test_pad_offsets_centre_the_jet(net):
    assert (net._lo, net._hi) == (1, 2)  # 25 -> 28: jet axis pixel 12 -> 13, the centre of 28 is 13.5


def test_jetunet_uses_float_timesteps(net):
    x, y = _batch(2)
    with torch.no_grad():
        a = net(x, torch.full((2,), 0.7), y)
        b = net(x, torch.full((2,), 0.75), y)
        scalar = net(x, torch.tensor(0.7), y)
    assert not torch.allclose(a, b)
    assert torch.equal(a, scalar)  # a 0-dim tensor broadcasts to (B,)


def test_jetunet_rejects_bad_inputs(net):
    x, y = _batch(2)
    with pytest.raises(ValueError, match="float tensor"):
        net(x, 0.7, y)  # a Python float would be cast to int by UNet2DModel
    with pytest.raises(ValueError, match="float tensor"):
        net(x, torch.tensor([1, 2]), y)
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(2, 1, 28, 28), torch.zeros(2), y)
    with pytest.raises(ValueError, match="class_labels"):
        net(x, torch.zeros(2), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("kwargs", [dict(block_out_channels=()), dict(block_out_channels=(8, 0)),
                                    dict(block_out_channels=(8.0, 16)), dict(layers_per_block=0),
                                    dict(dropout=1.0), dict(num_classes=0), dict(image_size=0),
                                    dict(block_out_channels=(8, 12), attention=True)])
def test_invalid_config_raises(kwargs):
    with pytest.raises(ValueError):
        UNetConfig(**kwargs)


def test_config_dict_round_trip_and_groups():
    cfg = UNetConfig(block_out_channels=(12, 24), attention=False, dropout=0.1)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert UNetConfig.from_dict(d) == cfg
    assert cfg.norm_num_groups == 4 and UNetConfig().norm_num_groups == 8
    assert UNetConfig(block_out_channels=[8, 16]).block_out_channels == (8, 16)
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({"width": 3})


def test_from_unet_round_trip(tmp_path, monkeypatch, net):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    net.unet.save_pretrained(tmp_path)
    loaded = JetUNet.from_unet(UNet2DModel.from_pretrained(tmp_path)).eval()
    assert loaded.cfg == net.cfg
    x, y = _batch(2)
    with torch.no_grad():
        assert torch.equal(loaded(x, torch.full((2,), 3.0), y), net(x, torch.full((2,), 3.0), y))
    with pytest.raises(ValueError, match="image_size"):
        JetUNet.from_unet(net.unet, image_size=20)
    foreign = UNet2DModel(in_channels=3, out_channels=3, block_out_channels=(8, 8), norm_num_groups=4,
                          down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    with pytest.raises(ValueError, match="build_unet"):
        JetUNet.from_unet(foreign)


@pytest.mark.parametrize("sigma", [0.002, 0.5, 3.0, 80.0])
def test_edm_coefficients_match_table_1(net, sigma):
    sd = 0.4
    c_skip, c_out, c_in = EDMDenoiser(net, sigma_data=sd).coefficients(torch.tensor(sigma, dtype=torch.float64))
    assert math.isclose(c_skip, sd**2 / (sigma**2 + sd**2), rel_tol=1e-12)
    assert math.isclose(c_out, sigma * sd / math.sqrt(sigma**2 + sd**2), rel_tol=1e-12)
    assert math.isclose(c_in, 1 / math.sqrt(sigma**2 + sd**2), rel_tol=1e-12)


def test_edm_denoiser_composition_and_score(net):
    d = EDMDenoiser(net, sigma_data=0.5)
    x, y = _batch(3)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    with torch.no_grad():
        out = d(x, sigma, y)
        s4 = sigma.reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in = 0.25 / (s4**2 + 0.25), s4 * 0.5 / (s4**2 + 0.25).sqrt(), 1 / (s4**2 + 0.25).sqrt()
        manual = c_skip * x + c_out * net(c_in * x, C_NOISE_SCALE * sigma.log(), y)
        torch.testing.assert_close(out, manual)
        torch.testing.assert_close(d.score(x, sigma, y), (out - x) / s4**2)
        assert torch.equal(d(x, 0.7, y), d(x, torch.full((3,), 0.7), y))  # float σ broadcasts
        assert not torch.allclose(d(x, 0.7, y), d(x, 0.75, y))  # σ reaches the UNet as a float
    assert torch.allclose(c_noise(torch.tensor(math.e)), torch.tensor(250.0))


@pytest.mark.parametrize("sigma", [0.002, 0.01, 1.0, 80.0])
def test_consistency_coefficients(net, sigma):
    sd, smin = 0.5, 0.002
    c_skip, c_out, c_in = ConsistencyFunction(net, sd, smin).coefficients(torch.tensor(sigma, dtype=torch.float64))
    assert math.isclose(c_skip, sd**2 / ((sigma - smin) ** 2 + sd**2), rel_tol=1e-12)
    assert math.isclose(c_out, sd * (sigma - smin) / math.sqrt(sd**2 + sigma**2), rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(c_in, 1 / math.sqrt(sigma**2 + sd**2), rel_tol=1e-12)


def test_consistency_boundary_condition_is_exact(net):
    f = ConsistencyFunction(net, sigma_data=0.5, sigma_min=0.002)
    x, y = _batch(4, seed=1)
    with torch.no_grad():
        for sigma in (0.002, torch.tensor(0.002), torch.full((4,), 0.002), torch.full((4,), 0.002, dtype=torch.float64)):
            assert torch.equal(f(x, sigma, y), x)
        assert not torch.allclose(f(x, 0.7, y), f(x, 0.75, y))
        assert not torch.allclose(f(x, 0.01, y), x)


def test_wrappers_reject_bad_sigma(net):
    x, y = _batch(2)
    for wrapper in (EDMDenoiser(net), ConsistencyFunction(net)):
        with pytest.raises(ValueError, match="> 0"):
            wrapper(x, 0.0, y)
        with pytest.raises(ValueError, match="shape"):
            wrapper(x, torch.ones(3), y)
    with pytest.raises(ValueError):
        EDMDenoiser(net, sigma_data=0.0)


def test_count_parameters(net):
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())
    frozen = JetUNet(TINY)
    frozen.unet.conv_in.weight.requires_grad_(False)
    assert count_parameters(frozen, trainable_only=True) == count_parameters(frozen) - frozen.unet.conv_in.weight.numel()
