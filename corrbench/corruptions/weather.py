"""Weather corruptions (spec A.8–A.11, A.18). Implemented so far: brightness. Deterministic."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import to_unit, to_uint8
from corrbench.corruptions.hsv import hsv_to_rgb, rgb_to_hsv
from corrbench.corruptions.registry import register

BRIGHTNESS_SHIFT = {
    "cifar": (0.05, 0.1, 0.15, 0.2, 0.3),
    "tiny": (0.1, 0.2, 0.3, 0.4, 0.5),
    "imagenet": (0.1, 0.2, 0.3, 0.4, 0.5),
}


@register("brightness", stochastic=False, table=BRIGHTNESS_SHIFT,
          parameters="c added to the HSV value V (clipped to [0, 1])", spec="A.11")
def brightness(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.11: rgb2hsv(x), V ← clip(V + c, 0, 1), hsv2rgb, clip, ×255, truncate (G10 op order)."""
    shift = BRIGHTNESS_SHIFT[scale][severity - 1]
    hsv = rgb_to_hsv(to_unit(images))
    hsv[:, 2] = (hsv[:, 2] + shift).clamp_(0.0, 1.0)
    return to_uint8(hsv_to_rgb(hsv))
