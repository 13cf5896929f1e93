"""ResNet with the CIFAR stem (He et al. 2016, "Deep Residual Learning", §4.2 adapted as in Kuang Liu's
pytorch-cifar): 3×3 stride-1 stem conv, no max-pool, four stages of 64/128/256/512 channels. This is what
CIFAR robustness papers (and the MAGN / ESP / NoisyMix codes) mean by "ResNet-18" at 32 px.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.models import register_model

from corrbench.models.staged import StagedNet, build, init_weights


def conv_bn(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_chs),
    )


def projection(in_chs: int, out_chs: int, stride: int) -> nn.Module:
    """1×1 conv + BN shortcut where the shape changes, identity otherwise (option B of He et al.)."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return conv_bn(in_chs, out_chs, 1, stride)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_chs: int, chs: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(in_chs, chs, 3, stride)
        self.conv2 = conv_bn(chs, chs, 3)
        self.shortcut = projection(in_chs, chs, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.conv1(x)))
        return self.act(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_chs: int, chs: int, stride: int = 1):
        super().__init__()
        out_chs = chs * self.expansion
        self.conv1 = conv_bn(in_chs, chs, 1)
        self.conv2 = conv_bn(chs, chs, 3, stride)
        self.conv3 = conv_bn(chs, out_chs, 1)
        self.shortcut = projection(in_chs, out_chs, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        out = self.conv3(out)
        return self.act(out + self.shortcut(x))


class CifarResNet(StagedNet):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 num_classes: int = 10, in_chans: int = 3):
        stem = nn.Sequential(conv_bn(in_chans, 64, 3), nn.ReLU(inplace=True))
        stages, in_chs = [], 64
        for i, (chs, depth) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(in_chs, chs, stride))
                in_chs = chs * block.expansion
            stages.append(nn.Sequential(*blocks))
        super().__init__(stem, stages, num_features=in_chs, num_classes=num_classes)
        init_weights(self)


@register_model
def cifar_resnet18(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> CifarResNet:
    """ResNet-18, CIFAR stem (11.17M parameters at 10 classes)."""
    return build(CifarResNet, "cifar_resnet18", pretrained, kwargs, block=BasicBlock, layers=(2, 2, 2, 2),
                 num_classes=num_classes, in_chans=in_chans)


@register_model
def cifar_resnet34(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> CifarResNet:
    """ResNet-34, CIFAR stem."""
    return build(CifarResNet, "cifar_resnet34", pretrained, kwargs, block=BasicBlock, layers=(3, 4, 6, 3),
                 num_classes=num_classes, in_chans=in_chans)


@register_model
def cifar_resnet50(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> CifarResNet:
    """ResNet-50 (bottleneck), CIFAR stem."""
    return build(CifarResNet, "cifar_resnet50", pretrained, kwargs, block=Bottleneck, layers=(3, 4, 6, 3),
                 num_classes=num_classes, in_chans=in_chans)
