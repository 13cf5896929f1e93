"""torchvision's default settings of AutoAugment and AugMix, as the mollification code uses them
(markusheinonen/supervised-mollification `src/data.py`: `AutoAugment()` and `AugMix()` with no arguments).

- `autoaugment-imagenet`: torchvision `AutoAugment()` defaults to the ImageNet policy, even on CIFAR
  (`autoaugment` is the CIFAR-10 policy).
- `augmix-all-ops`: torchvision `AugMix()` defaults to `all_ops=True`: the 9 AugMix ops plus colour,
  contrast, brightness and sharpness (13 ops), severity 3, width 3, depth 1–3, no JSD (`augmix` is the
  9-op CIFAR list of google-research/augmix). The chains are corrbench's AugMix (`augment/augmix.py`).
"""
from __future__ import annotations

import torch

from corrbench.augment.augmix import augmix, quantize
from corrbench.augment.policies import auto_augment
from corrbench.augment.registry import register_augmentation


@register_augmentation("autoaugment-imagenet", "AutoAugment, ImageNet policy (torchvision AutoAugment() default; "
                                               "the mollification code's choice, on CIFAR too).")
def _autoaugment_imagenet(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return auto_augment(images, generator, policy="imagenet")


@register_augmentation("augmix-all-ops", "AugMix without JSD, all 13 ops (torchvision AugMix() default "
                                         "all_ops=True; the mollification code's choice), rounded to uint8.")
def _augmix_all_ops(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return quantize(augmix(images, generator, all_ops=True))
