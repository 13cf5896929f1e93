"""`create_model`: an arch name → a timm model → a `Classifier` split into stem, stages and head."""
from __future__ import annotations

from typing import Any, Sequence

import timm
import torch
import torch.nn as nn
from timm.models.resnet import ResNet

from corrbench.errors import InvalidValueError, check_range
from corrbench.models.classifier import Classifier, Normalize
from corrbench.models.staged import StagedNet
from corrbench.models.zoo import resolve_arch


class TimmFeatures(nn.Module):
    """A timm model's `forward_features` as one stage (the generic split; it owns the model)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


class TimmHead(nn.Module):
    """The same timm model's `forward_head`. It refers to the model without owning it, so the
    parameters are registered once (in the stage) and the state dict has no duplicate keys."""

    def __init__(self, features: TimmFeatures):
        super().__init__()
        self._features = [features]  # a list hides the module from nn.Module registration

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._features[0].model.forward_head(x)


def split_model(model: nn.Module) -> tuple[nn.Module, list[nn.Module], nn.Module]:
    """(stem, stages, head) of a model built by timm.create_model, running exactly its forward."""
    if isinstance(model, StagedNet):
        return model.stem, list(model.stages), model.head
    if isinstance(model, ResNet):  # timm's ResNet family: resnet*, resnet*d/t, seresnet, resnext, wide_resnet
        stem = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
        head = nn.Sequential(model.global_pool, nn.Dropout(float(model.drop_rate)), model.fc)
        return stem, [model.layer1, model.layer2, model.layer3, model.layer4], head
    features = TimmFeatures(model)
    return nn.Identity(), [features], TimmHead(features)


def create_model(arch: str, *, num_classes: int, image_size: int, mean: Sequence[float], std: Sequence[float],
                 in_chans: int = 3, **kwargs: Any) -> Classifier:
    """The classifier `arch` names at `image_size` px, normalising with the dataset's `mean` / `std`.

    `arch` is one of `list_archs()` or any timm model name; `kwargs` go to `timm.create_model`.
    """
    name = resolve_arch(arch, image_size)
    check_range("num_classes", num_classes, low=1)
    if len(mean) != in_chans or len(std) != in_chans:
        raise InvalidValueError(f"mean and std need {in_chans} values (one per input channel), "
                                f"got {len(mean)} and {len(std)}")
    pretrained_cfg = timm.get_pretrained_cfg(name)
    if pretrained_cfg is not None and pretrained_cfg.fixed_input_size:
        kwargs.setdefault("img_size", image_size)  # ViT-like models fix their positional grid at build
    model = timm.create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    stem, stages, head = split_model(model)
    return Classifier(Normalize(mean, std), stem, stages, head)
