"""Validation of what a caller hands to a corruption: images, severity, scale, generator."""
from __future__ import annotations

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
    """LayoutError unless `images` is a uint8 tensor B×3×S×S."""
    if not isinstance(images, torch.Tensor):
        raise LayoutError(f"images must be a uint8 torch.Tensor B×3×H×W, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise LayoutError(f"images must be uint8 (0..255), got {images.dtype}; pass the raw uint8 pixels")
    if images.ndim != 4 or images.shape[1] != 3:
        raise LayoutError(f"images must be B×3×H×W (RGB, channels first), got shape {tuple(images.shape)}")
    if images.shape[2] != images.shape[3]:
        raise LayoutError(f"images must be square, got {images.shape[2]}×{images.shape[3]}")


def check_images(images: object, scale: str) -> None:
    """LayoutError unless `images` is uint8 B×3×S×S with S the side of `scale`; names the family that fits."""
    check_image_layout(images)
    size, side = images.shape[2], SCALE_SIZE[scale]
    if size != side:
        fits = next((s for s, n in SCALE_SIZE.items() if n == size), None)
        hint = (f"use scale '{fits}'" if fits else
                f"no scale family fits {size} px; resize to one of {_sizes_that_fit()}")
        raise LayoutError(f"scale '{scale}' needs {side}×{side} images, got {size}×{size}; {hint}")


def check_generator(generator: torch.Generator | None, images: torch.Tensor, name: str) -> torch.Generator:
    """The generator of a stochastic corruption: required, and on the images' device (programming errors)."""
    if generator is None:
        raise ValueError(f"{name} is stochastic: pass a torch.Generator on {images.device} "
                         f"(or pre-drawn `draws`)")
    if generator.device.type != images.device.type:
        raise ValueError(f"{name}: the generator is on {generator.device} but the images are on "
                         f"{images.device}; create it with torch.Generator(device=images.device)")
    return generator
