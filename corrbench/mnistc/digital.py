"""MNIST-C brightness, stripe and canny_edges (spec C rows 8, 10, 15)."""
from __future__ import annotations

import numpy as np
import torch

from corrbench.corruptions.convert import divide
from corrbench.mnistc.registry import register_digit, round_to_uint8

BRIGHTNESS_SHIFT = 0.5                      # severity 5 of [.1, .2, .3, .4, .5]
GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)     # skimage rgb2gray
STRIPE_COLUMNS = (slice(0, 7), slice(21, 28))


@register_digit("brightness", stochastic=False, parameters="HSV value + 0.5 (grey → RGB → HSV → RGB → grey)")
def brightness(digits: torch.Tensor) -> torch.Tensor:
    """For a grey image HSV has S = H = 0 and V = x, and hsv2rgb gives back (V, V, V) exactly, so the
    chain is rgb2gray(V′, V′, V′) = 0.2125·V′ + 0.7154·V′ + 0.0721·V′ with V′ = clip(x + 0.5, 0, 1)."""
    value = (divide(digits.to(torch.float64), 255.0) + BRIGHTNESS_SHIFT).clamp_(0.0, 1.0)
    grey = value * GREY_WEIGHTS[0] + value * GREY_WEIGHTS[1] + value * GREY_WEIGHTS[2]
    return round_to_uint8(grey.clamp_(0.0, 1.0) * 255.0)


@register_digit("stripe", stochastic=False, parameters="columns 0–6 and 21–27 inverted (255 − v)")
def stripe(digits: torch.Tensor) -> torch.Tensor:
    out = digits.clone()
    for columns in STRIPE_COLUMNS:
        out[..., columns] = 255 - digits[..., columns]
    return out


@register_digit("canny_edges", stochastic=False, parameters="scikit-image canny(σ 1, thresholds 0.1/0.2) → {0, 255}")
def canny_edges(digits: torch.Tensor) -> torch.Tensor:
    """`skimage.feature.canny(u/255)` per image. scikit-image itself runs it (on the CPU): its algorithm
    (mask-normalised smoothing, interpolated non-max suppression, labelled hysteresis) changed in 0.19, and
    calling it is the only faithful choice (spec C row 15); the installed version decides the bytes."""
    from skimage import feature  # imported here: only this corruption needs it
    grey = digits.detach().to("cpu").numpy().astype(np.float64) / 255.0
    edges = np.stack([feature.canny(image) for image in grey]).astype(np.uint8) * 255
    return torch.from_numpy(edges).to(digits.device)
