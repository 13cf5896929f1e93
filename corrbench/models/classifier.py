"""The model every corrbench run trains: normalisation inside, then stem → stages → head.

Inputs are float images in [0, 1] (B×C×H×W); the dataset's mean/std live in the model as buffers, so
methods perturb pixel space and checkpoints are self-contained. Methods that mix features between
stages run the network in two parts: `forward_from(forward_features(x, k), k) == forward(x)`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from corrbench.errors import InvalidValueError, LayoutError


class Normalize(nn.Module):
    """(x − mean) / std per channel, with mean and std stored as buffers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or len(mean) == 0:
            raise InvalidValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        if any(not s > 0 for s in std):
            raise InvalidValueError(f"every std must be > 0, got {list(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1] or not x.is_floating_point():
            raise LayoutError(f"the model takes float images in [0, 1] shaped B×{self.mean.shape[1]}×H×W, "
                              f"got {x.dtype} of shape {tuple(x.shape)}; convert uint8 with x.float() / 255")
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class Classifier(nn.Module):
    """normalize → stem → stages[0] → … → stages[-1] → head (pool → flatten → fc) → logits."""

    def __init__(self, normalize: Normalize, stem: nn.Module, stages: Sequence[nn.Module], head: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def forward(self, x: torch.Tensor, *, feature_hook: Callable[[torch.Tensor], torch.Tensor] | None = None,
                hook_at: int = 0) -> torch.Tensor:
        """Logits for float images in [0, 1].

        `feature_hook` (e.g. a mixing or noise function) is applied to the features at `hook_at`:
        -1 = the normalised input, 0 = after the stem, k = after `stages[:k]`. Going through
        `forward` keeps feature-level methods working under DistributedDataParallel.
        """
        if feature_hook is None:
            return self.forward_from_normalized(self.normalize(x))
        if not -1 <= hook_at <= self.num_stages:
            raise InvalidValueError(f"hook_at must be between -1 and {self.num_stages}, got {hook_at}")
        h = self.normalize(x)
        if hook_at == -1:
            h = feature_hook(h)
        h = self.stem(h)
        for index, stage in enumerate(self.stages):
            if index == hook_at:
                h = feature_hook(h)
            h = stage(h)
        if hook_at == self.num_stages:
            h = feature_hook(h)
        return self.head(h)

    def forward_from_normalized(self, h: torch.Tensor) -> torch.Tensor:
        """Logits for already-normalised inputs (methods that perturb after normalisation)."""
        return self.forward_from(self.stem(h), 0)

    def forward_features(self, x: torch.Tensor, upto: int) -> torch.Tensor:
        """Features of float images in [0, 1] after `stages[:upto]` (upto = 0: right after the stem)."""
        self._check_stage_index("upto", upto)
        h = self.stem(self.normalize(x))
        for stage in self.stages[:upto]:
            h = stage(h)
        return h

    def forward_from(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from features `h` taken after `stages[:start]`: runs `stages[start:]` and the head."""
        self._check_stage_index("start", start)
        for stage in self.stages[start:]:
            h = stage(h)
        return self.head(h)

    def _check_stage_index(self, what: str, index: int) -> None:
        if not 0 <= index <= self.num_stages:
            raise InvalidValueError(f"{what} must be a stage index between 0 and {self.num_stages}, got {index}")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not, shared ones once), as papers report model size."""
    return sum(p.numel() for p in model.parameters())
