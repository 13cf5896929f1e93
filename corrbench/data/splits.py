"""Seeded splits of a dataset split (a held-out part of the training images)."""
from __future__ import annotations

import torch

from corrbench.data.datasets import ImageSet
from corrbench.device import make_generator


def holdout_split(n: int, holdout: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held-out) sorted index tensors: `holdout` images chosen by a generator seeded from `seed`."""
    order = torch.randperm(n, generator=make_generator(torch.device("cpu"), seed, "holdout"))
    return order[holdout:].sort().values, order[:holdout].sort().values


class SubsetImages:
    """A view of some images of an ImageSet (same interface: labels, len, images, tensor, in_memory)."""

    def __init__(self, base: ImageSet, indices: torch.Tensor):
        self.base, self.indices = base, indices
        self.labels = base.labels[indices]
        self.in_memory = base.in_memory

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def images(self, index: slice | torch.Tensor) -> torch.Tensor:
        return self.base.images(self.indices[index])

    def tensor(self) -> torch.Tensor:
        return self.base.images(self.indices)
