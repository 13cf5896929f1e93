"""Colour jitter and small random rotations, batched and seeded per image, and the registry of
preprocessing steps a run adds after random crop + flip (`RunConfig.preprocess`, e.g.
`preprocess = ["color_jitter:0.25", "rotation:2"]` in a recipe's [train.settings]).

- `color_jitter:S` = torchvision `ColorJitter(brightness=S, contrast=S, saturation=S)` on a PIL image:
  each image draws its factors U(max(0, 1 − S), 1 + S) and its own random order of the three
  enhancements (ImageEnhance.Brightness / Contrast / Color, reproduced exactly by `augment.ops`).
  MAGN §4: "color jitter (0.25)"; its code: `ColorJitter(0.25, 0.25, 0.25)` (TheoT1/DiGN DataLoad.py).
- `rotation:D` = torchvision `RandomRotation(D)` on a PIL image: angle U(−D, D) per image,
  `img.rotate(angle, NEAREST)`, same size, corners filled 0. MAGN §4: "random rotation (2 degrees)";
  mollification's code (`fcr`): RandomRotation(15).

Every draw comes from the generator handed in (the training loop's per-epoch augmentation stream).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from corrbench.augment.ops import brightness, check_uint8_batch, color, contrast, rotate
from corrbench.errors import InvalidValueError, UserError
from corrbench.registry import Registry

# torchvision ColorJitter's order indices 0..2 (hue, index 3, is left out: MAGN's jitter has hue 0).
JITTER_OPS = (brightness, contrast, color)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """ColorJitter(strength, strength, strength) per image of a uint8 batch (uint8 out)."""
    check_uint8_batch(images)
    if strength < 0:
        raise InvalidValueError(f"colour jitter strength must be ≥ 0, got {strength}")
    batch, device = images.shape[0], images.device
    low, high = max(0.0, 1.0 - strength), 1.0 + strength
    factors = low + (high - low) * torch.rand(batch, len(JITTER_OPS), generator=generator, device=device,
                                              dtype=torch.float64)
    order = torch.argsort(torch.rand(batch, len(JITTER_OPS), generator=generator, device=device), dim=1)
    out = images.clone()
    for position in range(len(JITTER_OPS)):
        for op_index, op in enumerate(JITTER_OPS):
            chosen = (order[:, position] == op_index).nonzero().flatten()
            if chosen.numel():
                out[chosen] = op(out[chosen], factors[chosen, op_index])
    return out


def random_rotation(images: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """RandomRotation(degrees): angle U(−degrees, degrees) per image, nearest, fill 0 (uint8 out)."""
    check_uint8_batch(images)
    if degrees < 0:
        raise InvalidValueError(f"rotation range must be ≥ 0 degrees, got {degrees}")
    angles = (2 * torch.rand(images.shape[0], generator=generator, device=images.device, dtype=torch.float64)
              - 1) * degrees
    return rotate(images, angles, "nearest")


@dataclass(frozen=True)
class PreprocessStep:
    name: str
    summary: str
    apply: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]   # (uint8 batch, argument, generator)


PREPROCESS_STEPS: Registry[PreprocessStep] = Registry("preprocessing step")
PREPROCESS_STEPS.register("color_jitter", PreprocessStep(
    "color_jitter", "color_jitter:S = torchvision ColorJitter(S, S, S): brightness, contrast, saturation "
                    "factors U(1−S, 1+S) in random order, per image", color_jitter))
PREPROCESS_STEPS.register("rotation", PreprocessStep(
    "rotation", "rotation:D = torchvision RandomRotation(D): angle U(−D, D) per image, nearest, fill 0",
    random_rotation))


def parse_preprocess(specs: Sequence[str]) -> list[tuple[PreprocessStep, float]]:
    """`["color_jitter:0.25", "rotation:2"]` -> the steps and their arguments, in order (user errors named)."""
    steps = []
    for spec in specs:
        name, _, argument = str(spec).partition(":")
        step = PREPROCESS_STEPS.get(name.strip())
        try:
            value = float(argument)
        except ValueError:
            raise UserError(f"preprocessing step '{spec}' needs a number after the colon, e.g. "
                            f"'{step.name}:{'0.25' if step.name == 'color_jitter' else '2'}'") from None
        if value < 0:
            raise InvalidValueError(f"preprocessing step '{spec}': the argument must be ≥ 0")
        steps.append((step, value))
    return steps


def apply_preprocess(images: torch.Tensor, specs: Sequence[str], generator: torch.Generator) -> torch.Tensor:
    """Apply the run's preprocessing steps in order (nothing for an empty list: no draws either)."""
    for step, argument in parse_preprocess(specs):
        images = step.apply(images, argument, generator)
    return images
