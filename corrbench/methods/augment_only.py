"""Augment-only baselines: cross-entropy on a batch augmented per image by TrivialAugment-wide,
AutoAugment or RandAugment (corrbench.augment.policies; torchvision's op spaces, PIL-exact ops).

The same augmentations compose with any method through `--augment NAME`; these entries make them
table rows with their papers' recipes. Cutout (16 px), which the papers' CIFAR recipes add, is not
applied.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corrbench.augment.policies import POLICIES, auto_augment, rand_augment, trivial_augment_wide
from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit

# automl/trivialaugment confs/*_cifar10_b128_maxlr.1_*_200epochs.yaml (TA, AA and RA rows alike).
CIFAR_AUGMENT_RECIPE = dict(epochs=200, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                            schedule="cosine")


@dataclass
class AugmentOnly(Method):
    """CE on `augment(images)`; subclasses define the augmentation."""

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, model, images, labels, generator):
        logits = model(to_unit(self.augment(images, generator)))
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels)}


@register_method
@dataclass
class TrivialAugment(AugmentOnly):
    num_bins: int = 31

    name = "trivialaugment"
    summary = "TrivialAugment-wide: CE on images with one random op at a random strength each (Müller & Hutter 2021)."
    recipe = Recipe(**CIFAR_AUGMENT_RECIPE,
                    source="automl/trivialaugment wresnet40x2_cifar10 ta_wide conf: 200 epochs, lr 0.1 cosine, "
                           "Nesterov, wd 5e-4, batch 128 (+ cutout 16, not applied)")

    def __post_init__(self) -> None:
        if self.num_bins < 2:
            raise InvalidValueError(f"trivialaugment.num_bins must be ≥ 2, got {self.num_bins}")

    def augment(self, images, generator):
        return trivial_augment_wide(images, generator, num_bins=self.num_bins)


@register_method
@dataclass
class AutoAugment(AugmentOnly):
    policy: str = "cifar10"

    name = "autoaugment"
    summary = "AutoAugment: CE on images each augmented by a random learned sub-policy (Cubuk et al. 2019)."
    recipe = Recipe(**CIFAR_AUGMENT_RECIPE,
                    source="automl/trivialaugment wresnet28x10_cifar10 autoaug conf (AutoAugment's CIFAR setup): "
                           "200 epochs, lr 0.1 cosine, Nesterov, wd 5e-4, batch 128 (+ cutout 16, not applied)")
    choices = {"policy": "cifar10 (default, the policy learned on CIFAR-10) | imagenet (torchvision's default; "
                         "used by the mollification paper) | svhn"}

    def __post_init__(self) -> None:
        POLICIES.get(self.policy)

    def augment(self, images, generator):
        return auto_augment(images, generator, policy=self.policy)


@register_method
@dataclass
class RandAugment(AugmentOnly):
    num_ops: int = 2
    magnitude: int = 9
    num_bins: int = 31

    name = "randaugment"
    summary = "RandAugment: CE on images each augmented by N random ops at magnitude M (Cubuk et al. 2020)."
    recipe = Recipe(**CIFAR_AUGMENT_RECIPE,
                    source="automl/trivialaugment wresnet28x10_cifar10 randaug conf: 200 epochs, lr 0.1 cosine, "
                           "Nesterov, wd 5e-4, batch 128 (+ cutout 16, not applied)")
    choices = {"num_ops": "2 with magnitude 9 of 31 = torchvision defaults (the paper's ImageNet setting); the "
                          "paper's CIFAR-10 WRN-28-10 setting is N=3, M=5 on its own scale"}

    def __post_init__(self) -> None:
        if self.num_ops < 0 or self.num_bins < 2 or not 0 <= self.magnitude < self.num_bins:
            raise InvalidValueError(f"randaugment needs num_ops ≥ 0, num_bins ≥ 2 and 0 ≤ magnitude < num_bins, "
                                    f"got {self.num_ops}, {self.num_bins}, {self.magnitude}")

    def augment(self, images, generator):
        return rand_augment(images, generator, num_ops=self.num_ops, magnitude=self.magnitude,
                            num_bins=self.num_bins)
