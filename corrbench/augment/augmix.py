"""AugMix (Hendrycks et al., ICLR 2020; google-research/augmix `augmentations.py`, `cifar.py::aug`).

Per image: `width` chains, each of `depth` ops (depth ≤ 0: 1–3 drawn per chain) chosen uniformly from
the op list, each op drawing its own level U(0.1, severity) and sign; chain weights w ~ Dirichlet(α)
and skip weight m ~ Beta(α, α); result `(1 − m)·x + m·Σ_i w_i·chain_i(x)` in float32 on [0, 1]
(the reference mixes after ToTensor + Normalize, which commutes with the mixing). Every image draws
its own ops, levels, depths and weights; all chains of a batch run together, grouped by op.

Op magnitudes as in the reference (level ∈ [0.1, severity], `int(·)` truncates):
posterize bits 4 − int(level·4/10); rotate ±int(level·30/10)°; solarize threshold
256 − int(level·256/10); shear ±level·0.3/10; translate ±int(level·(size/3)/10) px; geometric ops
use PIL's bilinear filter. `all_ops` adds color, contrast, brightness, sharpness with enhance factor
level·1.8/10 + 0.1 (left out by default: they overlap the -C corruptions).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from corrbench.augment.fused import rotation_angles_for_integer_degrees
from corrbench.augment.ops import check_uint8_batch
from corrbench.augment.per_image import apply_per_image
from corrbench.augment.registry import register_augmentation
from corrbench.errors import InvalidValueError

Level = torch.Tensor   # float64, one per chain row


@dataclass(frozen=True)
class AugMixOp:
    name: str                                          # an op of corrbench.augment.ops
    magnitude: Callable[[Level, int], torch.Tensor]    # (level, image side) -> the op's PIL argument
    signed: bool = False                               # a random sign is drawn per application


def _int_parameter(level: Level, maximum: float) -> torch.Tensor:
    return (level * maximum / 10).trunc()


def _float_parameter(level: Level, maximum: float) -> torch.Tensor:
    return level * maximum / 10


def _no_magnitude(level: Level, side: int) -> torch.Tensor:
    return torch.zeros_like(level)


def _enhance_factor(level: Level, side: int) -> torch.Tensor:
    return _float_parameter(level, 1.8) + 0.1


CIFAR_OPS: tuple[AugMixOp, ...] = (
    AugMixOp("autocontrast", _no_magnitude),
    AugMixOp("equalize", _no_magnitude),
    AugMixOp("posterize", lambda level, side: 4 - _int_parameter(level, 4)),
    AugMixOp("rotate", lambda level, side: _int_parameter(level, 30), signed=True),
    AugMixOp("solarize", lambda level, side: 256 - _int_parameter(level, 256)),
    AugMixOp("shear_x", lambda level, side: _float_parameter(level, 0.3), signed=True),
    AugMixOp("shear_y", lambda level, side: _float_parameter(level, 0.3), signed=True),
    AugMixOp("translate_x", lambda level, side: _int_parameter(level, side / 3), signed=True),
    AugMixOp("translate_y", lambda level, side: _int_parameter(level, side / 3), signed=True),
)
ALL_OPS: tuple[AugMixOp, ...] = CIFAR_OPS + (
    AugMixOp("color", _enhance_factor),
    AugMixOp("contrast", _enhance_factor),
    AugMixOp("brightness", _enhance_factor),
    AugMixOp("sharpness", _enhance_factor),
)
MAX_RANDOM_DEPTH = 3   # depth ≤ 0: np.random.randint(1, 4) per chain
# Every angle rotate can get (±int(level·30/10), level ≤ 10): lets the fused path look rotations up.
ROTATION_ANGLES = rotation_angles_for_integer_degrees(30)


def mixing_weights(batch: int, width: int, alpha: float, generator: torch.Generator,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Chain weights w ~ Dirichlet([α]·width) (B×width) and skip weights m ~ Beta(α, α) (B), float32."""
    device = torch.device(device) if device is not None else generator.device
    # torch.distributions cannot take a Generator; its Dirichlet sampler can.
    concentration = torch.full((batch, width), float(alpha), dtype=torch.float64, device=device)
    chain_weights = torch._sample_dirichlet(concentration, generator=generator)
    pair = torch.full((batch, 2), float(alpha), dtype=torch.float64, device=device)
    skip = torch._sample_dirichlet(pair, generator=generator)[:, 0]
    return chain_weights.float(), skip.float()


