"""The shape every corrbench arch shares: stem → stages → head, with timm's model interface on top.

Our CIFAR-scale archs build a `StagedNet` directly, so `create_model` can wrap them without surgery and
methods can run part of the network (`Classifier.forward_features` / `forward_from`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from corrbench.errors import InvalidValueError

# Keys timm.create_model always passes to an entrypoint; our archs have no pretrained configs to use.
_TIMM_PLUMBING = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


class PoolHead(nn.Module):
    """Global average pool → flatten → linear."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.pool(x))
        return x if pre_logits else self.fc(x)


class StagedNet(nn.Module):
    """A network laid out as `stem`, `stages` (ModuleList) and `head` (PoolHead), timm-compatible."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], num_features: int, num_classes: int):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = PoolHead(num_features, num_classes)
        self.num_features = num_features
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head.fc = nn.Linear(self.num_features, num_classes)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs, BN γ=1 β=0, zero linear bias — as the reference CIFAR codes."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def build(model_cls: type[nn.Module], name: str, pretrained: bool, kwargs: dict[str, Any],
          **arch_args: Any) -> nn.Module:
    """What every timm entrypoint of ours does: refuse `pretrained`, drop timm's plumbing, construct."""
    if pretrained:
        raise InvalidValueError(f"no pretrained weights exist for '{name}' (corrbench works offline); "
                                f"use pretrained=False and train it with `corrbench train`")
    kwargs = {k: v for k, v in kwargs.items() if k not in _TIMM_PLUMBING}
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    model = model_cls(**arch_args, **kwargs)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model
