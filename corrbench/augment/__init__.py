"""Input-level augmentations, batched on the device with per-image randomness.

`random_crop_flip` is the standard CIFAR augmentation every recipe uses. `--augment NAME` selects an
extra augmentation from `AUGMENTATIONS` that composes with any method (e.g. TrivialAugment +
mollification); 'none' is the default.
"""
from corrbench.augment.geometry import random_crop_flip
from corrbench.augment.registry import AUGMENTATIONS, Augmentation, get_augmentation

__all__ = ["AUGMENTATIONS", "Augmentation", "get_augmentation", "random_crop_flip"]
