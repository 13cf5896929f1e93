"""`apply_per_image`: a different op with a different magnitude for every image of a batch, by one of two
paths that give the same bytes — grouped (`ops.apply_per_image_grouped`, the CPU default) or fused
(`fused.apply_per_image_fused`, the default off the CPU: a few batch-wide kernels and no host sync)."""
from __future__ import annotations

from typing import Sequence

import torch

from corrbench.augment.fused import apply_per_image_fused
from corrbench.augment.ops import apply_per_image_grouped, check_per_image_arguments


def apply_per_image(images: torch.Tensor, op_index: torch.Tensor, magnitude: torch.Tensor,
                    op_names: Sequence[str], resample: str = "nearest", *, fused: bool | None = None,
                    rotation_angles: Sequence[float] | None = None) -> torch.Tensor:
    """Image i gets op `op_names[op_index[i]]` with `magnitude[i]`; op_index −1 leaves it unchanged.

    `fused` picks the path (default: fused off the CPU, grouped on it); the fused path needs no host sync
    when `rotation_angles` lists every angle a `rotate` may get. The images' memory format is kept.
    """
    check_per_image_arguments(images, op_names, resample)
    op_index = op_index.to(images.device)
    magnitude = magnitude.to(device=images.device, dtype=torch.float64)
    if not (fused if fused is not None else images.device.type != "cpu"):
        return apply_per_image_grouped(images, op_index, magnitude, op_names, resample)
    out = apply_per_image_fused(images.contiguous(), op_index, magnitude, op_names, resample, rotation_angles)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return out
