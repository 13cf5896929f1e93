"""The brightness sequence (spec B.2): the A.11 HSV value shift, swept from darker to brighter."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import to_unit, to_uint8
from corrbench.corruptions.hsv import hsv_to_rgb, rgb_to_hsv
from corrbench.perturbations.registry import register_perturbation

BRIGHTNESS_FRAMES = 31


def brightness_shift(t: int) -> float:
    """c = 0.015·(t − 15), computed as the reference writes it, (t − 15)·1.5/100, so the doubles match."""
    return (t - 15) * 1.5 / 100.0


@register_perturbation("brightness", frames=BRIGHTNESS_FRAMES, stochastic=False, clean_first=False,
                       schedule="HSV value shift c = 0.015·(t − 15) (−0.225…+0.225)")
def brightness(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t is rgb2hsv(img/255), V ← clip(V + c_t, 0, 1), hsv2rgb, ×255, truncate (G10 op order)."""
    hsv = rgb_to_hsv(to_unit(images))
    videos = images.new_empty((images.shape[0], BRIGHTNESS_FRAMES, *images.shape[1:]))
    for t in range(BRIGHTNESS_FRAMES):
        shifted = hsv.clone()
        shifted[:, 2] = (hsv[:, 2] + brightness_shift(t)).clamp_(0.0, 1.0)
        # hsv2rgb of V, S in [0, 1] is in [0, 1]: the reference's missing clip changes nothing.
        videos[:, t] = to_uint8(hsv_to_rgb(shifted))
    return videos
