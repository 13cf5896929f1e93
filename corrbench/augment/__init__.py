"""Input-level augmentations, batched on the device with per-image randomness.

`random_crop_flip` is the standard CIFAR augmentation every recipe uses. `--augment NAME` selects an
extra augmentation from `AUGMENTATIONS` that composes with any method (e.g. TrivialAugment +
mollification); 'none' is the default.
"""
from corrbench.augment.geometry import random_crop_flip
from corrbench.augment.registry import AUGMENTATIONS, Augmentation, get_augmentation, register_augmentation
from corrbench._discovery import import_submodules

# Every module of this package is imported so that its augmentations enter the registry.
import_submodules(__name__, __path__)

__all__ = ["AUGMENTATIONS", "Augmentation", "get_augmentation", "random_crop_flip", "register_augmentation"]
