"""Label-smoothing helpers: soft targets and the soft-target cross-entropy.

Two smoothing forms are used by corrbench's methods:
- uniform mixing (Szegedy et al. 2016; mollification's `--ynoise ls`): y = γ/C + (1 − γ)·onehot, so the
  true class gets 1 − γ + γ/C;
- true-class probability (ESP, Sec. 3.1): the true class gets s, every other class (1 − s)/(C − 1).
Both take a per-example strength, so every row sums to 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def uniform_smoothed_targets(labels: torch.Tensor, num_classes: int, gamma: torch.Tensor | float) -> torch.Tensor:
    """y = γ/C + (1 − γ)·onehot(labels), float32 B×C; γ is a number or one value per example."""
    onehot = F.one_hot(labels, num_classes).float()
    gamma = torch.as_tensor(gamma, dtype=torch.float32, device=labels.device).reshape(-1, 1)
    return gamma / num_classes + (1.0 - gamma) * onehot


def true_class_targets(labels: torch.Tensor, num_classes: int, true_probability: torch.Tensor | float) -> torch.Tensor:
    """True class s, every other class (1 − s)/(C − 1), float32 B×C; s is a number or one per example."""
    if num_classes < 2:
        raise ValueError(f"label smoothing needs at least 2 classes, got {num_classes}")
    onehot = F.one_hot(labels, num_classes).float()
    s = torch.as_tensor(true_probability, dtype=torch.float32, device=labels.device).reshape(-1, 1)
    other = (1.0 - s) / (num_classes - 1)
    return other + (s - other) * onehot


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ_c targets_c · log softmax(logits)_c, computed in float32."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
