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
from corrbench.names import AUGMENTS, METHODS as METHOD_NAMES, check_dataset_name, check_device_name, check_name
from corrbench.values import parse_value

SCHEDULES = ("cosine", "step", "constant")
TRAIN_CROPS = ("pad", "random_resized")   # see RunConfig.train_crop
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
    # 'pad': RandomCrop(size, crop_padding) of the served images; 'random_resized': RandomResizedCrop of the
    # full-size image files (data/train_stream.py; ImageNet recipes). Not in the run identity when 'pad'.
    train_crop: str = "pad"
    flip: bool | None = None           # random horizontal flip; None: yes, except for digits (mnist, mnist5k)
    holdout: int = 0                   # training images held out (seeded) for `calibrate`'s temperature fit
    # Extra per-image steps after crop + flip, in order: e.g. ("color_jitter:0.25", "rotation:2") (augment/color.py)
    preprocess: tuple[str, ...] = ()
    method_params: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    device: str = "auto"               # excluded from the run identity
    channels_last: bool = True         # measured ~8x faster for mnist_cnn on CPU too
    amp: bool = True                   # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False              # torch.compile the model's stages on CUDA (eager on CPU); not in the run identity
    eval_batch_size: int = 500
    val_every: int = 0                 # clean test error every K epochs and at the last (0: never); not in the run identity

    def resolved(self) -> "RunConfig":
        """A copy with every `None` training setting filled from the method's recipe, validated."""
        self.check()   # names and given numbers first: cheap, and before torch is imported
        from corrbench.methods import METHODS

        recipe = METHODS.get(self.method).recipe
        values = dataclasses.asdict(self)
        for key in ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
                    "milestones", "gamma"):
            if values[key] is None:
                values[key] = getattr(recipe, key)
        values["milestones"] = tuple(values["milestones"])
        values["preprocess"] = tuple(values["preprocess"] or ())
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

        self.check()
        resolve_arch(self.arch, dataset_info(self.dataset).image_size)
        get_augmentation(self.augment)
        from corrbench.augment.color import parse_preprocess
        parse_preprocess(self.preprocess or ())
        if self.schedule not in SCHEDULES:
            raise InvalidValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")

    @staticmethod
    def settings() -> list[str]:
        """The names `--set key=value` and a recipe's [train.settings] may set."""
        return [f.name for f in dataclasses.fields(RunConfig) if f.name != "method_params"]

    def check(self) -> None:
        """What needs no torch: names against corrbench.names (paths of folder:/npy: data exist) and every
        number that is set (None = the method's recipe, checked once resolved)."""
        check_dataset_name(self.dataset)
        check_name("method", self.method, METHOD_NAMES)
        check_name("augmentation", self.augment, AUGMENTS)
        check_device_name(self.device)
        for label, value, low, high, low_inclusive in (
                ("epochs", self.epochs, 1, None, True), ("batch size", self.batch_size, 1, None, True),
                ("eval batch size", self.eval_batch_size, 1, None, True), ("lr", self.lr, 0, None, False),
                ("weight decay", self.weight_decay, 0, None, True), ("momentum", self.momentum, 0, 1, True),
                ("gamma", self.gamma, 0, 1, False), ("crop padding", self.crop_padding, 0, None, True),
                ("holdout", self.holdout, 0, None, True), ("val every", self.val_every, 0, None, True)):
            if value is not None:
                check_range(label, value, low=low, high=high, low_inclusive=low_inclusive)
        for milestone in self.milestones or ():
            check_range("milestone", milestone, low=1)
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise InvalidValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        if self.train_crop not in TRAIN_CROPS:
            raise InvalidValueError(f"train_crop must be one of {', '.join(TRAIN_CROPS)}, got '{self.train_crop}'")

    def identity(self) -> dict[str, Any]:
        """The settings that define what is trained (not where or on which device)."""
        values = dataclasses.asdict(self)
        for key in ("data_root", "device", "eval_batch_size", "compile", "val_every"):
            values.pop(key)
        values["milestones"] = list(values["milestones"] or ())
        values["preprocess"] = list(values["preprocess"] or ())
        if not values["preprocess"]:
            del values["preprocess"]   # runs without extra preprocessing keep the run ids they had before it existed
        if values["train_crop"] == "pad":
            del values["train_crop"]   # likewise for runs trained with the padded crop
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
        values["preprocess"] = list(values["preprocess"] or ())
        values["corrbench_version"] = __version__
        values["config_hash"] = self.config_hash()
        return values

    @staticmethod
    def from_json(values: Mapping[str, Any]) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(RunConfig)}
        kept = {k: v for k, v in values.items() if k in names}
        if kept.get("milestones") is not None:
            kept["milestones"] = tuple(kept["milestones"])
        kept["preprocess"] = tuple(kept.get("preprocess") or ())
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
    "channels_last": bool, "milestones": tuple, "compile": bool, "val_every": int, "train_crop": str,
}


def parse_field(key: str, raw: str) -> Any:
    if key == "preprocess":   # a comma-separated list of steps, e.g. color_jitter:0.25,rotation:2
        return tuple(step.strip() for step in raw.split(",") if step.strip() and step.strip().lower() != "none")
    kind = _FIELD_KINDS.get(key, str)
    if raw.lower() == "none" and key in ("epochs", "batch_size", "lr", "data_root"):
        return None
    return parse_value(raw, kind, key)
