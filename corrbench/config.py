"""Run configuration: what `corrbench train` needs to (re-)run a training job exactly.

Precedence: the method's recipe (its paper's defaults) < TOML recipe values < CLI options < `--set key=value`.
`--set` addresses a config field (`--set epochs=1`) or a method hyperparameter
(`--set magn.sigma_max=0.4`, or `--set method.sigma_max=0.4`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from corrbench import __version__
from corrbench.errors import InvalidValueError, UserError, check_range
from corrbench.methods import METHODS
from corrbench.methods.base import coerce

SCHEDULES = ("cosine", "step", "constant")
NO_FLIP_DATASETS = ("mnist", "mnist5k")   # a mirrored digit is another symbol (or none)


@dataclass
class RunConfig:
    dataset: str = "cifar10"
    arch: str = "resnet18"
    method: str = "standard"
    augment: str = "none"
    epochs: int | None = None          # None: the method's recipe
    batch_size: int | None = None
    lr: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    milestones: tuple[int, ...] | None = None
    gamma: float | None = None
    seed: int = 0
    crop_padding: int = 4              # random crop with zero padding (RandomCrop(32, padding=4))
    flip: bool | None = None           # random horizontal flip; None: yes, except for digits (mnist, mnist5k)
    holdout: int = 0                   # training images held out (seeded) for `calibrate`'s temperature fit
    method_params: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    device: str = "auto"               # excluded from the run identity
    channels_last: bool = True         # measured ~8x faster for mnist_cnn on CPU too
    amp: bool = True                   # bf16 autocast on CUDA (ignored on CPU)
    eval_batch_size: int = 500

    def resolved(self) -> "RunConfig":
        """A copy with every `None` training setting filled from the method's recipe, validated."""
        recipe = METHODS.get(self.method).recipe
        values = dataclasses.asdict(self)
        for key in ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                    "milestones", "gamma"):
            if values[key] is None:
                values[key] = getattr(recipe, key)
        values["milestones"] = tuple(values["milestones"])
        if values["flip"] is None:
            values["flip"] = self.dataset not in NO_FLIP_DATASETS
        config = RunConfig(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Names and numbers, checked before any work starts (a user error names what is wrong)."""
        from corrbench.augment import get_augmentation
        from corrbench.data.datasets import dataset_info
        from corrbench.models import resolve_arch

        resolve_arch(self.arch, dataset_info(self.dataset).image_size)
        get_augmentation(self.augment)
        check_range("epochs", self.epochs, low=1)
        check_range("batch size", self.batch_size, low=1)
        check_range("eval batch size", self.eval_batch_size, low=1)
        check_range("lr", self.lr, low=0, low_inclusive=False)
        check_range("weight decay", self.weight_decay, low=0)
        check_range("momentum", self.momentum, low=0, high=1)
        check_range("crop padding", self.crop_padding, low=0)
        check_range("holdout", self.holdout, low=0)
        if self.schedule not in SCHEDULES:
            raise InvalidValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")

    def identity(self) -> dict[str, Any]:
        """The settings that define what is trained (not where or on which device)."""
        values = dataclasses.asdict(self)
        for key in ("data_root", "device", "eval_batch_size"):
            values.pop(key)
        values["milestones"] = list(values["milestones"] or ())
        return values

    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def run_id(self) -> str:
        """`<dataset>-<arch>-<method>[+<augment>]-s<seed>-<short hash>`, readable and unique per config."""
        method = self.method if self.augment == "none" else f"{self.method}+{self.augment}"
        parts = [slug(self.dataset), slug(self.arch), slug(method), f"s{self.seed}", self.config_hash()[:8]]
        return "-".join(parts)

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if values["milestones"] is not None:   # None (= the recipe's) must survive the round trip
            values["milestones"] = list(values["milestones"])
        values["corrbench_version"] = __version__
        values["config_hash"] = self.config_hash()
        return values

    @staticmethod
    def from_json(values: Mapping[str, Any]) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(RunConfig)}
        kept = {k: v for k, v in values.items() if k in names}
        if kept.get("milestones") is not None:
            kept["milestones"] = tuple(kept["milestones"])
        return RunConfig(**kept)


def slug(text: str) -> str:
    """File-name-safe form of a dataset/arch/method name (e.g. 'folder:/data/x' -> 'folder-x')."""
    text = text.split("/")[-1] if text.startswith(("folder:", "npy:")) and "/" in text else text
    return re.sub(r"[^A-Za-z0-9_.+]+", "-", text).strip("-") or "x"


def apply_overrides(config: RunConfig, assignments: Sequence[str]) -> RunConfig:
    """Apply `--set key=value` strings to a config (fields or method hyperparameters)."""
    values = dataclasses.asdict(config)
    method_params = dict(config.method_params)
    field_types = {f.name: f for f in dataclasses.fields(RunConfig)}
    for assignment in assignments:
        if "=" not in assignment:
            raise UserError(f"--set expects key=value, got '{assignment}'")
        key, raw = (part.strip() for part in assignment.split("=", 1))
        if "." in key:
            prefix, param = key.split(".", 1)
            if prefix not in ("method", values["method"]):
                raise UserError(f"--set {key}: '{prefix}' is not the method of this run ('{values['method']}'); "
                                f"use --set {values['method']}.{param}=… or --set method.{param}=…")
            method_params[param] = raw
            continue
        if key not in field_types or key == "method_params":
            valid = ", ".join(n for n in field_types if n != "method_params")
            raise UserError(f"--set {key}: unknown setting; valid settings are {valid}, or <method>.<hyperparameter>")
        values[key] = parse_field(key, raw)
    values["method_params"] = method_params
    return RunConfig(**values)


_FIELD_KINDS = {
    "epochs": int, "batch_size": int, "lr": float, "momentum": float, "nesterov": bool, "weight_decay": float,
    "gamma": float, "seed": int, "crop_padding": int, "holdout": int, "flip": bool, "amp": bool, "eval_batch_size": int,
    "channels_last": bool, "milestones": tuple,
}


def parse_field(key: str, raw: str) -> Any:
    kind = _FIELD_KINDS.get(key, str)
    if raw.lower() == "none" and key in ("epochs", "batch_size", "lr", "data_root"):
        return None
    return coerce(raw, kind, key)
