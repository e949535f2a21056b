"""Networks for jetviz: a class-conditional diffusers ``UNet2DModel`` and its EDM / consistency preconditioning.

Every tensor here lives in *model space*: float images ``(B, 1, S, S)`` (``S = 25`` by default), roughly in
[−1, 1] with the background at −1 (see :mod:`jetviz.images`). Noise levels σ follow the VE convention
``x_σ = x_0 + σ z``.

Layers, from the inside out:

* :func:`build_unet` builds the raw ``UNet2DModel``; :class:`JetUNet` pads ``S → padded_size(S, levels)``
  (the UNet's skip connections need a size divisible by ``2**(levels - 1)``), feeds the time embedding a
  float tensor, and crops back. Its output is the raw network ``F``.
* :class:`EDMDenoiser` (score model) and :class:`ConsistencyFunction` (consistency model) wrap a
  :class:`JetUNet` with ``c_skip, c_out, c_in, c_noise`` and return an estimate of the clean image.

``c_noise`` convention (both wrappers): ``c_noise(σ) = 250 · ln σ`` (:data:`C_NOISE_SCALE`). This is EDM's
``¼ ln σ`` scaled by 1000, as in openai/consistency_models and diffusers' ``CMStochasticIterativeScheduler``:
diffusers' sinusoidal embedding has frequencies 1 … 10⁻⁴ and was designed for DDPM steps ``t ∈ [0, 1000)``, so
σ ∈ [0.002, 80] maps to c_noise ∈ [−1554, 1096], a range of the same order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from diffusers import UNet2DModel
from torch import nn
from torch.nn import functional as nnf

from jetviz.config import CLASSES, DEFAULT_GRID

C_NOISE_SCALE = 250.0  # c_noise = C_NOISE_SCALE * ln(sigma); see the module docstring
ATTENTION_HEAD_DIM = 8  # channels per attention head in the lowest-resolution blocks
PAD_VALUE = 0.0  # value of the padded border of the UNet input c_in * x (see JetUNet)


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the jet UNet; :func:`build_unet` turns it into a ``UNet2DModel``.

    Defaults are the shipped recipe, a small model that trains usefully in CPU-hours (widths 16/32/32; cost
    per step in the README; (32, 64, 64) has 1.05 M parameters and costs ≈3× more per step): three levels at
    28, 14 and 7 pixels, so the
    7×7 lowest level already spans the whole jet (R = 0.8 fills the image). A second resnet per block costs
    ≈1.4× per step, a fourth level (padding to 32) ≈2.5×. Attention at 7×7 (49 tokens) is cheap (≈1.1×)
    but off by default: the stacked 3×3 convolutions at 7×7 already cover the whole image.
    """

    block_out_channels: tuple[int, ...] = (16, 32, 32)  # one entry per resolution level
    layers_per_block: int = 1  # resnets per down block (up blocks get one more, as in diffusers)
    attention: bool = False  # self-attention in the lowest-resolution down/up blocks and the mid block
    dropout: float = 0.0  # dropout inside the resnets (EDM used 0.13 on CIFAR-10; small data sets may want it)
    num_classes: int = 5  # class embeddings, one per entry of jetviz.config.CLASSES
    image_size: int = 25  # unpadded model-space image size S

    def __post_init__(self) -> None:
        widths = self.block_out_channels
        if isinstance(widths, list):  # e.g. from JSON; keep the dataclass hashable
            object.__setattr__(self, "block_out_channels", widths := tuple(widths))
        if not isinstance(widths, tuple) or not widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
        ):
            raise ValueError(
                f"block_out_channels must be a non-empty tuple of positive ints, got {widths!r}; "
                "e.g. (32, 64, 64)"
            )
        if self.layers_per_block < 1:
            raise ValueError(f"layers_per_block must be >= 1, got {self.layers_per_block}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (len(CLASSES) = {len(CLASSES)}), got {self.num_classes}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.attention and widths[-1] % ATTENTION_HEAD_DIM:
            raise ValueError(
                f"with attention=True the last width must be a multiple of {ATTENTION_HEAD_DIM} "
                f"(the head size), got block_out_channels={widths}; widen it or set attention=False"
            )

    @property
    def levels(self) -> int:
        """Number of resolution levels (``len(block_out_channels)``)."""
        return len(self.block_out_channels)

    @property
    def padded_size(self) -> int:
        """Size the UNet runs at: :func:`padded_size` of ``image_size`` for :attr:`levels`."""
        return padded_size(self.image_size, self.levels)

    @property
    def norm_num_groups(self) -> int:
        """GroupNorm groups: 8 when every width is a multiple of 8, else the largest divisor of 8 that fits."""
        return math.gcd(8, *self.block_out_channels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["block_out_channels"] = list(self.block_out_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown UNetConfig keys {sorted(unknown)}; valid keys are {sorted(known)}")
        d = dict(d)
        if "block_out_channels" in d:
            d["block_out_channels"] = tuple(int(w) for w in d["block_out_channels"])
        return cls(**d)


def padded_size(image_size: int, levels: int) -> int:
    """Smallest size ≥ ``image_size`` divisible by ``2**(levels - 1)``: 25 → 25, 26, 28, 32 for 1–4 levels.

    ``UNet2DModel`` halves (rounding up) ``levels - 1`` times and doubles back, so its skip connections only
    line up for such sizes (checked in ``tests/test_models.py``).
    """
    if image_size < 1 or levels < 1:
        raise ValueError(f"image_size and levels must be >= 1, got {image_size}, {levels}")
    m = 2 ** (levels - 1)
    return -(-image_size // m) * m


def build_unet(cfg: UNetConfig) -> UNet2DModel:
    """A fresh, randomly initialised 1-channel, class-conditional ``UNet2DModel`` for ``cfg``."""
    down = ["DownBlock2D"] * cfg.levels
    up = ["UpBlock2D"] * cfg.levels
    if cfg.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=cfg.padded_size,  # metadata only; JetUNet pads to it
        in_channels=1,
        out_channels=1,
        time_embedding_type="positional",  # accepts any real c_noise, negative included
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        dropout=cfg.dropout,
        attention_head_dim=ATTENTION_HEAD_DIM,
        add_attention=cfg.attention,  # attention in the mid block
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=cfg.num_classes,
    )


def _config_from_unet(unet: UNet2DModel, image_size: int) -> UNetConfig:
    c = unet.config
    attention = bool(c.add_attention)
    down = ["DownBlock2D"] * len(c.block_out_channels)
    if attention:
        down[-1] = "AttnDownBlock2D"
    if (c.in_channels, c.out_channels) != (1, 1) or list(c.down_block_types) != down or not c.num_class_embeds:
        raise ValueError(
            f"this UNet2DModel was not built by jetviz.models.build_unet (channels {c.in_channels}->"
            f"{c.out_channels}, down blocks {list(c.down_block_types)}, num_class_embeds {c.num_class_embeds}); "
            "rebuild it with build_unet"
        )
    if c.time_embedding_type != "positional":
        raise ValueError(f"time_embedding_type must be 'positional', got {c.time_embedding_type!r}")
    cfg = UNetConfig(
        block_out_channels=tuple(int(w) for w in c.block_out_channels),
        layers_per_block=int(c.layers_per_block),
        attention=attention,
        dropout=float(c.dropout),
        num_classes=int(c.num_class_embeds),
        image_size=image_size,
    )
    if c.norm_num_groups != cfg.norm_num_groups:
        raise ValueError(
            f"norm_num_groups={c.norm_num_groups} differs from build_unet's {cfg.norm_num_groups} for these widths; "
            "rebuild it with build_unet"
        )
    if cfg.padded_size != c.sample_size:
        raise ValueError(
            f"image_size={image_size} pads to {cfg.padded_size}, but the UNet's sample_size is {c.sample_size}; "
            "pass the image_size the model was trained on"
        )
    return cfg


class JetUNet(nn.Module):
    """``F(x, c_noise, class)``: the raw UNet on model-space images of size S, padded to the UNet's size.

    The input (already scaled by ``c_in`` in the wrappers) is padded with the constant :data:`PAD_VALUE` = 0,
    ``(P − S) // 2`` pixels on the top/left and the rest on the bottom/right (25 → 28: 1 and 2), so the jet
    axis stays near the centre. Zero is the mean of the scaled noise and matches the UNet's own zero-padded
    convolutions; the border is a fixed, learnable marker of the image edge. The output is cropped back to
    S × S, so the padded region never reaches the loss or the samples.
    """

    def __init__(self, cfg: UNetConfig | None = None, unet: UNet2DModel | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else UNetConfig()
        self.unet = unet if unet is not None else build_unet(self.cfg)
        pad = self.cfg.padded_size - self.cfg.image_size
        self._lo, self._hi = pad // 2, pad - pad // 2

    @classmethod
    def from_unet(cls, unet: UNet2DModel, image_size: int | None = None) -> JetUNet:
        """Wrap a loaded ``UNet2DModel`` (e.g. ``UNet2DModel.from_pretrained(dir)``); cfg from ``unet.config``.

        ``image_size`` defaults to ``jetviz.config.DEFAULT_GRID.size`` (25); it cannot be read back from the
        UNet, whose ``sample_size`` is the padded size. A mismatch raises ``ValueError``.
        """
        size = DEFAULT_GRID.size if image_size is None else int(image_size)
        return cls(_config_from_unet(unet, size), unet)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        """``x`` (B, 1, S, S) float, ``c_noise`` (B,) or 0-dim float tensor, ``class_labels`` (B,) long → (B, 1, S, S)."""
        s = self.cfg.image_size
        if x.ndim != 4 or x.shape[1:] != (1, s, s):
            raise ValueError(f"x must have shape (B, 1, {s}, {s}), got {tuple(x.shape)}")
        b = x.shape[0]
        if not torch.is_tensor(c_noise) or not c_noise.is_floating_point():
            raise ValueError("c_noise must be a float tensor (UNet2DModel casts Python numbers to int)")
        c_noise = c_noise.to(device=x.device, dtype=torch.float32).reshape(-1).expand(b)  # (B,)
        if class_labels.shape != (b,):
            raise ValueError(f"class_labels must have shape ({b},), got {tuple(class_labels.shape)}")
        h = nnf.pad(x, (self._lo, self._hi, self._lo, self._hi), value=PAD_VALUE)  # (B, 1, P, P)
        h = self.unet(h, c_noise, class_labels=class_labels.long()).sample  # (B, 1, P, P)
        return h[:, :, self._lo : self._lo + s, self._lo : self._lo + s]  # (B, 1, S, S)


def c_noise(sigma: torch.Tensor) -> torch.Tensor:
    """The time-embedding input for noise level σ: ``C_NOISE_SCALE · ln σ`` (shared by both wrappers)."""
    return C_NOISE_SCALE * torch.log(sigma)


def _sigma_vector(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a float, 0-dim or (B,) σ to a (B,) tensor of ``x``'s dtype; σ must be > 0.

    The σ > 0 check reads a tensor value, so it is skipped while ``torch.compile`` traces (it would break the
    graph); eager calls, the app's and the CLI's included, always check.
    """
    b = x.shape[0]
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if sigma.numel() not in (1, b):
        raise ValueError(f"sigma must be a scalar or have shape ({b},), got {sigma.numel()} values")
    if not torch.compiler.is_compiling() and not bool((sigma > 0).all()):
        raise ValueError(f"sigma must be > 0, got min {float(sigma.min())}")
    return sigma.expand(b)


class _Preconditioned(nn.Module):
    """``c_skip(σ) x + c_out(σ) F(c_in(σ) x, c_noise(σ))``; subclasses define :meth:`coefficients`."""

    net: JetUNet

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, class_labels: torch.Tensor) -> torch.Tensor:
        """Noisy ``x`` (B, 1, S, S), σ scalar or (B,), ``class_labels`` (B,) → clean estimate x̂₀ (B, 1, S, S)."""
        sigma = _sigma_vector(sigma, x)  # (B,)
        c_skip, c_out, c_in = (c.reshape(-1, 1, 1, 1) for c in self.coefficients(sigma))
        F = self.net(c_in * x, c_noise(sigma), class_labels)  # (B, 1, S, S)
        return c_skip * x + c_out * F


class EDMDenoiser(_Preconditioned):
    """EDM-preconditioned denoiser ``D(x; σ) = c_skip x + c_out F(c_in x, c_noise)`` (Karras et al. 2022, Eq. 7
    and Table 1), the network of jetviz's VE-SDE score model; ``c_noise`` as in the module docstring.
    """

    def __init__(self, net: JetUNet, sigma_data: float = 0.5) -> None:
        super().__init__()
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in)`` for σ of any shape (EDM Table 1)."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = sigma * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        return c_skip, c_out, c_in

    def score(self, x: torch.Tensor, sigma: torch.Tensor | float, class_labels: torch.Tensor) -> torch.Tensor:
        """Score ∇ₓ log p(x; σ) ≈ (D(x; σ) − x) / σ² (EDM Eq. 3), shape (B, 1, S, S)."""
        s = _sigma_vector(sigma, x).reshape(-1, 1, 1, 1)
        return (self(x, sigma, class_labels) - x) / s**2


class ConsistencyFunction(_Preconditioned):
    """Consistency function ``f_θ(x, σ) = c_skip(σ) x + c_out(σ) F(c_in x, c_noise)`` (Song et al. 2023,
    Eq. 5 and Appendix C) with c_skip = σd²/((σ−σ_min)² + σd²), c_out = σd(σ−σ_min)/√(σd² + σ²),
    c_in = 1/√(σ² + σd²); at σ = σ_min, c_skip = 1 and c_out = 0, so ``f(x, σ_min) = x`` exactly.
    """

    def __init__(self, net: JetUNet, sigma_data: float = 0.5, sigma_min: float = 0.002) -> None:
        super().__init__()
        if sigma_data <= 0 or sigma_min <= 0:
            raise ValueError(f"sigma_data and sigma_min must be > 0, got {sigma_data}, {sigma_min}")
        self.net = net
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in)`` for σ of any shape (CM Appendix C, with EDM's c_in)."""
        sd2 = self.sigma_data**2
        c_skip = sd2 / ((sigma - self.sigma_min) ** 2 + sd2)
        c_out = (sigma - self.sigma_min) * self.sigma_data / (sigma**2 + sd2).sqrt()
        c_in = 1 / (sigma**2 + sd2).sqrt()
        return c_skip, c_out, c_in



def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``module``; only those with ``requires_grad`` if ``trainable_only``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
