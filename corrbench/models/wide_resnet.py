"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016, "Wide Residual Networks"), as in AugMix's CIFAR code.

Three groups of (d − 4) / 6 pre-activation basic blocks (BN → ReLU → 3×3 conv, twice) with 16k, 32k and
64k channels after a 3×3 stem conv of 16 channels; dropout between the convs defaults to 0. A final
BN → ReLU closes the last stage. The 1×1 projection shortcut, where the shape changes, reads the
pre-activated input.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_model

from corrbench.errors import InvalidValueError
from corrbench.models.staged import StagedNet, build, init_weights


class WideBlock(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate
        self.shortcut = (nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)
                         if stride != 1 or in_chs != out_chs else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.act(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + residual


class WideResNet(StagedNet):
    def __init__(self, depth: int, widen_factor: int, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0):
        if (depth - 4) % 6 != 0 or depth < 10:
            raise InvalidValueError(f"Wide ResNet depth must be 6n + 4 with n ≥ 1 (e.g. 28, 40), got {depth}")
        blocks_per_stage = (depth - 4) // 6
        stem = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        stages, in_chs = [], 16
        for i, chs in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            blocks: list[nn.Module] = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(WideBlock(in_chs, chs, stride, drop_rate))
                in_chs = chs
            if i == 2:
                blocks += [nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True)]
            stages.append(nn.Sequential(*blocks))
        super().__init__(stem, stages, num_features=in_chs, num_classes=num_classes)
        init_weights(self)


@register_model
def wrn_28_2(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> WideResNet:
    """WRN-28-2 (1.47M parameters at 10 classes)."""
    return build(WideResNet, "wrn_28_2", pretrained, kwargs, depth=28, widen_factor=2,
                 num_classes=num_classes, in_chans=in_chans)


@register_model
def wrn_28_4(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> WideResNet:
    """WRN-28-4 (5.85M parameters at 10 classes)."""
    return build(WideResNet, "wrn_28_4", pretrained, kwargs, depth=28, widen_factor=4,
                 num_classes=num_classes, in_chans=in_chans)


@register_model
def wrn_40_2(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> WideResNet:
    """WRN-40-2 (2.24M parameters at 10 classes; AugMix's CIFAR model)."""
    return build(WideResNet, "wrn_40_2", pretrained, kwargs, depth=40, widen_factor=2,
                 num_classes=num_classes, in_chans=in_chans)
