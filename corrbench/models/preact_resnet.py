"""Pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks"), CIFAR stem.

Units are BN → ReLU → conv; the shortcut is the identity, or a 1×1 projection of the pre-activated input
where the shape changes. As in the paper, an extra BN → ReLU follows the last unit (it closes the last
stage here, so the head stays pool → fc).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.models import register_model

from corrbench.models.staged import StagedNet, build, init_weights


def bn_relu(chs: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(chs), nn.ReLU(inplace=True))


def conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_chs: int, chs: int, stride: int = 1):
        super().__init__()
        self.preact = bn_relu(in_chs)
        self.conv1 = conv(in_chs, chs, 3, stride)
        self.act2 = bn_relu(chs)
        self.conv2 = conv(chs, chs, 3)
        self.shortcut = conv(in_chs, chs, 1, stride) if stride != 1 or in_chs != chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.preact(x)
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(self.act2(self.conv1(out)))
        return out + residual


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_chs: int, chs: int, stride: int = 1):
        super().__init__()
        out_chs = chs * self.expansion
        self.preact = bn_relu(in_chs)
        self.conv1 = conv(in_chs, chs, 1)
        self.act2 = bn_relu(chs)
        self.conv2 = conv(chs, chs, 3, stride)
        self.act3 = bn_relu(chs)
        self.conv3 = conv(chs, out_chs, 1)
        self.shortcut = conv(in_chs, out_chs, 1, stride) if stride != 1 or in_chs != out_chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.preact(x)
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(out))
        out = self.conv3(self.act3(out))
        return out + residual


class PreActResNet(StagedNet):
    def __init__(self, block: type[PreActBlock] | type[PreActBottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 10, in_chans: int = 3):
        stem = conv(in_chans, 64, 3)
        stages, in_chs = [], 64
        for i, (chs, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks: list[nn.Module] = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_chs, chs, stride))
                in_chs = chs * block.expansion
            if i == len(layers) - 1:
                blocks.append(bn_relu(in_chs))  # the final activation of the pre-activation design
            stages.append(nn.Sequential(*blocks))
        super().__init__(stem, stages, num_features=in_chs, num_classes=num_classes)
        init_weights(self)


@register_model
def preact_resnet18(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3,
                    **kwargs) -> PreActResNet:
    """PreAct ResNet-18, CIFAR stem."""
    return build(PreActResNet, "preact_resnet18", pretrained, kwargs, block=PreActBlock, layers=(2, 2, 2, 2),
                 num_classes=num_classes, in_chans=in_chans)


@register_model
def preact_resnet50(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3,
                    **kwargs) -> PreActResNet:
    """PreAct ResNet-50 (bottleneck units), CIFAR stem."""
    return build(PreActResNet, "preact_resnet50", pretrained, kwargs, block=PreActBottleneck,
                 layers=(3, 4, 6, 3), num_classes=num_classes, in_chans=in_chans)
