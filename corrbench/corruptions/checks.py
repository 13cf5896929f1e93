"""Validation of what a caller hands to a corruption: images, severity, scale, generator."""
from __future__ import annotations

import math
import numbers

import torch

from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError
from corrbench.corruptions.names import SCALE_SIZE, SCALES


def _sizes_that_fit() -> str:
    return ", ".join(f"{size} ({scale})" for scale, size in SCALE_SIZE.items())


def scale_for_size(size: int) -> str:
    """The scale family whose images are `size` px square: 32 → cifar, 64 → tiny, 224 → imagenet."""
    for scale, side in SCALE_SIZE.items():
        if side == size:
            return scale
    raise InvalidValueError(
        f"no corruption scale family fits {size}-px images; sizes that fit: {_sizes_that_fit()}")


MIN_SIDE = 16
"""The smallest image side the corruptions take (glass blur's widest shuffle margin is 2·4 px)."""


def scale_family_for(height: int, width: int) -> str:
    """The scale family (severity constants) for H×W images: the family whose side (32, 64, 224 px) is
    nearest to the shorter image side on a log scale, i.e. ≤ 45 px cifar, ≤ 119 px tiny, else imagenet
    (boundaries at the geometric means √(32·64) and √(64·224)). Exact at the three published sizes."""
    side = min(int(height), int(width))
    return min(SCALE_SIZE, key=lambda scale: (abs(math.log(side / SCALE_SIZE[scale])), SCALE_SIZE[scale]))


def scale_family_note(height: int, width: int, scale: str | None = None) -> str:
    """One line saying which family H×W images take and why (printed by eval and make-c)."""
    chosen = scale or scale_family_for(height, width)
    side = min(height, width)
    why = (f"the shorter side {side} px is nearest to {SCALE_SIZE[chosen]} px" if scale is None
           or scale == scale_family_for(height, width) else "chosen explicitly")
    return f"scale family {chosen} ({SCALE_SIZE[chosen]}-px constants) for {height}×{width} images: {why}"


def check_scale(scale: str) -> str:
    """`scale` itself if it names a scale family, else UnknownNameError."""
    if scale not in SCALES:
        raise UnknownNameError("scale", str(scale), SCALES)
    return scale


def check_severity(severity: int) -> int:
    """`severity` as an int if it is one of 1..5, else InvalidValueError."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
        raise InvalidValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def check_image_layout(images: object) -> None:
    """LayoutError unless `images` is a uint8 tensor B×3×H×W with both sides at least MIN_SIDE."""
    if not isinstance(images, torch.Tensor):
        raise LayoutError(f"images must be a uint8 torch.Tensor B×3×H×W, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise LayoutError(f"images must be uint8 (0..255), got {images.dtype}; pass the raw uint8 pixels")
    if images.ndim != 4 or images.shape[1] != 3:
        raise LayoutError(f"images must be B×3×H×W (RGB, channels first), got shape {tuple(images.shape)}")
    if min(images.shape[2], images.shape[3]) < MIN_SIDE:
        raise LayoutError(f"images must be at least {MIN_SIDE}×{MIN_SIDE} px, got {images.shape[2]}×{images.shape[3]}; "
                          f"upscale them first")


def check_images(images: object, scale: str) -> None:
    """LayoutError unless `images` is uint8 B×3×H×W (any H, W ≥ MIN_SIDE: the constants of `scale`
    apply at any size; `scale_family_for` says which family an image size takes by default)."""
    check_image_layout(images)


def check_generator(generator: torch.Generator | None, images: torch.Tensor, name: str) -> torch.Generator:
    """The generator of a stochastic corruption: required, on the CPU (the same draws, hence the same
    bytes, on every device) or on the images' device (programming errors otherwise)."""
    if generator is None:
        raise ValueError(f"{name} is stochastic: pass a torch.Generator on the CPU or on {images.device} "
                         f"(or pre-drawn `draws`)")
    if generator.device.type not in ("cpu", images.device.type):
        raise ValueError(f"{name}: the generator is on {generator.device} but the images are on "
                         f"{images.device}; use a CPU generator (same bytes on every device) or one on "
                         f"the images' device")
    return generator
