"""A small, fast CNN for 32×32 RGB digits (mnist5k quick runs): ~0.1M parameters, ~4M multiply-adds.

Stem: 3×3 conv to 16 channels; then three stages, each a stride-2 3×3 conv doubling the channels
(32, 64, 128), every conv followed by BN → ReLU; then global average pool → linear.
"""
from __future__ import annotations

import torch.nn as nn
from timm.models import register_model

from corrbench.models.staged import StagedNet, build, init_weights


def conv_bn_relu(in_chs: int, out_chs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_chs), nn.ReLU(inplace=True))


class MnistCNN(StagedNet):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128)):
        stem = conv_bn_relu(in_chans, widths[0])
        stages = [conv_bn_relu(a, b, stride=2) for a, b in zip(widths[:-1], widths[1:])]
        super().__init__(stem, stages, num_features=widths[-1], num_classes=num_classes)
        init_weights(self)


@register_model
def mnist_cnn(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> MnistCNN:
    """Small CNN for quick runs on mnist5k (32×32 RGB)."""
    return build(MnistCNN, "mnist_cnn", pretrained, kwargs, num_classes=num_classes, in_chans=in_chans)
