"""Samplers' noise schedules and update rules with the diffusers scheduler API, in the VE convention.

Both schedulers work on *model-space* images ``(B, 1, S, S)`` and noise levels σ with ``x_σ = x_0 + σ z``,
and take as ``model_output`` a **denoiser output**: the network's estimate of the clean image x̂₀ =
``EDMDenoiser(x, σ, y)`` or ``ConsistencyFunction(x, σ, y)`` (see :mod:`jetviz.models`). They hold no
model and no RNG: every random draw uses the ``torch.Generator`` passed in, and the sampling loop lives in
:mod:`jetviz.sampling`. After ``set_timesteps(N)``:

* ``timesteps``: the N noise levels σ (float32, descending, first σ_max) at which to evaluate the model, in
  order; pass ``timesteps[i]`` as σ to the model and ``i`` (or that σ) to ``step``;
* ``sigmas``: ``timesteps`` followed by the level the last step lands on (0 for VE, σ_min for consistency),
  length N + 1, so step ``i`` always goes from ``sigmas[i]`` to ``sigmas[i + 1]``.

Defaults: σ_max = 80 exceeds the largest possible distance between two model-space images in [−1, 1]^625,
2·√625 = 50 (Song & Ermon 2020, technique 1; sparse jet images are far closer), and at σ_min = 0.002 the
noise is 0.1 % of the [−1, 1] pixel range; both are EDM's values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers import ConfigMixin, SchedulerMixin
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput


@dataclass
class SchedulerOutput(BaseOutput):
    """Result of one update.

    Args:
        prev_sample: the sample at the next (lower) noise level, (B, 1, S, S).
        denoised: the clean-image estimate the update used, (B, 1, S, S).
        derivative: VE ODE only: dx/dσ = (x − x̂₀)/σ at the start of the step, needed by ``heun_correct``.
    """

    prev_sample: torch.Tensor
    denoised: torch.Tensor
    derivative: torch.Tensor | None = None


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """EDM/Karras noise grid (Karras et al. 2022, Eq. 5; CM's N-point discretisation), **ascending**.

    ``σ_i = (σ_min^{1/ρ} + i/(n−1)·(σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ`` for i = 0 … n−1, so ``[0] == σ_min`` and
    ``[-1] == σ_max`` exactly (consistency training pairs neighbours σ_i < σ_{i+1}); flip it for sampling.
    Computed in float64, returned as ``dtype``, shape (n,).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise ValueError(f"a Karras grid needs n >= 2 points (an int), got {n!r}")
    _check_range(sigma_min, sigma_max)
    if rho <= 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (lo + ramp * (hi - lo)) ** rho
    sigmas[0], sigmas[-1] = sigma_min, sigma_max
    return sigmas.to(dtype)


def _check_range(sigma_min: float, sigma_max: float) -> None:
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def _check_steps(num_inference_steps: int) -> None:
    if not isinstance(num_inference_steps, int) or isinstance(num_inference_steps, bool) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an int >= 1, got {num_inference_steps!r}")


def _noise(sample: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        raise ValueError("this update draws noise: pass generator=torch.Generator().manual_seed(...)")
    return torch.randn(sample.shape, generator=generator, dtype=sample.dtype, device=sample.device)


class _SigmaSchedule:
    """Shared bookkeeping: ``timesteps``/``sigmas`` and the index of a σ."""

    timesteps: torch.Tensor | None
    sigmas: torch.Tensor | None

    def index_for_sigma(self, sigma_or_index: int | float | torch.Tensor) -> int:
        """Index into ``timesteps`` of an int index (returned as is) or of a σ value (float or 0-dim tensor)."""
        if self.timesteps is None:
            raise ValueError("call set_timesteps(num_inference_steps) before step")
        n = len(self.timesteps)
        if isinstance(sigma_or_index, int) and not isinstance(sigma_or_index, bool):
            if not 0 <= sigma_or_index < n:
                raise ValueError(f"step index must be in [0, {n}), got {sigma_or_index}")
            return sigma_or_index
        if torch.is_tensor(sigma_or_index) and not sigma_or_index.is_floating_point():
            return self.index_for_sigma(int(sigma_or_index))
        sigma = float(sigma_or_index)
        i = int(torch.argmin((self.timesteps.double() - sigma).abs()))
        if not math.isclose(float(self.timesteps[i]), sigma, rel_tol=1e-5):
            raise ValueError(f"sigma={sigma} is not one of the scheduler's timesteps; pass the step index")
        return i

    @property
    def init_noise_sigma(self) -> float:
        """Standard deviation of the initial sample x ~ N(0, σ_max² I)."""
        return float(self.config.sigma_max)

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor | None = None) -> torch.Tensor:
        """Identity: the preconditioning (c_in) lives in the jetviz.models wrappers."""
        return sample


class VESDEScheduler(SchedulerMixin, ConfigMixin, _SigmaSchedule):
    """Reverse-time VE-SDE sampling (Song et al. 2021, "Score-based generative modeling through SDEs").

    Args:
        sigma_min: smallest noise level of the geometric grid (the last model evaluation).
        sigma_max: largest noise level; the prior is N(0, σ_max² I) (see the module docstring).
        snr: signal-to-noise ratio r of the Langevin corrector (Song et al. Algorithm 4; 0.16 for VE CIFAR-10).
        n_corrector: Langevin corrector steps per noise level for ``sampler="pc"``.
        sampler: ``"pc"`` predictor-corrector (stochastic) or ``"ode"`` probability-flow ODE with Heun.
        predictor: ``"ancestral"`` (default) or ``"reverse-diffusion"`` update of the pc sampler (see ``step``).
        grid: ``"geometric"`` (Song et al.'s VE grid, below) or ``"karras"`` (EDM's ρ = 7 grid, which spends the
            steps at low σ and suits the ODE sampler; with 1–3 ODE steps both grids are far too coarse).

    Grid: N geometric levels ``σ_i = σ_max (σ_min/σ_max)^{i/(N−1)}`` (N = 1: just σ_max), then 0.

    Model evaluations per sampling run of N steps (the loop in jetviz.sampling)::

        pc:  N·(n_corrector + 1)   for i, s in enumerate(timesteps):
                                       repeat n_corrector: x = step_correct(D(x, s), i, x, g).prev_sample
                                       x = step(D(x, s), i, x, g).prev_sample
        ode: 2N − 1                for i, s in enumerate(timesteps):
                                       out = step(D(x, s), i, x)                      # Euler
                                       if i < N − 1:                                   # σ_{i+1} > 0
                                           out = heun_correct(D(out.prev_sample, sigmas[i+1]), i, x, out)
                                       x = out.prev_sample
    """

    config_name = "scheduler_config.json"
    order = 1

    @register_to_config
    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, snr: float = 0.16,
                 n_corrector: int = 1, sampler: str = "pc", predictor: str = "ancestral",
                 grid: str = "geometric") -> None:
        _check_range(sigma_min, sigma_max)
        if grid not in ("geometric", "karras"):
            raise ValueError(f"grid must be 'geometric' or 'karras', got {grid!r}")
        if predictor not in ("ancestral", "reverse-diffusion"):
            raise ValueError(f"predictor must be 'ancestral' or 'reverse-diffusion', got {predictor!r}")
        if snr <= 0:
            raise ValueError(f"snr must be > 0, got {snr}")
        if n_corrector < 0:
            raise ValueError(f"n_corrector must be >= 0, got {n_corrector}")
        if sampler not in ("pc", "ode"):
            raise ValueError(f"sampler must be 'pc' or 'ode', got {sampler!r}")
        self.num_inference_steps: int | None = None
        self.timesteps = None
        self.sigmas = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Set the grid (geometric, or Karras with ρ = 7 if ``grid="karras"``) of ``num_inference_steps`` ≥ 1
        levels from σ_max to σ_min; ``sigmas`` ends with 0."""
        _check_steps(num_inference_steps)
        n, lo, hi = num_inference_steps, self.config.sigma_min, self.config.sigma_max
        if self.config.grid == "karras" and n > 1:
            levels = karras_sigmas(n, lo, hi, 7.0, dtype=torch.float64).flip(0)
        else:
            ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
            levels = hi * (lo / hi) ** ramp
        levels[0] = hi
        if n > 1:
            levels[-1] = lo
        self.num_inference_steps = n
        self.sigmas = torch.cat([levels, levels.new_zeros(1)]).to(device=device, dtype=torch.float32)
        self.timesteps = self.sigmas[:-1]

    def model_evaluations(self) -> int:
        """Denoiser calls one sampling run needs with the current grid and sampler (see the class docstring)."""
        n = self.num_inference_steps or 0
        return 2 * n - 1 if self.config.sampler == "ode" else n * (self.config.n_corrector + 1)

    def _levels(self, i: int) -> tuple[float, float]:
        return float(self.sigmas[i]), float(self.sigmas[i + 1])

    def step(self, model_output: torch.Tensor, sigma_or_index: int | float | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        """One update from ``sigmas[i]`` to ``sigmas[i+1]``: the reverse-diffusion predictor, or Euler for ``ode``.

        Args:
            model_output: denoiser output x̂₀ = D(sample; σ_i), (B, 1, S, S).
            sigma_or_index: step index i, or the σ_i = ``timesteps[i]`` the model was evaluated at.
            sample: current x at σ_i, (B, 1, S, S); not modified.
            generator: source of the predictor noise (pc only; not needed on the last step).

        Predictor, with score s = (x̂₀ − x)/σ_i² and Δ = σ_i² − σ_{i+1}²: ``x' = x + Δ s + √v z`` where
        ``v = σ_{i+1}² Δ / σ_i²`` for ``predictor="ancestral"`` (Song et al. 2021, Eq. 47: the exact Gaussian
        posterior step, stable for any step count) or ``v = Δ`` for ``predictor="reverse-diffusion"``
        (Euler–Maruyama of the reverse SDE, Eq. 46; it injects noise of size σ_i on a large step, so with
        only 2–3 levels it leaves the sample far noisier than σ_{i+1}). On the last step (σ_{i+1} = 0) the
        noise-free mean ``x + σ_i² s = x̂₀`` is returned (Tweedie's denoised estimate).
        """
        if self.config.sampler == "ode":
            return self.step_ode_euler(model_output, sigma_or_index, sample)
        i = self.index_for_sigma(sigma_or_index)
        sigma, sigma_next = self._levels(i)
        if sigma_next == 0:
            return SchedulerOutput(prev_sample=model_output, denoised=model_output)
        score = (model_output - sample) / sigma**2  # (B, 1, S, S)
        var = sigma**2 - sigma_next**2
        noise_var = var * sigma_next**2 / sigma**2 if self.config.predictor == "ancestral" else var
        prev_sample = sample + var * score + math.sqrt(noise_var) * _noise(sample, generator)
        return SchedulerOutput(prev_sample=prev_sample, denoised=model_output)

    def step_correct(self, model_output: torch.Tensor, sigma_or_index: int | float | torch.Tensor,
                     sample: torch.Tensor, generator: torch.Generator | None = None) -> SchedulerOutput:
        """One Langevin corrector step at σ_i (Song et al. Algorithm 4): one model evaluation.

        ``x' = x + ε s + √(2ε) z`` with s = (x̂₀ − x)/σ_i² and ε = 2 (snr·‖z‖/‖s‖)² per sample (norms over
        the image; ‖s‖ is clamped at 1e-12 so a zero score gives no NaN).
        """
        i = self.index_for_sigma(sigma_or_index)
        sigma = float(self.sigmas[i])
        score = (model_output - sample) / sigma**2  # (B, 1, S, S)
        z = _noise(sample, generator)
        z_norm = z.flatten(1).norm(dim=1)  # (B,)
        s_norm = score.flatten(1).norm(dim=1).clamp_min(1e-12)  # (B,)
        eps = (2 * (self.config.snr * z_norm / s_norm) ** 2).reshape(-1, 1, 1, 1)  # (B, 1, 1, 1)
        prev_sample = sample + eps * score + (2 * eps).sqrt() * z
        return SchedulerOutput(prev_sample=prev_sample, denoised=model_output)

    def step_ode_euler(self, model_output: torch.Tensor, sigma_or_index: int | float | torch.Tensor,
                       sample: torch.Tensor) -> SchedulerOutput:
        """Euler step of the probability-flow ODE dx/dσ = (x − x̂₀)/σ (EDM Eq. 4, Algorithm 1 lines 5–6).

        One model evaluation; ``derivative`` carries d_i for :meth:`heun_correct`. The last step (to σ = 0)
        gives x̂₀ exactly.
        """
        i = self.index_for_sigma(sigma_or_index)
        sigma, sigma_next = self._levels(i)
        d = (sample - model_output) / sigma  # (B, 1, S, S)
        prev_sample = model_output if sigma_next == 0 else sample + (sigma_next - sigma) * d
        return SchedulerOutput(prev_sample=prev_sample, denoised=model_output, derivative=d)

    def heun_correct(self, model_output: torch.Tensor, sigma_or_index: int | float | torch.Tensor,
                     sample: torch.Tensor, euler: SchedulerOutput) -> SchedulerOutput:
        """Heun's 2nd-order correction of an Euler step (EDM Algorithm 1 lines 7–8): one more evaluation.

        Args:
            model_output: D(euler.prev_sample; σ_{i+1}), the denoiser at the Euler estimate and the next level.
            sigma_or_index: the same step index i (or σ_i) as the Euler step.
            sample: x at σ_i, the Euler step's input.
            euler: the :meth:`step_ode_euler` output for this step.

        Only defined while σ_{i+1} > 0, i.e. not on the last step (there the Euler result is final).
        """
        i = self.index_for_sigma(sigma_or_index)
        sigma, sigma_next = self._levels(i)
        if sigma_next == 0:
            raise ValueError("no Heun correction on the last step (sigma_next = 0): keep the Euler result")
        if euler.derivative is None:
            raise ValueError("euler must be the output of step_ode_euler (it carries the derivative)")
        d_next = (euler.prev_sample - model_output) / sigma_next  # (B, 1, S, S)
        prev_sample = sample + (sigma_next - sigma) * 0.5 * (euler.derivative + d_next)
        return SchedulerOutput(prev_sample=prev_sample, denoised=model_output, derivative=d_next)


class ConsistencyScheduler(SchedulerMixin, ConfigMixin, _SigmaSchedule):
    """Multistep consistency sampling (Song et al. 2023, "Consistency Models", Algorithm 1).

    Args:
        sigma_min: ε, the boundary level where f(x, ε) = x; also the floor of the Karras grid.
        sigma_max: T, the level of the initial noise x ~ N(0, T² I).
        rho: ρ of the Karras grid (:func:`karras_sigmas`), used for training and the default multistep levels.
        sigma_data: data std the consistency function was trained with; recorded here so a saved scheduler
            carries it (sampling itself does not use it).

    One model evaluation per step. ``set_timesteps(1)`` gives ``timesteps = [σ_max]``; N > 1 steps default
    to the first N points of the descending (N+1)-point Karras grid σ_max → σ_min, i.e. the grid with σ_min
    dropped (re-noising to σ_min would be a no-op); for N = 2, ρ = 7: [80, 2.51]. ``sigmas`` appends σ_min.
    """

    config_name = "scheduler_config.json"
    order = 1

    @register_to_config
    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 sigma_data: float = 0.5) -> None:
        _check_range(sigma_min, sigma_max)
        if rho <= 0 or sigma_data <= 0:
            raise ValueError(f"rho and sigma_data must be > 0, got rho={rho}, sigma_data={sigma_data}")
        self.num_inference_steps: int | None = None
        self.timesteps = None
        self.sigmas = None

    def karras_sigmas(self, n: int) -> torch.Tensor:
        """:func:`karras_sigmas` with this scheduler's σ_min, σ_max, ρ (ascending, shape (n,))."""
        c = self.config
        return karras_sigmas(n, c.sigma_min, c.sigma_max, c.rho)

    def set_timesteps(self, num_inference_steps: int, sigmas: list[float] | None = None,
                      device: str | torch.device | None = None) -> None:
        """Set the N evaluation levels: σ_max followed by N − 1 intermediate levels.

        Args:
            num_inference_steps: N ≥ 1.
            sigmas: optional intermediate levels (without σ_max), N − 1 values strictly decreasing inside
                (σ_min, σ_max); default: the Karras choice in the class docstring.
            device: where ``timesteps`` and ``sigmas`` live.
        """
        _check_steps(num_inference_steps)
        c, n = self.config, num_inference_steps
        if sigmas is None:
            inner = self.karras_sigmas(n + 1).double().flip(0)[1:-1] if n > 1 else torch.zeros(0)
        else:
            inner = torch.as_tensor(list(sigmas), dtype=torch.float64).reshape(-1)
            if len(inner) != n - 1:
                raise ValueError(f"pass {n - 1} intermediate sigmas for {n} steps (σ_max is implied), got {len(inner)}")
            full = torch.cat([torch.tensor([c.sigma_max], dtype=torch.float64), inner, torch.tensor([c.sigma_min])])
            if not bool((full[1:] < full[:-1]).all()):
                raise ValueError(
                    f"intermediate sigmas must decrease strictly inside ({c.sigma_min}, {c.sigma_max}), got {list(sigmas)}"
                )
        levels = torch.cat([torch.tensor([c.sigma_max], dtype=torch.float64), inner.double()])
        self.num_inference_steps = n
        self.sigmas = torch.cat([levels, torch.tensor([c.sigma_min], dtype=torch.float64)]).to(
            device=device, dtype=torch.float32
        )
        self.timesteps = self.sigmas[:-1]

    def step(self, model_output: torch.Tensor, sigma_index: int | float | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        """CM Algorithm 1, one iteration: ``x' = x̂₀ + √(σ_{i+1}² − σ_min²) z``; the last step returns x̂₀.

        Args:
            model_output: x̂₀ = f(sample, σ_i), (B, 1, S, S).
            sigma_index: step index i, or σ_i = ``timesteps[i]``.
            sample: current x at σ_i (unused by the update; kept for the diffusers signature).
            generator: source of the re-noising draw (not needed on the last step).
        """
        i = self.index_for_sigma(sigma_index)
        if i == len(self.timesteps) - 1:
            return SchedulerOutput(prev_sample=model_output, denoised=model_output)
        sigma_next, sigma_min = float(self.sigmas[i + 1]), float(self.config.sigma_min)
        scale = math.sqrt(max(sigma_next**2 - sigma_min**2, 0.0))
        prev_sample = model_output + scale * _noise(model_output, generator)
        return SchedulerOutput(prev_sample=prev_sample, denoised=model_output)
