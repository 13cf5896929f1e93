"""The `--augment` registry: input-level augmentations that compose with any method."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from corrbench.registry import Registry


@dataclass(frozen=True)
class Augmentation:
    name: str
    summary: str
    apply: Callable[[torch.Tensor, torch.Generator], torch.Tensor]   # uint8 batch -> uint8 batch


AUGMENTATIONS: Registry[Augmentation] = Registry("augmentation")
AUGMENTATIONS.register("none", Augmentation("none", "No input augmentation beyond crop and flip.",
                                            lambda images, generator: images))


def get_augmentation(name: str) -> Augmentation:
    return AUGMENTATIONS.get(name)


def register_augmentation(name: str, summary: str):
    """Decorator: `@register_augmentation('trivialaugment', '…')` on a function (uint8 batch, generator) -> uint8 batch."""
    def wrap(apply: Callable[[torch.Tensor, torch.Generator], torch.Tensor]):
        AUGMENTATIONS.register(name, Augmentation(name, summary, apply))
        return apply
    return wrap
