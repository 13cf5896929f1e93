"""The MNIST CNN of Rony et al. 2019 (DDN, "Decoupling Direction and Norm"), which ESP uses for MNIST-C.

Four 3×3 convs without padding (32, 32, max-pool, 64, 64, max-pool), ReLU after each, then
flatten → 200 → 200 → classes with dropout 0.5 after the first hidden layer (the `SmallCNN` of the DDN
code, also TRADES' MNIST model). corrbench serves digits as 32×32 RGB (exact 2-px padding, grey
replicated), so the first conv takes 3 channels and the flattened features are 64·5·5 instead of 64·4·4.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.models import register_model

from corrbench.models.staged import StagedNet, build


class MLPHead(nn.Module):
    """flatten → linear 200 → ReLU → dropout → linear 200 → ReLU → linear (the DDN classifier)."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 200, drop: float = 0.5):
        super().__init__()
        self.flatten = nn.Flatten(1)
        self.hidden = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(drop),
                                    nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.hidden(self.flatten(x))
        return x if pre_logits else self.fc(x)


def conv_relu(in_chs: int, out_chs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chs, out_chs, 3), nn.ReLU(inplace=True))


class RonyCNN(StagedNet):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, drop_rate: float = 0.5):
        stem = conv_relu(in_chans, 32)
        stages = [nn.Sequential(conv_relu(32, 32), nn.MaxPool2d(2)),
                  conv_relu(32, 64),
                  nn.Sequential(conv_relu(64, 64), nn.MaxPool2d(2))]
        super().__init__(stem, stages, num_features=64, num_classes=num_classes)
        side = ((img_size - 4) // 2 - 4) // 2
        self.head = MLPHead(64 * side * side, num_classes, drop=drop_rate)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head.fc = nn.Linear(self.head.fc.in_features, num_classes)


@register_model
def cnn_rony2019(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> RonyCNN:
    """ESP's MNIST CNN (Rony et al. 2019) for 32×32 digits."""
    return build(RonyCNN, "cnn_rony2019", pretrained, kwargs, num_classes=num_classes, in_chans=in_chans)
