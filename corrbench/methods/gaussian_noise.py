"""`gaussian-noise`: train on x + σ·N(0, I) with σ ~ U(0, σ_max) per example.

The GN baseline ("DiGN w/o CR") of MAGN's code (TheoT1/DiGN `train.py`, methods.md §2.1): no
regulariser, CIFAR σ_max 0.2 (Tiny-ImageNet 0.6). The code documents the noise as added after
normalisation, but its `normalize()` only touches three samples per batch, so the noise is in [0, 1]
pixel space for practically every sample; corrbench adds it in pixel space (`space='pixel'`, the
code's behaviour) and offers `space='normalized'` (the documented intent). The code does not clip.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit


def per_example_gaussian_noise(x: torch.Tensor, sigma_max: float, generator: torch.Generator) -> torch.Tensor:
    """x + σ_i·ε with σ_i ~ U(0, σ_max) per example and ε ~ N(0, I), both from `generator`."""
    sigma = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype) * sigma_max
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


@register_method
@dataclass
class GaussianNoise(Method):
    sigma_max: float = 0.2
    space: str = "pixel"   # 'pixel' (authors' code, effectively) | 'normalized' (documented intent)
    clip: bool = False     # the code does not clip x + δ to [0, 1]

    name = "gaussian-noise"
    summary = "Input noise x + σ·N(0,I), σ ~ U(0, σ_max) per example (MAGN's GN baseline)."
    recipe = Recipe(epochs=150, batch_size=128, lr=0.1, schedule="step", milestones=(50, 100), gamma=0.1,
                    source="MAGN/DiGN code train.py: 150 epochs, lr 0.1 ×0.1 every 50, Nesterov, wd 5e-4")
    choices = {
        "space": "pixel = noise on [0,1] pixels (what the DiGN code effectively does); "
                 "normalized = noise after mean/std normalisation (what its docstring says)",
        "clip": "false = x+δ unclipped (code); true = clipped to [0,1]",
    }

    def __post_init__(self) -> None:
        if self.sigma_max < 0:
            raise InvalidValueError(f"gaussian-noise.sigma_max must be ≥ 0, got {self.sigma_max}")
        if self.space not in ("pixel", "normalized"):
            raise InvalidValueError(f"gaussian-noise.space must be 'pixel' or 'normalized', got '{self.space}'")

    def loss(self, model, images, labels, generator):
        x = to_unit(images)
        if self.space == "pixel":
            noisy = per_example_gaussian_noise(x, self.sigma_max, generator)
            if self.clip:
                noisy = noisy.clamp(0, 1)
            logits = model(noisy)
        else:
            logits = model(x, hook_at=-1,
                           feature_hook=lambda h: per_example_gaussian_noise(h, self.sigma_max, generator))
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels)}
