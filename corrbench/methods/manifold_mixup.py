"""`manifold-mixup`: mixup of hidden representations at a random layer (Verma et al., ICML 2019).

Per batch a layer k is drawn uniformly from `layers` — 0 = the (normalised) input, i = the output
of stage i; the official PreActResNet setting is k ∈ {0, 1, 2} (`mixup_hidden`,
`random.randint(0, 2)`), α = 2 on CIFAR (0.2 on Tiny-ImageNet). At that layer the batch is mixed
with λ ~ Beta(α, α) and one permutation, through `model(x, feature_hook=…, hook_at=…)`.

Paper vs code (`choices`): the paper trains on ℓ(f(mixed), Mix_λ(y, y')), with ℓ the
cross-entropy against the mixed one-hot target, which equals λ·CE(y) + (1 − λ)·CE(y') (`loss='ce'`,
the default; also how NFM/NoisyMix train their manifold-mixup baselines). The official code
instead applies `nn.BCELoss` to the softmax outputs and the mixed one-hot target, averaged over
batch × classes (`loss='bce'`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from corrbench.errors import InvalidValueError, check_range
from corrbench.methods.base import Method, Recipe, register_method, to_unit
from corrbench.methods.mixing import check_layers, forward_feature_mixup, mixed_accuracy, mixed_cross_entropy

LOSSES = ("ce", "bce")


def mixed_bce_on_softmax(logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
                         lam: torch.Tensor) -> torch.Tensor:
    """BCE(softmax(logits), λ·onehot(y_a) + (1 − λ)·onehot(y_b)), mean over batch × classes (official code)."""
    probs = F.softmax(logits.float(), dim=1)
    classes = logits.shape[1]
    target = lam * F.one_hot(labels_a, classes).float() + (1 - lam) * F.one_hot(labels_b, classes).float()
    return F.binary_cross_entropy(probs, target)


@register_method
@dataclass
class ManifoldMixup(Method):
    alpha: float = 2.0                          # λ ~ Beta(α, α)
    layers: tuple[int, ...] = (0, 1, 2)         # 0 = input, i = after stage i; one drawn per batch
    loss_form: str = "ce"                       # 'ce' (paper) | 'bce' (official code)

    name = "manifold-mixup"
    summary = "Mixup of hidden features at a random layer: input, after stage 1 or 2 (Verma et al. 2019)."
    recipe = Recipe(epochs=2000, batch_size=100, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
                    schedule="step", milestones=(500, 1000, 1500), gamma=0.1,
                    source="vikasverma1077/manifold_mixup supervised/README.md PreActResNet-18 command + main.py: "
                           "2000 epochs, lr 0.1 ×0.1 at 500/1000/1500, SGD 0.9 Nesterov, wd 1e-4, batch 100 "
                           "(NoisyMix's comparison retrains it with its own 200-epoch recipe)")
    choices = {
        "loss_form": "ce = λ·CE(y_a) + (1−λ)·CE(y_b), the paper's loss on the mixed target; "
                     "bce = BCE on softmax outputs vs the mixed one-hot target (official code)",
    }

    def __post_init__(self) -> None:
        check_range("manifold-mixup.alpha", self.alpha, low=0)
        self.layers = check_layers(self.name, self.layers)
        if self.loss_form not in LOSSES:
            raise InvalidValueError(f"manifold-mixup.loss_form must be 'ce' or 'bce', got '{self.loss_form}'")

    def loss(self, model, images, labels, generator):
        logits, lam, index = forward_feature_mixup(self.name, model, to_unit(images), generator,
                                                   alpha=self.alpha, layers=self.layers)
        if self.loss_form == "ce":
            loss = mixed_cross_entropy(logits, labels, labels[index], lam)
        else:
            loss = mixed_bce_on_softmax(logits, labels, labels[index], lam)
        return loss, {self.loss_form: loss.detach(),
                      "acc": mixed_accuracy(logits, labels, labels[index], lam), "lam": lam.detach()}
