"""`mixup`: train on λ·x_i + (1 − λ)·x_j with loss λ·CE(y_i) + (1 − λ)·CE(y_j) (Zhang et al., ICLR 2018).

λ ~ Beta(α, α) once per batch, partners j from one random permutation of the batch, as in
facebookresearch/mixup-cifar10 `mixup_data` / `mixup_criterion` (α = 1 for CIFAR). Mixing is done
on [0, 1] pixels; the reference mixes normalised tensors, which is the same image (normalisation
is affine). Paper and code agree; nothing to choose.
"""
from __future__ import annotations

from dataclasses import dataclass

from corrbench.errors import check_range
from corrbench.methods.base import Method, Recipe, register_method, to_unit
from corrbench.methods.mixing import mix, mixed_accuracy, mixed_cross_entropy, permutation, sample_lambda


@register_method
@dataclass
class Mixup(Method):
    alpha: float = 1.0   # λ ~ Beta(α, α); 0 turns mixing off

    name = "mixup"
    summary = "Input mixup: convex combinations of image pairs and of their labels (Zhang et al. 2018)."
    recipe = Recipe(epochs=200, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
                    schedule="step", milestones=(100, 150), gamma=0.1,
                    source="Zhang et al. 2018 §3.2 / facebookresearch/mixup-cifar10 train.py: 200 epochs, batch 128, "
                           "SGD 0.9, lr 0.1 ÷10 at epochs 100 and 150, wd 1e-4")

    def __post_init__(self) -> None:
        check_range("mixup.alpha", self.alpha, low=0)

    def loss(self, model, images, labels, generator):
        x = to_unit(images)
        lam = sample_lambda(self.alpha, generator)
        index = permutation(x.shape[0], generator)
        logits = model(mix(x, lam, index))
        loss = mixed_cross_entropy(logits, labels, labels[index], lam)
        return loss, {"ce": loss.detach(), "acc": mixed_accuracy(logits, labels, labels[index], lam),
                      "lam": lam.detach()}
