"""Running a batched kernel over a large CPU batch in cache-sized chunks.

Per-image kernels with many full-size temporaries (float64 copies, gathers, weights) run several
times faster on the CPU when each temporary fits in cache. Draws are made for the whole batch
first and sliced with the images, so the bytes do not depend on the chunk size. Other devices get
one call: there, large launches are what is fast.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

CPU_CHUNK_VALUES = 1 << 16
"""Pixel values (B·C·H·W) per chunk on the CPU: 512 KiB as float64, so that a kernel's several
full-size temporaries stay in a 2 MiB L2 (measured: 1.2-2× faster than 2 MiB chunks for the HSV and
noise corruptions at one thread; `benchmarks/corruptions.py`)."""


def _slice(value: Any, start: int, stop: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value[start:stop]
    parts = [_slice(v, start, stop) for v in value]
    return type(value)(*parts) if hasattr(value, "_fields") else type(value)(parts)  # (named) tuple, list


def map_chunks(kernel: Callable[..., torch.Tensor], images: torch.Tensor, *per_image: Any) -> torch.Tensor:
    """`kernel(images[i:j], *(p[i:j] for p in per_image))` over CPU-cache-sized chunks, concatenated.

    `per_image` holds tensors, or (named) tuples of tensors, whose first dimension is the batch.
    """
    batch = images.shape[0]
    values = images.numel() // max(1, batch)
    step = batch if images.device.type != "cpu" else max(1, CPU_CHUNK_VALUES // max(1, values))
    if step >= batch:
        return kernel(images, *per_image)
    return torch.cat([kernel(images[i:i + step], *(_slice(p, i, i + step) for p in per_image))
                      for i in range(0, batch, step)])
