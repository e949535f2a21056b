"""Training losses in model space: denoising score matching (EDM-preconditioned VE model), improved consistency
training (Song & Dhariwal 2023) and consistency distillation (Song et al. 2023).

Each loss is a small pure function: it takes the network(s), a clean batch ``x0`` (B, 1, S, S), class labels
(B,), an explicit ``torch.Generator`` and the hyper-parameters, and returns the **per-sample** loss (B,); the
training loop reduces it. VE convention throughout: ``x_σ = x0 + σ z``.
"""

from __future__ import annotations

import math

import torch

from jetviz.schedulers import karras_sigmas


def lognormal_sigma(n: int, p_mean: float, p_std: float, generator: torch.Generator) -> torch.Tensor:
    """σ = exp(P_mean + P_std·ε), ε ~ N(0, 1) (EDM's training distribution), shape (n,)."""
    return torch.exp(p_mean + p_std * torch.randn(n, generator=generator))


def dsm_loss(
    denoiser,
    x0: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
) -> torch.Tensor:
    """Denoising score matching, EDM form (Karras et al. 2022, Eq. 2 with λ(σ) = 1/c_out², Eq. 8):
    ``λ(σ) ‖D(x0 + σz; σ) − x0‖²`` averaged over pixels, σ log-normal clipped to [σ_min, σ_max]."""
    b = x0.shape[0]
    sigma = lognormal_sigma(b, p_mean, p_std, generator).clamp(sigma_min, sigma_max)  # (B,)
    z = torch.randn(x0.shape, generator=generator)  # (B, 1, S, S)
    s = sigma.reshape(-1, 1, 1, 1)
    denoised = denoiser(x0 + s * z, sigma, labels)
    sd = denoiser.sigma_data
    weight = (s**2 + sd**2) / (s * sd) ** 2
    return (weight * (denoised - x0) ** 2).flatten(1).mean(1)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """``√(‖a − b‖² + c²) − c`` per sample (iCT Eq. 7), shape (B,)."""
    return torch.sqrt(((a - b) ** 2).flatten(1).sum(1) + c**2) - c


def huber_c(x0: torch.Tensor) -> float:
    """iCT's c = 0.00054·√d for d-dimensional data (d = pixels × channels)."""
    return 0.00054 * math.sqrt(x0[0].numel())


def ct_num_scales(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """Discretisation curriculum N(k) of iCT (Eq. 9): N doubles from s0 to s1 over ``total_steps``; returns N+1."""
    k_prime = math.floor(total_steps / (math.log2(s1 / s0) + 1))
    n = min(s0 * 2 ** math.floor(step / max(k_prime, 1)), s1)
    return int(n) + 1


def lognormal_index(
    n: int, sigmas: torch.Tensor, p_mean: float, p_std: float, generator: torch.Generator
) -> torch.Tensor:
    """Indices i ∈ [0, N−2] with p(i) ∝ erf((ln σ_{i+1} − P_mean)/(√2 P_std)) − erf((ln σ_i − P_mean)/(√2 P_std))
    for an ascending grid ``sigmas`` (iCT Section 3.5), shape (n,)."""
    cdf = torch.erf((torch.log(sigmas) - p_mean) / (math.sqrt(2) * p_std))
    probs = (cdf[1:] - cdf[:-1]).clamp_min(0)
    return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator)


def neighbour_levels(x0: torch.Tensor, generator: torch.Generator, num_scales: int, sigma_min: float,
                     sigma_max: float, rho: float, p_mean: float, p_std: float):
    """Neighbouring levels σ_i < σ_{i+1} (each (B,)) of the ascending Karras grid of ``num_scales`` points,
    i drawn log-normally, and the shared noise z (B, 1, S, S)."""
    sigmas = karras_sigmas(num_scales, sigma_min, sigma_max, rho)  # ascending σ_1 < … < σ_N
    i = lognormal_index(x0.shape[0], sigmas, p_mean, p_std, generator)  # (B,)
    return sigmas[i], sigmas[i + 1], torch.randn(x0.shape, generator=generator)


def consistency_distance(f, x_hi, s_hi, x_lo, s_lo, labels) -> torch.Tensor:
    """pseudo-Huber(f_θ(x_hi, σ_{i+1}), stop-grad f_θ(x_lo, σ_i)) / (σ_{i+1} − σ_i), per sample (B,)."""
    pred = f(x_hi, s_hi, labels)
    with torch.no_grad():
        target = f(x_lo, s_lo, labels)
    return pseudo_huber(pred, target, huber_c(x_hi)) / (s_hi - s_lo)


def consistency_training_loss(
    f,
    x0: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    num_scales: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    p_mean: float = -1.1,
    p_std: float = 2.0,
) -> torch.Tensor:
    """Improved consistency training (iCT, Song & Dhariwal 2023): pseudo-Huber distance between
    ``f_θ(x0 + σ_{i+1} z, σ_{i+1})`` and the stop-gradient target ``f_θ⁻(x0 + σ_i z, σ_i)`` (θ⁻ = θ, no EMA),
    weighted by λ(σ_i) = 1/(σ_{i+1} − σ_i); i drawn log-normally on the Karras grid of ``num_scales`` points."""
    s_lo, s_hi, z = neighbour_levels(x0, generator, num_scales, sigma_min, sigma_max, rho, p_mean, p_std)
    x_hi = x0 + s_hi.reshape(-1, 1, 1, 1) * z
    x_lo = x0 + s_lo.reshape(-1, 1, 1, 1) * z
    return consistency_distance(f, x_hi, s_hi, x_lo, s_lo, labels)


@torch.no_grad()
def heun_step(teacher, x: torch.Tensor, s_from: torch.Tensor, s_to: torch.Tensor, labels: torch.Tensor):
    """One Heun step of the probability-flow ODE dx/dσ = (x − D(x; σ))/σ from σ=s_from to σ=s_to (EDM Alg. 1)."""
    a, b = s_from.reshape(-1, 1, 1, 1), s_to.reshape(-1, 1, 1, 1)
    d = (x - teacher(x, s_from, labels)) / a
    x_euler = x + (b - a) * d
    d2 = (x_euler - teacher(x_euler, s_to, labels)) / b
    return x + (b - a) * 0.5 * (d + d2)


def consistency_distillation_loss(
    f,
    teacher,
    x0: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    num_scales: int = 40,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    p_mean: float = -1.1,
    p_std: float = 2.0,
) -> torch.Tensor:
    """Consistency distillation (Song et al. 2023, Alg. 2) with the iCT choices: the teacher's Heun step
    σ_{i+1} → σ_i gives x̂_i; loss = pseudo-Huber(f_θ(x_{i+1}, σ_{i+1}), stop-grad f_θ(x̂_i, σ_i)) / (σ_{i+1} − σ_i)."""
    s_lo, s_hi, z = neighbour_levels(x0, generator, num_scales, sigma_min, sigma_max, rho, p_mean, p_std)
    x_hi = x0 + s_hi.reshape(-1, 1, 1, 1) * z
    x_lo = heun_step(teacher, x_hi, s_hi, s_lo, labels)
    return consistency_distance(f, x_hi, s_hi, x_lo, s_lo, labels)
