"""`augmix`: AugMix with the Jensen–Shannon consistency loss (Hendrycks et al., ICLR 2020).

google-research/augmix `cifar.py::train`: the clean batch and two AugMix views of it go through the
network as one concatenated batch (so BatchNorm sees all three); the loss is CE on the clean logits
plus 12·JS(p_clean, p_aug1, p_aug2). `jsd=False` is the code's `--no-jsd`: CE on one AugMix view.
Views are float mixes in [0, 1], not rounded to uint8 (the reference mixes after ToTensor).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corrbench.augment.augmix import augmix, check_augmix_settings
from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit
from corrbench.methods.losses import jensen_shannon


@register_method
@dataclass
class AugMix(Method):
    severity: float = 3.0    # each op's level ~ U(0.1, severity); CIFAR 3, ImageNet 1
    width: int = 3           # chains mixed per view
    depth: int = -1          # ops per chain; ≤ 0: uniform 1–3 per chain
    alpha: float = 1.0       # Dirichlet(α) chain weights, Beta(α, α) skip weight
    all_ops: bool = False    # add color/contrast/brightness/sharpness (overlap the -C corruptions)
    jsd: bool = True
    jsd_weight: float = 12.0

    name = "augmix"
    summary = "AugMix: CE on clean images + 12·JS(clean, two AugMix views) (Hendrycks et al. 2020)."
    recipe = Recipe(epochs=100, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                    schedule="cosine",
                    source="google-research/augmix cifar.py: WRN-40-2, 100 epochs, SGD lr 0.1 Nesterov 0.9, "
                           "wd 5e-4, batch 128, per-step cosine (to 1e-6 there, to 0 here)")
    choices = {
        "jsd": "true = CE(clean) + jsd_weight·JS over clean + 2 AugMix views (paper and code default); "
               "false = CE on one AugMix view (code's --no-jsd; torchvision AugMix as used by mollification)",
        "all_ops": "false = the 9-op CIFAR list (code default); true = --all-ops, adds 4 ops that overlap -C",
        "severity": "3 = CIFAR (code default); 1 = ImageNet recipe",
    }

    def __post_init__(self) -> None:
        check_augmix_settings(self.severity, self.width, self.depth, self.alpha)
        if not self.jsd_weight >= 0:
            raise InvalidValueError(f"augmix.jsd_weight must be ≥ 0, got {self.jsd_weight}")

    def view(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return augmix(images, generator, severity=self.severity, width=self.width, depth=self.depth,
                      alpha=self.alpha, all_ops=self.all_ops)

    def loss(self, model, images, labels, generator):
        if not self.jsd:
            logits = model(self.view(images, generator))
            loss = cross_entropy(logits, labels)
            return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels)}
        views = torch.cat([to_unit(images), self.view(images, generator), self.view(images, generator)])
        if images.is_contiguous(memory_format=torch.channels_last):
            views = views.contiguous(memory_format=torch.channels_last)
        logits_clean, logits_aug1, logits_aug2 = model(views).split(images.shape[0])
        ce = cross_entropy(logits_clean, labels)
        js = jensen_shannon(logits_clean, logits_aug1, logits_aug2)
        loss = ce + self.jsd_weight * js
        return loss, {"ce": ce.detach(), "js": js.detach(), "acc": accuracy(logits_clean.detach(), labels)}
