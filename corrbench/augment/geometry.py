"""Random crop with zero padding and random horizontal flip, batched, per image."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """RandomCrop(size, padding, fill 0) + RandomHorizontalFlip(0.5) on a uint8 B×C×H×W batch.

    Each image draws its own offsets (uniform in 0..2·padding) and flip bit from `generator`.
    """
    batch, channels, height, width = images.shape
    device = images.device
    out = images
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
        dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
        rows = (dy[:, None] + torch.arange(height, device=device)[None, :])          # B×H
        cols = (dx[:, None] + torch.arange(width, device=device)[None, :])           # B×W
        index_b = torch.arange(batch, device=device)[:, None, None, None]
        index_c = torch.arange(channels, device=device)[None, :, None, None]
        out = padded[index_b, index_c, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        flip_mask = torch.rand(batch, generator=generator, device=device) < 0.5
        out = torch.where(flip_mask[:, None, None, None], out.flip(-1), out)
    return out
