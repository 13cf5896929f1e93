"""Blur corruptions: defocus_blur, gaussian_blur (spec A.4, A.17). Deterministic."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import to_unit, to_uint8
from corrbench.corruptions.filters import correlate_reflect101, disk_kernel, gaussian_filter_nearest
from corrbench.corruptions.registry import register

DEFOCUS_BLUR_DISK = {
    "cifar": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "tiny": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "imagenet": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
}


@register("defocus_blur", stochastic=False, table=DEFOCUS_BLUR_DISK,
          parameters="(disk radius, anti-aliasing σ) of the disk kernel", spec="A.4")
def defocus_blur(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.4: each channel of x = u/255 correlated with `disk(r, α)` (G6: float64-built, float32
    kernel, not renormalised) with a REFLECT_101 border (G3), then clip, ×255, truncate."""
    radius, alias_blur = DEFOCUS_BLUR_DISK[scale][severity - 1]
    return to_uint8(correlate_reflect101(to_unit(images), disk_kernel(radius, alias_blur)))


GAUSSIAN_BLUR_SIGMA = {
    "cifar": (0.4, 0.6, 0.7, 0.8, 1),
    "tiny": (0.5, 0.75, 1, 1.25, 1.5),
    "imagenet": (1, 2, 3, 4, 6),
}


@register("gaussian_blur", stochastic=False, table=GAUSSIAN_BLUR_SIGMA,
          parameters="σ of the Gaussian blur in pixels", spec="A.17")
def gaussian_blur(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.17: scikit-image `gaussian(x, σ, multichannel)` (G1: 'nearest' border, truncate 4, rows
    then columns, bit-identical to scipy in float64), then clip, ×255, truncate."""
    sigma = GAUSSIAN_BLUR_SIGMA[scale][severity - 1]
    return to_uint8(gaussian_filter_nearest(to_unit(images), sigma))
