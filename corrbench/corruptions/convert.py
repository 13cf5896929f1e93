"""uint8 ↔ float conversions shared by every corruption (spec Part 0.1, 0.3, D.1, D.3)."""
from __future__ import annotations

import torch


def working_dtype(device: torch.device) -> torch.dtype:
    """Float dtype of the pixel arithmetic: float64 wherever the device has it (CPU, CUDA), as the
    reference computes in NumPy float64; float32 on MPS (no float64), where rare pixels may be off by 1."""
    return torch.float32 if device.type == "mps" else torch.float64


def divide(x: torch.Tensor, divisor: float) -> torch.Tensor:
    """x / divisor correctly rounded on every device.

    PyTorch's CUDA kernel turns division by a Python scalar into multiplication by its reciprocal, a
    second rounding: (u·(1/255))·255 floors to u − 1 for 24 of the 256 byte values, where the CPU's u/255
    gives u back. Dividing by a 0-dim tensor on the same device keeps IEEE division there.
    """
    return x / torch.tensor(divisor, dtype=x.dtype, device=x.device)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """x = u / 255 in the working dtype (the reference's `np.array(img) / 255.`), bit-identical on every
    device (see `divide`)."""
    return divide(images.to(working_dtype(images.device)), 255.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """`np.uint8(np.clip(x, 0, 1) * 255)`: clip, scale, then truncate (floor), never round (spec 0.1)."""
    # the clipped value is ≥ 0, where truncation toward zero is the floor; float → int32 → uint8 casts
    # run several times faster on the CPU than a direct float64 → uint8 cast (same result everywhere)
    return x.clamp(0.0, 1.0).mul_(255.0).to(torch.int32).to(torch.uint8)
