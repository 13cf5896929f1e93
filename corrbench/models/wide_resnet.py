"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016, "Wide Residual Networks"), as in AugMix's CIFAR code.

Three groups of (d − 4) / 6 pre-activation basic blocks (BN → ReLU → 3×3 conv, twice) with 16k, 32k and
64k channels after a 3×3 stem conv of 16 channels; dropout between the convs defaults to 0. A final
BN → ReLU follows the last group; it belongs to the head's computation (the last stage returns the raw
output of its blocks, which is what the manifold-mixup codes mix at k = 3), while the BN stays stored
in the last stage, so checkpoints keep their keys. The 1×1 projection shortcut, where the shape
changes, reads the pre-activated input.

`wrn_28_4_noisymix` is the WRN-28-4 of erichson/NoisyMix `src/cifar_models/wide_resnet.py` (the
meliketoy block): dropout 0.1 right after the first conv, convs with biases, the stride on the second
conv, the shortcut on the raw input, momentum 0.9 on the final BN, PyTorch's default initialisation.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import register_model

from corrbench.errors import InvalidValueError
from corrbench.models.staged import PoolHead, StagedNet, build, init_weights


class WideBlock(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int, drop_rate: float = 0.0, noisymix: bool = False):
        super().__init__()
        self.noisymix = noisymix
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=1 if noisymix else stride, padding=1, bias=noisymix)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=stride if noisymix else 1, padding=1, bias=noisymix)
        self.act = nn.ReLU(inplace=True)
        self.drop_rate = drop_rate
        self.shortcut = (nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=noisymix)
                         if stride != 1 or in_chs != out_chs else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noisymix:   # conv1 → dropout → BN → ReLU → conv2, shortcut on the raw input
            out = F.dropout(self.conv1(self.act(self.bn1(x))), p=self.drop_rate, training=self.training)
            residual = x if self.shortcut is None else self.shortcut(x)
            return self.conv2(self.act(self.bn2(out))) + residual
        out = self.act(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self.act(self.bn2(self.conv1(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + residual


class LastGroup(nn.Sequential):
    """The last group of blocks, stored with the network's final BN and ReLU after them; `forward` runs
    the blocks only, `tail` the BN → ReLU (called by the head)."""

    def __init__(self, blocks: list[nn.Module], norm: nn.BatchNorm2d):
        super().__init__(*blocks, norm, nn.ReLU(inplace=True))
        self.num_blocks = len(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(self.num_blocks):
            x = self[index](x)
        return x

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        return self[self.num_blocks + 1](self[self.num_blocks](x))


class PreActPoolHead(PoolHead):
    """Final BN → ReLU (held by the last group, referred to without owning it) → pool → flatten → linear."""

    def __init__(self, last_group: LastGroup, pool_head: PoolHead):
        nn.Module.__init__(self)   # takes over the modules of `pool_head` (no second Linear drawn at init)
        self.pool, self.flatten, self.fc = pool_head.pool, pool_head.flatten, pool_head.fc
        self._last_group = [last_group]   # a list hides the module from registration: its keys stay in stages

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return super().forward(self._last_group[0].tail(x), pre_logits=pre_logits)


class WideResNet(StagedNet):
    def __init__(self, depth: int, widen_factor: int, num_classes: int = 10, in_chans: int = 3,
                 drop_rate: float = 0.0, noisymix: bool = False):
        if (depth - 4) % 6 != 0 or depth < 10:
            raise InvalidValueError(f"Wide ResNet depth must be 6n + 4 with n ≥ 1 (e.g. 28, 40), got {depth}")
        blocks_per_stage = (depth - 4) // 6
        stem = nn.Conv2d(in_chans, 16, 3, padding=1, bias=noisymix)
        stages, in_chs = [], 16
        for i, chs in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            blocks: list[nn.Module] = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(WideBlock(in_chs, chs, stride, drop_rate, noisymix))
                in_chs = chs
            stages.append(LastGroup(blocks, nn.BatchNorm2d(in_chs, momentum=0.9 if noisymix else 0.1))
                          if i == 2 else nn.Sequential(*blocks))
        super().__init__(stem, stages, num_features=in_chs, num_classes=num_classes)
        self.head = PreActPoolHead(stages[-1], self.head)
        if not noisymix:   # the NoisyMix code keeps PyTorch's default initialisation
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
def wrn_28_4_noisymix(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> WideResNet:
    """WRN-28-4, dropout 0.1, as erichson/NoisyMix builds it (`wideresnet28`; the README says 28x2)."""
    return build(WideResNet, "wrn_28_4_noisymix", pretrained, kwargs, depth=28, widen_factor=4, drop_rate=0.1,
                 noisymix=True, num_classes=num_classes, in_chans=in_chans)


@register_model
def wrn_40_2(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> WideResNet:
    """WRN-40-2 (2.24M parameters at 10 classes; AugMix's CIFAR model)."""
    return build(WideResNet, "wrn_40_2", pretrained, kwargs, depth=40, widen_factor=2,
                 num_classes=num_classes, in_chans=in_chans)
