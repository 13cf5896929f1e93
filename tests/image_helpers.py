"""Helpers shared by the corruption test files: layout conversion between the reference's HWC NumPy
arrays and corrbench's B×C×H×W tensors, seeded generators, and a standard mix of test images."""
from __future__ import annotations

import numpy as np
import torch


def to_torch(hwc: np.ndarray) -> torch.Tensor:
    """uint8 B×H×W×C (the reference's layout) -> B×C×H×W tensor."""
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(0, 3, 1, 2).contiguous()


def to_hwc(bchw: torch.Tensor) -> np.ndarray:
    return bchw.permute(0, 2, 3, 1).numpy()


def seeded(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def noise_and_ramps(batch: int, size: int, seed: int) -> np.ndarray:
    """uint8 B×S×S×3: noise for half the batch, smooth ramps with saturated edges for the rest."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, size)
    smooth = (ramp[None, :, None, None] * rng.uniform(0, 1, (batch, 1, 1, 3))
              + ramp[None, None, :, None] * rng.uniform(0, 1, (batch, 1, 1, 3))).clip(0, 255).astype(np.uint8)
    smooth[:, -2:] = 255
    images[batch // 2:] = smooth[batch // 2:]
    return images
