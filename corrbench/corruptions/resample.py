"""Pillow's BOX resize of 8-bit images, emulated in integers on a batch (spec G9)."""
from __future__ import annotations

import functools

import numpy as np
import torch

_PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling: 32 − 8 − 2


@functools.lru_cache(maxsize=None)
def box_coefficients(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's fixed-point BOX weights, int64 out_size × in_size (`precompute_coeffs` and
    `normalize_coeffs_8bpc` of Resample.c, same double arithmetic)."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    inverse = 1.0 / filterscale
    fixed = np.zeros((out_size, in_size), dtype=np.int64)
    for o in range(out_size):
        center = (o + 0.5) * scale
        lo = max(0, int(center - support + 0.5))
        hi = min(in_size, int(center + support + 0.5))
        weights = [1.0 if -0.5 < (j - center + 0.5) * inverse <= 0.5 else 0.0 for j in range(lo, hi)]
        total = 0.0
        for w in weights:
            total += w
        for j, w in zip(range(lo, hi), weights):
            normalised = w / total if total != 0.0 else w
            fixed[o, j] = int(0.5 + normalised * (1 << _PRECISION_BITS))
    fixed.setflags(write=False)
    return fixed


def _resample(x: torch.Tensor, coefficients: np.ndarray, dim: int) -> torch.Tensor:
    """One Pillow pass along `dim` of integer-valued float64 images: clip8((Σ K·p + 2²¹) >> 22).

    All sums are integers below 2⁵³, so float64 matmul is exact in any summation order.
    """
    k = torch.tensor(coefficients, device=x.device, dtype=x.dtype)
    summed = x @ k.T if dim == 3 else k @ x
    return torch.floor((summed + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS)).clamp_(0, 255)


def box_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """`PIL.Image.resize((size, size), BOX)` of every uint8 image B×C×H×W: horizontal pass first, the
    intermediate rounded and clipped to 8 bits, then the vertical pass. Returns uint8 B×C×size×size."""
    dtype = torch.float64 if images.device.type != "mps" else torch.float32
    x = images.to(dtype)
    x = _resample(x, box_coefficients(images.shape[3], size), dim=3)
    x = _resample(x, box_coefficients(images.shape[2], size), dim=2)
    return x.to(torch.uint8)
