"""The model options eval, calibrate and flip-rate share: --checkpoint RUN or --model SOURCE, and what a
model source needs (weights, preprocessing overrides, class map, label, precision)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.errors import InvalidValueError

MODEL_HELP = ("A model source instead of --checkpoint: timm:NAME[.TAG], hf-hub:ORG/NAME, torchvision:NAME, "
              "robustbench:[THREAT/]NAME, torchscript:PATH or python:FILE.py:FACTORY.")

# Typer option declarations, one place for the three commands.
CHECKPOINT = typer.Option(None, "--checkpoint", help="A run folder (runs/<run_id>) or its checkpoint.pt.")
MODEL = typer.Option(None, "--model", help=MODEL_HELP)
WEIGHTS = typer.Option(None, "--weights", help="Weights for --model: a state dict / .safetensors file, or a "
                                               "torchvision enum name (IMAGENET1K_V1) read from the torch hub cache.")
MODEL_DIR = typer.Option(None, "--model-dir", help="RobustBench model folder (robustbench: sources) [default: ./models].")
MEAN = typer.Option(None, "--mean", help="Per-channel mean to normalise with, e.g. 0.485,0.456,0.406 (overrides the model's).")
STD = typer.Option(None, "--std", help="Per-channel std to normalise with, e.g. 0.229,0.224,0.225.")
INPUT_SIZE = typer.Option(None, "--input-size", help="C,H,W the model takes, e.g. 3,224,224 (images are resized + centre-cropped).")
INTERPOLATION = typer.Option(None, "--interpolation", help="Resize interpolation: nearest, bilinear or bicubic [default: the model's].")
CROP_PCT = typer.Option(None, "--crop-pct", help="Centre-crop fraction (0, 1]: resize to size/crop-pct, crop size [default: the model's].")
CLASS_MAP = typer.Option(None, "--class-map", help="Pick the dataset's classes out of the model's logits: imagenet-r-200, "
                                                   "tinyimagenet-200 or a file of '<class> <logit index>' lines.")
LABEL = typer.Option(None, "--label", help="Name the results rows group by in reports [default: run id / model source].")
PRECISION = typer.Option("fp32", "--precision", help="Inference precision: fp32 (TF32 off) or bf16 (autocast).")


def parse_floats(value: str | None, option: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        values = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise InvalidValueError(f"{option} expects comma-separated numbers, got '{value}'") from None
    if not values:
        raise InvalidValueError(f"{option} expects comma-separated numbers, got '{value}'")
    return values


def parse_size(value: str | None) -> tuple[int, int, int] | None:
    if value is None:
        return None
    try:
        values = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise InvalidValueError(f"--input-size expects C,H,W integers such as 3,224,224, got '{value}'") from None
    if len(values) != 3:
        raise InvalidValueError(f"--input-size expects C,H,W (three integers) such as 3,224,224, got '{value}'")
    return values


def model_and_options(checkpoint: Optional[Path], model: Optional[str], *, weights: Optional[str],
                      model_dir: Optional[Path], mean: Optional[str], std: Optional[str], input_size: Optional[str],
                      interpolation: Optional[str], crop_pct: Optional[float], class_map: Optional[str],
                      label: Optional[str], precision: str):
    """(what to open, SourceOptions): exactly one of --checkpoint and --model."""
    from corrbench.engine.source_names import check_precision, check_preprocessing, split_source

    if (checkpoint is None) == (model is None):
        raise InvalidValueError("pass exactly one of --checkpoint RUN (a corrbench run) and --model SOURCE "
                                "(e.g. timm:resnet50.a1_in1k)")
    if checkpoint is not None:
        extras = [name for name, value in (("--weights", weights), ("--model-dir", model_dir), ("--mean", mean),
                                           ("--std", std), ("--input-size", input_size),
                                           ("--interpolation", interpolation), ("--crop-pct", crop_pct))
                  if value is not None]
        if extras:
            raise InvalidValueError(f"{', '.join(extras)} apply to --model sources; a corrbench run carries its "
                                    f"weights and preprocessing")
    # checked before torch is imported (engine.source_names needs none)
    means, stds, size = parse_floats(mean, "--mean"), parse_floats(std, "--std"), parse_size(input_size)
    check_precision(precision)
    check_preprocessing(means, stds, size, interpolation or "bilinear", crop_pct)
    if model is not None:
        split_source(model)
    from corrbench.engine.sources import SourceOptions
    options = SourceOptions(weights=weights, model_dir=str(model_dir) if model_dir is not None else None,
                            mean=means, std=stds, input_size=size, interpolation=interpolation, crop_pct=crop_pct,
                            class_map=class_map, label=label, precision=precision)
    return (checkpoint if checkpoint is not None else model), options


def suite_or_default(suite: Optional[str], checkpoint: Optional[Path], kind: str) -> str:
    """The --suite given, else `<run's dataset>-<kind>` for a run; models other than runs must name one."""
    if suite:
        return suite
    if checkpoint is None:
        raise InvalidValueError(f"--model needs --suite (e.g. --suite cifar10-{kind})")
    from corrbench.engine.runs import default_suite
    return default_suite(checkpoint, kind)
