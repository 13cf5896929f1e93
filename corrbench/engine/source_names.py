"""What a model source's options may be, as plain data and checks that need no torch: the CLI checks a
command line against these before torch is imported (engine.sources uses the same ones)."""
from __future__ import annotations

from typing import Sequence

from corrbench.errors import InvalidValueError, UserError

SOURCE_KINDS = ("run", "timm", "hf-hub", "torchvision", "robustbench", "torchscript", "python")
PRECISIONS = ("fp32", "bf16")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
BUNDLED_CLASS_MAPS = ("imagenet-r-200", "tinyimagenet-200")


class ModelSourceError(UserError):
    """A model source that cannot be opened: unknown name, weights that do not fit, not a module …"""


def split_source(source: str) -> tuple[str, str]:
    """'timm:resnet18' → ('timm', 'resnet18'); an unknown prefix is refused with the list of prefixes."""
    kind, sep, rest = source.partition(":")
    if not sep or kind not in SOURCE_KINDS or not rest:
        kinds = ", ".join(f"{k}:" for k in SOURCE_KINDS)
        raise ModelSourceError(f"unknown model source '{source}'; use one of {kinds} (e.g. timm:resnet50.a1_in1k, "
                               f"torchvision:resnet18, python:model.py:build)")
    return kind, rest


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InvalidValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")


def check_preprocessing(mean: Sequence[float] | None, std: Sequence[float] | None,
                        input_size: Sequence[int] | None, interpolation: str, crop_pct: float | None) -> None:
    if (mean is None) != (std is None):
        raise InvalidValueError("pass --mean and --std together (one value per channel each)")
    if mean is not None:
        channels = input_size[0] if input_size is not None else 3
        for name, values in (("--mean", mean), ("--std", std)):
            if len(values) != channels:
                raise InvalidValueError(f"{name} needs {channels} values (one per channel of the {channels}-channel "
                                        f"images), got {len(values)}: {','.join(str(v) for v in values)}")
        if any(not s > 0 for s in std):
            raise InvalidValueError(f"every --std value must be > 0, got {','.join(str(v) for v in std)}")
    if input_size is not None:
        if len(input_size) != 3 or any(int(v) < 1 for v in input_size):
            raise InvalidValueError(f"--input-size is C,H,W with positive integers (e.g. 3,224,224), got "
                                    f"{','.join(str(v) for v in input_size)}")
        if input_size[0] != 3:
            raise InvalidValueError(f"the suites' images have 3 channels but --input-size asks for {input_size[0]}; "
                                    f"wrap a {input_size[0]}-channel model to take RGB images")
    if interpolation not in INTERPOLATIONS:
        raise InvalidValueError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got '{interpolation}'")
    if crop_pct is not None and not 0 < crop_pct <= 1:
        raise InvalidValueError(f"--crop-pct must lie in (0, 1], got {crop_pct}")
