"""`standard`: empirical risk minimisation with cross-entropy (the baseline row of every table)."""
from __future__ import annotations

from dataclasses import dataclass


from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit


@register_method
@dataclass
class Standard(Method):
    name = "standard"
    summary = "Cross-entropy on clean images (ERM baseline)."
    recipe = Recipe(epochs=200, batch_size=128, lr=0.1, schedule="cosine",
                    source="common CIFAR recipe (AugMix/NoisyMix baselines): SGD 0.9 Nesterov, wd 5e-4, cosine")

    def loss(self, model, images, labels, generator):
        logits = model(to_unit(images))
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels)}
