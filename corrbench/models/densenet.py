"""DenseNet-BC for CIFAR (Huang et al. 2017, "Densely Connected Convolutional Networks"), as in Kuang Liu's
pytorch-cifar: growth rate 32, blocks of 6/12/24/16 bottleneck layers, compression 0.5, and a CIFAR stem
(3×3 stride-1 conv to 2·growth channels, no max-pool). Each stage is a dense block plus its transition;
the last one ends with BN → ReLU.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from timm.models import register_model

from corrbench.models.staged import StagedNet, build, init_weights


class DenseLayer(nn.Module):
    """BN → ReLU → 1×1 conv (4·growth) → BN → ReLU → 3×3 conv (growth); output concatenated to the input."""

    def __init__(self, in_chs: int, growth_rate: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True),
            nn.Conv2d(in_chs, 4 * growth_rate, 1, bias=False),
            nn.BatchNorm2d(4 * growth_rate), nn.ReLU(inplace=True),
            nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.layers(x), x], dim=1)


def transition(in_chs: int, out_chs: int) -> nn.Sequential:
    """BN → ReLU → 1×1 conv → 2×2 average pool."""
    return nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True),
                         nn.Conv2d(in_chs, out_chs, 1, bias=False), nn.AvgPool2d(2))


class CifarDenseNet(StagedNet):
    def __init__(self, block_layers: tuple[int, ...], growth_rate: int = 32, reduction: float = 0.5,
                 num_classes: int = 10, in_chans: int = 3):
        chs = 2 * growth_rate
        stem = nn.Conv2d(in_chans, chs, 3, padding=1, bias=False)
        stages = []
        for i, n_layers in enumerate(block_layers):
            layers: list[nn.Module] = []
            for _ in range(n_layers):
                layers.append(DenseLayer(chs, growth_rate))
                chs += growth_rate
            if i < len(block_layers) - 1:
                out_chs = int(math.floor(chs * reduction))
                layers.append(transition(chs, out_chs))
                chs = out_chs
            else:
                layers += [nn.BatchNorm2d(chs), nn.ReLU(inplace=True)]
            stages.append(nn.Sequential(*layers))
        super().__init__(stem, stages, num_features=chs, num_classes=num_classes)
        init_weights(self)


@register_model
def cifar_densenet121(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3,
                      **kwargs) -> CifarDenseNet:
    """DenseNet-121 (BC, growth 32), CIFAR stem."""
    return build(CifarDenseNet, "cifar_densenet121", pretrained, kwargs, block_layers=(6, 12, 24, 16),
                 growth_rate=32, num_classes=num_classes, in_chans=in_chans)
