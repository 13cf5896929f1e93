"""The method contract: how a robustness method turns a batch into a training loss.

A method is given the model, a batch of uint8 images on the device (already cropped / flipped /
augmented by the engine) with integer labels, and a `torch.Generator` for every random draw it
makes. It returns the scalar loss and a dict of values to log. A method may also override
prediction (RSE's test-time ensemble); `eval` always predicts through `Method.predict`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from corrbench.errors import UserError
from corrbench.registry import Registry
from corrbench.values import parse_value


@dataclass(frozen=True)
class Recipe:
    """The training recipe a method's paper uses; the defaults of `corrbench train --method NAME`."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"              # 'cosine' (per step) | 'step'
    milestones: tuple[int, ...] = ()      # epochs at which 'step' multiplies the lr by gamma
    gamma: float = 0.1
    source: str = ""                      # where the recipe comes from


@dataclass
class Method:
    """Base class: subclasses are dataclasses whose fields are the method's hyperparameters."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    recipe: ClassVar[Recipe] = Recipe()
    # Where paper and authors' code disagree: option name -> which behaviour each value selects.
    choices: ClassVar[Mapping[str, str]] = {}

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Logits for float inputs in [0, 1]. Overridden by methods with a test-time procedure."""
        return model(inputs)

    def hyperparameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1] (the model's input space; normalisation is inside the model)."""
    return images.float().div_(255.0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == labels).float().mean()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: `@register_method` on a Method dataclass with a `name`."""
    return METHODS.register(cls.name, cls)


def list_methods() -> list[str]:
    return METHODS.names()


def create_method(name: str, params: Mapping[str, Any] | None = None) -> Method:
    """Instantiate method `name` with hyperparameter overrides (unknown keys are a user error)."""
    cls = METHODS.get(name)
    params = dict(params or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        valid = ", ".join(fields) or "none"
        raise UserError(f"method '{name}' has no hyperparameter {', '.join(unknown)}; its hyperparameters are: {valid}")
    converted = {}
    for key, value in params.items():
        default = getattr(cls, key, None) if fields[key].default is dataclasses.MISSING else fields[key].default
        converted[key] = coerce(value, type(default) if default is not None else str, f"{name}.{key}")
    return cls(**converted)


def coerce(value: Any, kind: type, label: str) -> Any:
    """Convert a `--set` string to the type of the default value (rules: corrbench.values.parse_value)."""
    if not isinstance(value, str) or kind is str:
        return value
    return parse_value(value, kind, label)

