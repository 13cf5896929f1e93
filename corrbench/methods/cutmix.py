"""`cutmix`: paste a random box of a partner image; labels weighted by area (Yun et al., ICCV 2019).

With probability `prob` per batch (0.5 on CIFAR, the README's `--cutmix_prob 0.5`; 1.0 for
ImageNet): λ ~ Beta(β, β), partners from one permutation, a box of side ⌊H·√(1 − λ)⌋ ×
⌊W·√(1 − λ)⌋ around a uniform integer centre, clipped to the image, and λ recomputed from the
clipped box as 1 − box area / image area (clovaai/CutMix-PyTorch `train.py::rand_bbox`). Without
CutMix the batch is trained with plain CE. The box is built as a mask on the device (no host
sync); a skipped batch is a zero-size box, whose loss 1·CE(y) + 0·CE(y_j) is plain CE exactly.
Paper and code agree; nothing to choose.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corrbench.errors import check_range
from corrbench.methods.base import Method, Recipe, register_method, to_unit
from corrbench.methods.mixing import mixed_accuracy, mixed_cross_entropy, permutation, sample_beta


def cutmix_box(height: int, width: int, lam: torch.Tensor, center_y: torch.Tensor,
               center_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y1, y2, x1, x2) of the clipped box: half-sides ⌊⌊side·√(1 − λ)⌋ / 2⌋ around the centre
    (`rand_bbox`)."""
    ratio = torch.sqrt(1.0 - lam.float())
    half_h = torch.floor(height * ratio).long() // 2
    half_w = torch.floor(width * ratio).long() // 2
    y1 = (center_y - half_h).clamp(0, height)
    y2 = (center_y + half_h).clamp(0, height)
    x1 = (center_x - half_w).clamp(0, width)
    x2 = (center_x + half_w).clamp(0, width)
    return y1, y2, x1, x2


def box_mask(height: int, width: int, box: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """H×W bool mask of the pixels inside [y1, y2) × [x1, x2)."""
    y1, y2, x1, x2 = box
    rows = torch.arange(height, device=y1.device).view(-1, 1)
    cols = torch.arange(width, device=y1.device).view(1, -1)
    return (rows >= y1) & (rows < y2) & (cols >= x1) & (cols < x2)


def box_lambda(height: int, width: int, box: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """λ from the clipped box: 1 − (y2 − y1)(x2 − x1) / (H·W)."""
    y1, y2, x1, x2 = box
    return 1.0 - ((y2 - y1) * (x2 - x1)).float() / float(height * width)


def sample_cutmix(x: torch.Tensor, beta: float, prob: float, generator: torch.Generator):
    """The draws of one batch, in the reference's order (apply?, λ, permutation, centre).

    Returns (mixed x, λ from the clipped box, permutation); a batch that skips CutMix has λ = 1."""
    n, _, height, width = x.shape
    device = generator.device
    apply = torch.rand((), generator=generator, device=device) < prob
    lam = sample_beta(beta, beta, generator)
    index = permutation(n, generator)
    center_y = torch.randint(height, (), generator=generator, device=device)
    center_x = torch.randint(width, (), generator=generator, device=device)
    lam = torch.where(apply, lam, torch.ones((), device=device))    # λ = 1: an empty box
    box = cutmix_box(height, width, lam, center_y, center_x)
    mixed = torch.where(box_mask(height, width, box), x[index], x)
    return mixed, box_lambda(height, width, box), index


@register_method
@dataclass
class CutMix(Method):
    beta: float = 1.0    # λ ~ Beta(β, β)
    prob: float = 0.5    # probability that a batch is cut-mixed (CIFAR README; 1.0 for ImageNet)

    name = "cutmix"
    summary = "Paste a random box from a partner image, labels weighted by box area (Yun et al. 2019)."
    recipe = Recipe(epochs=300, batch_size=64, lr=0.25, momentum=0.9, nesterov=True, weight_decay=1e-4,
                    schedule="step", milestones=(150, 225), gamma=0.1,
                    source="clovaai/CutMix-PyTorch README CIFAR command + train.py: 300 epochs, batch 64, lr 0.25 "
                           "×0.1 at 50% and 75% of training, SGD 0.9 Nesterov, wd 1e-4 (PyramidNet-200)")

    def __post_init__(self) -> None:
        check_range("cutmix.beta", self.beta, low=0, low_inclusive=False)
        check_range("cutmix.prob", self.prob, low=0, high=1)

    def loss(self, model, images, labels, generator):
        mixed, lam, index = sample_cutmix(to_unit(images), self.beta, self.prob, generator)
        logits = model(mixed)
        loss = mixed_cross_entropy(logits, labels, labels[index], lam)
        return loss, {"ce": loss.detach(), "acc": mixed_accuracy(logits, labels, labels[index], lam),
                      "lam": lam.detach()}