@functools.lru_cache(maxsize=16)
def _signed_ops(ops: tuple[AugMixOp, ...], device: torch.device) -> torch.Tensor:
    """Which ops draw a sign, on `device` (copied once: a copy per call would wait for the device)."""
    return torch.tensor([op.signed for op in ops], device=device)


def check_augmix_settings(severity: float, width: int, depth: int, alpha: float) -> None:
    if not 0 < severity <= 10:
        raise InvalidValueError(f"augmix severity must be in (0, 10] (ops saturate at 10), got {severity}")
    if isinstance(width, bool) or int(width) != width or width < 1:
        raise InvalidValueError(f"augmix width (number of chains) must be an integer ≥ 1, got {width}")
    if isinstance(depth, bool) or int(depth) != depth:
        raise InvalidValueError(f"augmix depth must be an integer (≤ 0 draws 1–3 ops per chain), got {depth}")
    if not alpha > 0:
        raise InvalidValueError(f"augmix alpha (Dirichlet/Beta concentration) must be > 0, got {alpha}")


def augmix_views(images: torch.Tensor, generator: torch.Generator, ops: Sequence[AugMixOp], *,
                 severity: float = 3, width: int = 3, depth: int = -1, alpha: float = 1.0) -> torch.Tensor:
    """One AugMix view per image with the op list `ops` (float32 in [0, 1], same shape)."""
    check_uint8_batch(images)
    check_augmix_settings(severity, width, depth, alpha)
    batch, channels, height, side = images.shape
    device = images.device
    chain_weights, skip = mixing_weights(batch, width, alpha, generator, device)
    rows = batch * width
    channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    images = images.contiguous()
    chains = images.repeat_interleave(width, dim=0)               # row b·width + i: chain i of image b
    if depth > 0:
        depths, steps = torch.full((rows,), depth, device=device), depth
    else:
        depths = torch.randint(1, MAX_RANDOM_DEPTH + 1, (rows,), generator=generator, device=device)
        steps = MAX_RANDOM_DEPTH
    names = [op.name for op in ops]
    signed = _signed_ops(tuple(ops), device)
    for step in range(steps):
        choice = torch.randint(0, len(ops), (rows,), generator=generator, device=device)
        unit = torch.rand(rows, generator=generator, device=device, dtype=torch.float64)
        level = 0.1 + (severity - 0.1) * unit                      # np.random.uniform(0.1, severity)
        negate = torch.rand(rows, generator=generator, device=device) < 0.5
        table = torch.stack([op.magnitude(level, side if op.name != "translate_y" else height) for op in ops], 1)
        magnitude = table.gather(1, choice[:, None]).squeeze(1)
        magnitude = torch.where(negate & signed[choice], -magnitude, magnitude)
        choice = torch.where(step < depths, choice, -1)            # chains shorter than this step stop
        chains = apply_per_image(chains, choice, magnitude, names, resample="bilinear",
                                 rotation_angles=ROTATION_ANGLES)
    # (1 − m)·x + m·Σ_i w_i·chain_i as one batched product over the chains, then to [0, 1].
    coefficients = torch.cat([1 - skip[:, None], skip[:, None] * chain_weights], dim=1).unsqueeze(1)
    stacked = torch.cat([images.unsqueeze(1), chains.view(batch, width, channels, height, side)], dim=1)
    mixed = torch.bmm(coefficients, stacked.reshape(batch, width + 1, -1).float())
    mixed = mixed.view(batch, channels, height, side).div_(255.0).clamp_(0.0, 1.0)   # rounding can pass 1
    if channels_last:
        mixed = mixed.contiguous(memory_format=torch.channels_last)   # keep the layout the engine chose
    return mixed


def augmix(images: torch.Tensor, generator: torch.Generator, *, severity: float = 3, width: int = 3,
           depth: int = -1, alpha: float = 1.0, all_ops: bool = False) -> torch.Tensor:
    """One AugMix view per image of a uint8 batch: float32 B×C×H×W in [0, 1] (CIFAR defaults)."""
    return augmix_views(images, generator, ALL_OPS if all_ops else CIFAR_OPS,
                        severity=severity, width=width, depth=depth, alpha=alpha)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8, rounding to the nearest level (ties to even).

    torchvision's AugMix on uint8 tensors truncates instead, which darkens by half a level on average.
    """
    return (images * 255.0).round_().clamp_(0, 255).to(torch.uint8)


@register_augmentation("augmix", "AugMix without JSD: one mixed view per image (severity 3, width 3, "
                                 "depth 1–3, CIFAR op list), rounded to uint8.")
def augmix_uint8(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return quantize(augmix(images, generator))
