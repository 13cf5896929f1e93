"""The registered names, as plain data: what the CLI checks a command line against before torch is imported.

The registries (corrbench.data.datasets, corrbench.methods, …) discover modules that import torch, which
takes seconds; a typo in `--dataset` must fail in well under one. tests/test_names.py checks that every
list below equals its registry, so adding a registry entry without adding its name here fails a test.
Ground floor: imports nothing of corrbench but errors.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Iterable

from corrbench.errors import InvalidValueError, MissingDataError, UnknownNameError

DATASETS = ("cifar10", "cifar100", "fashion-mnist", "imagenet", "mnist", "mnist5k", "tinyimagenet")
DATASET_PREFIXES = ("folder:", "npy:")   # your own data: folder:PATH, npy:IMAGES.npy,LABELS.npy
METHODS = ("at", "augmix", "augmix+deepaugment", "augmix+deepaugment+esp", "augmix+deepaugment+l2-noise",
           "augmix+esp", "augmix+l2-noise", "autoaugment", "cutmix", "deepaugment", "deepaugment+esp",
           "deepaugment+l2-noise", "esp", "gaussian-noise", "l2-noise", "magn", "magn+augmix", "manifold-mixup",
           "mixup", "mollification", "nfm", "noisymix", "randaugment", "rse", "standard", "trades", "trivialaugment")
AUGMENTS = ("augmix", "augmix-all-ops", "autoaugment", "autoaugment-imagenet", "none", "randaugment",
            "trivialaugment")
# corrbench's own architectures; any timm model name is valid too, so an unknown arch is checked by timm.
ARCHS = ("cnn_rony2019", "densenet121", "mnist_cnn", "preact_resnet18", "preact_resnet50", "resnet18", "wrn_28_2",
         "wrn_28_4", "wrn_28_4_noisymix", "wrn_40_2")
CORRUPTIONS = ("brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost", "gaussian_blur",
               "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression", "motion_blur", "pixelate",
               "saturate", "shot_noise", "snow", "spatter", "speckle_noise", "zoom_blur")
MNISTC_CORRUPTIONS = ("brightness", "canny_edges", "dotted_line", "fog", "glass_blur", "impulse_noise",
                      "motion_blur", "rotate", "scale", "shear", "shot_noise", "spatter", "stripe", "translate",
                      "zigzag")
PERTURBATIONS = ("brightness", "gaussian_blur", "gaussian_noise", "motion_blur", "rotate", "scale", "shear",
                 "shot_noise", "snow", "spatter", "speckle_noise", "tilt", "translate", "zoom_blur")
REPORT_FORMATS = ("terminal", "md", "csv", "latex", "html")
SOURCES = ("auto", "files", "generated")
LAUNCHERS = ("local", "submitit")
LOGGERS = ("none", "csv", "tensorboard")   # train --logger (engine/monitor.py)
SEVERITIES = (1, 2, 3, 4, 5)


# Registries whose entries can also be added at run time (a test's method, a plugin): when such a registry
# is already imported, its live names count too. Nothing is imported here for it.
_LIVE_REGISTRIES = {"dataset": ("corrbench.data.datasets", "DATASETS"), "method": ("corrbench.methods.base", "METHODS"),
                    "augmentation": ("corrbench.augment.registry", "AUGMENTATIONS")}


def check_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """`name` if it is one of `valid`, else UnknownNameError with the closest valid name."""
    valid = tuple(valid)
    module_name, attribute = _LIVE_REGISTRIES.get(kind, ("", ""))
    registry = getattr(sys.modules.get(module_name), attribute, None)
    if registry is not None:
        valid = tuple(sorted(set(valid) | set(registry.names())))
    if name not in valid:
        raise UnknownNameError(kind, name, valid)
    return name


def check_dataset_name(name: str) -> str:
    """A registered dataset, or `folder:PATH` / `npy:IMAGES,LABELS` whose paths exist (their contents are
    checked when the data are read)."""
    if name.startswith("folder:"):
        path = Path(name[len("folder:"):]).expanduser()
        if not path.is_dir():
            raise MissingDataError(f"dataset {name}: folder {path} not found; folder:PATH needs an ImageFolder "
                                   f"layout (PATH/<class>/<image> or PATH/train/<class>/…)")
        return name
    if name.startswith("npy:"):
        parts = name[len("npy:"):].rsplit(",", 1)
        if len(parts) != 2 or not all(parts):
            raise InvalidValueError(f"'{name}' needs two files: --dataset npy:IMAGES.npy,LABELS.npy")
        for part in parts:
            if not Path(part).expanduser().is_file():
                raise MissingDataError(f"dataset {name}: file {part} not found")
        return name
    return check_name("dataset", name, DATASETS)


_DEVICE = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")


def check_device_name(name: str) -> str:
    """auto, cpu, cuda, cuda:N (or mps, xpu[:N]); whether it exists here is checked when torch is loaded."""
    if not _DEVICE.fullmatch(name):
        raise InvalidValueError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N")
    return name


def check_corruption_names(names: Iterable[str]) -> None:
    """Each name is a corruption of some -C suite (corrbench's engine or MNIST-C); which ones a given suite
    has is checked when it is opened."""
    for name in names:
        check_name("corruption", name, sorted(set(CORRUPTIONS) | set(MNISTC_CORRUPTIONS)))
