"""Spec for jetviz.schedulers: grids, save/load round trips, error paths, analytic golden loops."""

from __future__ import annotations

import math

import pytest
import torch

from jetviz.schedulers import ConsistencyScheduler, SchedulerOutput, VESDEScheduler, karras_sigmas

torch.set_num_threads(1)
SHAPE = (4, 1, 25, 25)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x0() -> torch.Tensor:
    """A fixed sparse model-space 'jet image': background −1, a few lit pixels."""
    x0 = torch.full(SHAPE, -1.0)
    x0[:, 0, 12, 12], x0[:, 0, 11, 13], x0[:, 0, 14, 10] = 0.9, 0.1, -0.5
    return x0


def _public(config) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _run_ve(sched: VESDEScheduler, denoise, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """The sampling loop of the VESDEScheduler docstring; ``denoise(x, σ)`` plays D(x; σ)."""
    n = len(sched.timesteps)
    for i, sigma in enumerate(sched.timesteps):
        if sched.config.sampler == "pc":
            for _ in range(sched.config.n_corrector):
                x = sched.step_correct(denoise(x, sigma), i, x, g).prev_sample
            x = sched.step(denoise(x, sigma), i, x, g).prev_sample
        else:
            out = sched.step(denoise(x, sigma), i, x)
            if i < n - 1:
                out = sched.heun_correct(denoise(out.prev_sample, sched.sigmas[i + 1]), i, x, out)
            x = out.prev_sample
    return x


# ---------------------------------------------------------------- grids

@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_ve_grid_geometric_with_endpoints(n):
    s = VESDEScheduler(sigma_min=0.01, sigma_max=50.0)
    s.set_timesteps(n)
    assert len(s.sigmas) == n + 1 and torch.equal(s.timesteps, s.sigmas[:-1])
    assert s.sigmas[0] == torch.tensor(50.0) and s.sigmas[-1] == 0
    assert bool((s.sigmas[1:] < s.sigmas[:-1]).all())
    if n > 1:
        assert s.timesteps[-1] == torch.tensor(0.01)
        ratios = s.timesteps[1:] / s.timesteps[:-1]
        torch.testing.assert_close(ratios, torch.full_like(ratios, (0.01 / 50) ** (1 / (n - 1))))
    assert s.init_noise_sigma == 50.0


def test_karras_grid_ascending_with_exact_endpoints():
    sig = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert sig.dtype == torch.float32 and sig.shape == (18,)
    assert sig[0] == torch.tensor(0.002) and sig[-1] == torch.tensor(80.0)
    assert bool((sig[1:] > sig[:-1]).all())
    i, n = 5, 18  # the closed form at an interior point
    want = (0.002 ** (1 / 7) + i / (n - 1) * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7
    assert math.isclose(float(sig[i]), want, rel_tol=1e-6)
    for bad in (1, 0, 2.0):
        with pytest.raises(ValueError):
            karras_sigmas(bad)


def test_consistency_timesteps():
    s = ConsistencyScheduler()
    s.set_timesteps(1)
    assert s.timesteps.tolist() == [80.0] and math.isclose(float(s.sigmas[-1]), 0.002, rel_tol=1e-6)
    s.set_timesteps(2)  # default: the 3-point Karras grid without σ_min
    torch.testing.assert_close(s.timesteps, karras_sigmas(3).flip(0)[:2])
    assert 2.4 < float(s.timesteps[1]) < 2.6
    s.set_timesteps(3, sigmas=[10.0, 1.0])
    torch.testing.assert_close(s.sigmas, torch.tensor([80.0, 10.0, 1.0, 0.002]))
    for bad in ([10.0], [1.0, 10.0], [90.0, 1.0], [10.0, 0.001]):
        with pytest.raises(ValueError):
            s.set_timesteps(3, sigmas=bad)


@pytest.mark.parametrize("cls", [VESDEScheduler, ConsistencyScheduler])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_invalid_step_counts_raise(cls, bad):
    with pytest.raises(ValueError, match="num_inference_steps"):
        cls().set_timesteps(bad)


@pytest.mark.parametrize("kwargs", [dict(sigma_min=0.0), dict(sigma_min=5.0, sigma_max=1.0), dict(snr=0.0),
                                    dict(n_corrector=-1), dict(sampler="ddim")])
def test_invalid_ve_config_raises(kwargs):
    with pytest.raises(ValueError):
        VESDEScheduler(**kwargs)


def test_step_errors():
    s = VESDEScheduler()
    x = torch.zeros(SHAPE)
    with pytest.raises(ValueError, match="set_timesteps"):
        s.step(x, 0, x, _gen())
    s.set_timesteps(3)
    with pytest.raises(ValueError, match="index"):
        s.step(x, 3, x, _gen())
    with pytest.raises(ValueError, match="timesteps"):
        s.step(x, 1.234, x, _gen())
    with pytest.raises(ValueError, match="generator"):
        s.step(x, 0, x)  # never falls back to the global RNG
    out = s.step(x, float(s.timesteps[1]), x, _gen())  # a σ value works as well as an index
    assert isinstance(out, SchedulerOutput)
    with pytest.raises(ValueError, match="last step"):
        ode = VESDEScheduler(sampler="ode")
        ode.set_timesteps(3)
        ode.heun_correct(x, 2, x, ode.step(x, 2, x))


# ---------------------------------------------------------------- save / load

@pytest.mark.parametrize("sampler", ["pc", "ode"])
def test_ve_save_load_same_config_and_step(tmp_path, monkeypatch, sampler):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = VESDEScheduler(sigma_max=40.0, snr=0.2, n_corrector=2, sampler=sampler)
    a.save_pretrained(tmp_path)
    assert (tmp_path / "scheduler_config.json").exists()
    b = VESDEScheduler.from_pretrained(tmp_path)
    assert _public(a.config) == _public(b.config)
    x, d = torch.randn(SHAPE, generator=_gen(1)) * 40, _x0()
    for s in (a, b):
        s.set_timesteps(6)
    torch.testing.assert_close(a.sigmas, b.sigmas, rtol=0, atol=0)
    for i in (0, 4, 5):
        sa, sb = a.step(d, i, x, _gen(7)), b.step(d, i, x, _gen(7))
        assert torch.equal(sa.prev_sample, sb.prev_sample) and torch.equal(sa.denoised, sb.denoised)
    assert torch.equal(a.step_correct(d, 2, x, _gen(3)).prev_sample, b.step_correct(d, 2, x, _gen(3)).prev_sample)


def test_consistency_save_load_same_config_and_step(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = ConsistencyScheduler(sigma_max=40.0, rho=5.0, sigma_data=0.3)
    a.save_pretrained(tmp_path)
    b = ConsistencyScheduler.from_pretrained(tmp_path)
    assert _public(a.config) == _public(b.config) and b.config.sigma_data == 0.3
    for s in (a, b):
        s.set_timesteps(4)
    x0 = _x0()
    assert torch.equal(a.step(x0, 1, x0, _gen(5)).prev_sample, b.step(x0, 1, x0, _gen(5)).prev_sample)
    torch.testing.assert_close(a.karras_sigmas(10), b.karras_sigmas(10), rtol=0, atol=0)


# ---------------------------------------------------------------- analytic golden loops

@pytest.mark.parametrize("n", [1, 2, 5])
def test_consistency_sampling_with_oracle_returns_x0(n):
    s = ConsistencyScheduler()
    s.set_timesteps(n)
    x0, g = _x0(), _gen(0)
    x = torch.randn(SHAPE, generator=g) * s.init_noise_sigma
    for i, _sigma in enumerate(s.timesteps):
        out = s.step(x0.clone(), i, x, g)
        if i < n - 1:  # re-noised to σ_{i+1}: x = x0 + sqrt(σ_{i+1}² − σ_min²) z
            sigma_next = float(s.sigmas[i + 1])
            std = ((out.prev_sample - x0).std() / math.sqrt(sigma_next**2 - 0.002**2)).item()
            assert 0.9 < std < 1.1
        x = out.prev_sample
    assert torch.equal(x, x0)


@pytest.mark.parametrize("n", [1, 3, 18])
def test_ve_ode_with_oracle_converges_to_x0(n):
    s = VESDEScheduler(sampler="ode")
    s.set_timesteps(n)
    x0 = _x0()
    x = torch.randn(SHAPE, generator=_gen(2)) * s.init_noise_sigma
    out = _run_ve(s, lambda x, sigma: x0.clone(), x, None)  # deterministic: no generator needed
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)
    assert s.model_evaluations() == 2 * n - 1


def test_ve_pc_with_oracle_ends_on_x0():
    s = VESDEScheduler(sampler="pc", n_corrector=1)
    s.set_timesteps(10)
    x0, g = _x0(), _gen(3)
    x = torch.randn(SHAPE, generator=g) * s.init_noise_sigma
    assert torch.equal(_run_ve(s, lambda x, sigma: x0.clone(), x, g), x0)  # the last step returns D
    assert s.model_evaluations() == 20


def _gaussian_denoiser(mu: float, std: float):
    """Exact D(x; σ) = E[x0 | x_σ] for data x0 ~ N(mu, std²) per pixel."""
    return lambda x, sigma: mu + std**2 / (std**2 + float(sigma) ** 2) * (x - mu)


def test_ve_ode_heun_maps_prior_to_gaussian_data_second_order():
    """For Gaussian data the probability-flow ODE is linear: x0 = mu + std/√(std² + σ_max²)·(x_T − mu);
    Heun's error falls ≈4× per doubling of the steps."""
    mu, std = -0.8, 0.3
    x_t = torch.randn(SHAPE, generator=_gen(4), dtype=torch.float64) * 80.0
    want = mu + std / math.sqrt(std**2 + 80.0**2) * (x_t - mu)
    errors = []
    for n in (40, 80):
        s = VESDEScheduler(sampler="ode")
        s.set_timesteps(n)
        errors.append((_run_ve(s, _gaussian_denoiser(mu, std), x_t, None) - want).abs().max().item())
    assert errors[1] < 5e-3 and errors[1] < 0.3 * errors[0]


def test_ve_pc_sampler_recovers_gaussian_data_statistics():
    mu, std = -0.8, 0.3
    s = VESDEScheduler(sampler="pc", n_corrector=1, snr=0.16)
    s.set_timesteps(60)
    g = _gen(5)
    x = torch.randn((128, 1, 25, 25), generator=g) * s.init_noise_sigma
    out = _run_ve(s, _gaussian_denoiser(mu, std), x, g)
    assert abs(out.mean().item() - mu) < 0.02
    assert abs(out.std().item() / std - 1) < 0.05


def test_ancestral_predictor_lands_on_the_next_noise_level_with_an_oracle():
    """With D = x0 and x = x0 + σ_i ε, the ancestral step gives x' − x0 of std exactly σ_{i+1}
    (reverse diffusion would leave ≈ σ_i); analytic truth of Song et al. Eq. 47."""
    from jetviz.schedulers import VESDEScheduler

    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 1, 5, 5)
    for predictor, expect in (("ancestral", None), ("reverse-diffusion", 80.0)):
        s = VESDEScheduler(predictor=predictor)
        s.set_timesteps(3)  # 80, 0.4, 0.002
        x = x0 + 80.0 * torch.randn(x0.shape, generator=g)
        out = s.step(x0, 0, x, generator=g).prev_sample
        target = float(s.sigmas[1]) if expect is None else expect
        assert float(out.std()) == pytest.approx(target, rel=0.02)
    with pytest.raises(ValueError, match="predictor"):
        VESDEScheduler(predictor="euler")


def test_karras_grid_option_for_the_ve_scheduler(tmp_path):
    from jetviz.schedulers import VESDEScheduler, karras_sigmas

    s = VESDEScheduler(grid="karras", sampler="ode")
    s.set_timesteps(5)
    expect = karras_sigmas(5, 0.002, 80.0, 7.0).flip(0)
    torch.testing.assert_close(s.timesteps, expect)
    assert float(s.sigmas[-1]) == 0.0
    s.save_pretrained(tmp_path)
    assert VESDEScheduler.from_pretrained(tmp_path).config.grid == "karras"
    with pytest.raises(ValueError, match="grid"):
        VESDEScheduler(grid="linear")
