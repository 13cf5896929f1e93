"""Model sources: anything that classifies images becomes a `Predictor` the evaluation session can run.

A Predictor is an `nn.Module` plus what it takes to feed it the suites' uint8 batches (preprocessing:
resize + centre crop with the stated interpolation, then mean/std), an optional class map (e.g. the 200
ImageNet-R classes picked out of 1000 ImageNet logits), the inference precision, and the identity its
results rows carry (source, weights sha256, checkpoint epoch, label, run id …).

Sources (`--model SOURCE`, or `--checkpoint RUN` for corrbench's own runs):
  run:PATH                 a corrbench run folder or checkpoint.pt (its method's predict: RSE ensembles …)
  timm:NAME[.TAG]          timm.create_model; weights from --weights FILE, else timm's own cache
  hf-hub:ORG/NAME          a timm model on the Hugging Face hub (from its local cache)
  torchvision:NAME         torchvision.models.get_model; --weights ENUM (torch hub cache) or FILE
  robustbench:[THREAT/]NAME  robustbench.utils.load_model (optional extra), from --model-dir
  torchscript:PATH         torch.jit.load
  python:FILE.py:FACTORY   a function in FILE.py returning an nn.Module (optionally --weights FILE)
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from corrbench.engine.checkpoint import file_sha256, state_digest
from corrbench.engine.source_names import (BUNDLED_CLASS_MAPS, INTERPOLATIONS, PRECISIONS, SOURCE_KINDS,  # noqa: F401
                                           ModelSourceError, check_precision, check_preprocessing, split_source)
from corrbench.errors import InvalidValueError, MissingDataError, closest

# --------------------------------------------------------------------------------------------- preprocessing

@dataclass(frozen=True)
class Preprocessing:
    """uint8 B×C×H×W batch → the float tensor the model takes, batched on the batch's device.

    Resize + centre crop follow torchvision/timm's eval transform: the shorter side is resized to
    floor(size / crop_pct) (aspect kept) and the centre size×size is cropped. Images that already have the
    model's input size are left as they are: -C images are already the benchmark's crop, and cropping them
    again zooms in (RobustBench issue #59). `inside_model`: mean/std are the model's own normalisation
    (corrbench runs, RobustBench models) — recorded, not applied.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_size: tuple[int, int, int] | None = None      # (C, H, W); None: images as served
    interpolation: str = "bilinear"
    crop_pct: float | None = None
    inside_model: bool = False

    def __post_init__(self) -> None:
        check_preprocessing(self.mean, self.std, self.input_size, self.interpolation, self.crop_pct)

    def resize_for(self, height: int, width: int) -> int | tuple[int, int] | None:
        """The resize applied to H×W images: a shorter-side length, an exact (h, w), or None (no resize)."""
        if self.input_size is None or (height, width) == tuple(self.input_size[1:]):
            return None
        crop = self.crop_pct or 1.0
        target_h, target_w = self.input_size[1:]
        if target_h == target_w:
            return int(math.floor(target_h / crop))
        return int(math.floor(target_h / crop)), int(math.floor(target_w / crop))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255.0)
        size = self.resize_for(*x.shape[-2:])
        if size is not None:
            x = resize(x, size, self.interpolation)
            x = center_crop(x, self.input_size[1:])
        if self.mean is not None and not self.inside_model:
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x = (x - mean) / std
        return x

    def describe(self, height: int, width: int) -> str:
        """The `preprocessing` column: JSON with mean, std, input_size, interpolation, crop_pct, resize."""
        size = self.resize_for(height, width)
        return json.dumps({
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "input_size": list(self.input_size) if self.input_size is not None else [3, height, width],
            "interpolation": self.interpolation if size is not None else None,
            "crop_pct": self.crop_pct if size is not None else None,
            "resize": list(size) if isinstance(size, tuple) else size,
            "normalisation": "inside the model" if self.inside_model else ("applied" if self.mean else "none"),
        }, sort_keys=True)


def resize(x: torch.Tensor, size: int | tuple[int, int], interpolation: str) -> torch.Tensor:
    """Resize float images; an int resizes the shorter side (torchvision's rule for the longer one)."""
    height, width = x.shape[-2:]
    if isinstance(size, int):
        short, long = (height, width) if height <= width else (width, height)
        new_short, new_long = size, int(size * long / short)
        size = (new_short, new_long) if height <= width else (new_long, new_short)
    if tuple(size) == (height, width):
        return x
    antialias = interpolation in ("bilinear", "bicubic")
    align = False if interpolation != "nearest" else None
    return F.interpolate(x, size=tuple(size), mode=interpolation, align_corners=align, antialias=antialias)


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    height, width = x.shape[-2:]
    crop_h, crop_w = int(size[0]), int(size[1])
    if crop_h > height or crop_w > width:   # as torchvision's center_crop: zero padding first
        pad_h, pad_w = max(crop_h - height, 0), max(crop_w - width, 0)
        x = F.pad(x, [pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2])
        height, width = x.shape[-2:]
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return x[..., top:top + crop_h, left:left + crop_w]


# --------------------------------------------------------------------------------------------- class maps

@dataclass(frozen=True)
class ClassMap:
    """Which model logit stands for each class of the evaluated dataset (e.g. ImageNet-1k → ImageNet-R 200)."""

    name: str                     # bundled name or file path, as recorded in the `class_map` column
    classes: tuple[str, ...]      # target class names (wnids), in the map's order
    indices: tuple[int, ...]      # model logit index of each

    def index_for(self, dataset_classes: Sequence[str] | None, dataset: str) -> torch.Tensor:
        """Logit index per dataset class: matched by class name (wnid), else in the map's order when the
        dataset's classes carry no names the map knows (numbered classes)."""
        if dataset_classes is not None and len(dataset_classes) != len(self.classes):
            raise ModelSourceError(f"class map {self.name} has {len(self.classes)} classes but {dataset} has "
                                   f"{len(dataset_classes)}; pass a map with one line per {dataset} class")
        if dataset_classes is None:
            return torch.tensor(self.indices, dtype=torch.int64)
        position = dict(zip(self.classes, self.indices))
        known = [c for c in dataset_classes if c in position]
        if not known:
            return torch.tensor(self.indices, dtype=torch.int64)
        if len(known) != len(dataset_classes):
            missing = next(c for c in dataset_classes if c not in position)
            raise ModelSourceError(f"class map {self.name} has no entry for {dataset} class '{missing}'; pass a "
                                   f"map that names every class")
        return torch.tensor([position[c] for c in dataset_classes], dtype=torch.int64)


def load_class_map(name: str | Path) -> ClassMap:
    """A bundled map (imagenet-r-200, tinyimagenet-200) or a text file: '<class name> <logit index>' a line."""
    text_name = str(name)
    if text_name in BUNDLED_CLASS_MAPS:
        text = resources.files("corrbench").joinpath("class_maps", f"{text_name}.txt").read_text()
    else:
        path = Path(name)
        if not path.is_file():
            hint = closest(text_name, BUNDLED_CLASS_MAPS)
            raise MissingDataError(f"class map '{text_name}' is neither a bundled map ({', '.join(BUNDLED_CLASS_MAPS)})"
                                   f" nor a file{f'; did you mean {hint}?' if hint else ''}")
        text = path.read_text()
    classes, indices = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise InvalidValueError(f"class map {text_name} line {number}: expected '<class name> <logit index>', "
                                    f"got '{line}'")
        classes.append(parts[0])
        indices.append(int(parts[1]))
    if not classes or len(set(classes)) != len(classes):
        raise InvalidValueError(f"class map {text_name} needs at least one line and distinct class names")
    return ClassMap(name=text_name, classes=tuple(classes), indices=tuple(indices))


# --------------------------------------------------------------------------------------------- predictor

@dataclass(frozen=True)
class ModelIdentity:
    """The identity columns of a results row (results schema v2)."""

    model_source: str
    run_id: str
    label: str
    arch: str
    weights_sha256: str | None
    method: str = "external"
    augment: str = "none"
    method_params: str = "{}"
    dataset: str | None = None           # runs: the training dataset; other models: the suite's (set later)
    seed: int | None = None
    checkpoint_epoch: int | None = None
    checkpoint_complete: bool | None = None

    def columns(self) -> dict:
        return {"model_source": self.model_source, "run_id": self.run_id, "label": self.label, "arch": self.arch,
                "weights_sha256": self.weights_sha256,
                "method": self.method, "augment": self.augment, "method_params": self.method_params,
                "dataset": self.dataset, "seed": self.seed, "checkpoint_epoch": self.checkpoint_epoch,
                "checkpoint_complete": self.checkpoint_complete}


def forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    return model(inputs)


@dataclass
class Predictor:
    """A model the evaluation session can run: preprocessing, model (+ test-time procedure), class map."""

    model: nn.Module
    preprocessing: Preprocessing
    identity: ModelIdentity
    predict: Callable[[nn.Module, torch.Tensor], torch.Tensor] = forward
    precision: str = "fp32"
    class_map: ClassMap | None = None
    run: object | None = None                   # the LoadedRun for corrbench runs (calibrate's fit split)
    channels_last: bool = False
    class_index: torch.Tensor | None = field(default=None, repr=False)   # set by bind()

    def __post_init__(self) -> None:
        check_precision(self.precision)

    def to(self, device: torch.device) -> "Predictor":
        model = self.model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        return self

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits (one column per dataset class) for a uint8 B×C×H×W batch on the model's device."""
        inputs = self.preprocessing(images)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with precision_context(self.precision, inputs.device):
            out = self.predict(self.model, inputs)
        if isinstance(out, (tuple, list)):   # models that return (logits, aux …)
            out = out[0]
        out = out.float()
        if self.class_index is not None:
            out = out.index_select(1, self.class_index.to(out.device))
        return out

    def bind(self, *, dataset: str, num_classes: int, classes: Sequence[str] | None, image_shape: Sequence[int],
             device: torch.device) -> "Predictor":
        """Check the model against the evaluated dataset on one probe batch (channels, class count) and fix
        which logits stand for its classes."""
        if self.identity.dataset is None:
            self.identity = replace(self.identity, dataset=dataset)
        probe = torch.zeros((2, *image_shape), dtype=torch.uint8, device=device)
        self.class_index = None
        try:
            outputs = self.logits(probe).shape[1]
        except (RuntimeError, ValueError, TypeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelSourceError(f"{self.identity.model_source} fails on a batch of {dataset} images shaped "
                                   f"{tuple(image_shape)} after preprocessing ({first[:300]}); check the model's input "
                                   f"channels and --input-size/--mean/--std") from None
        if self.class_map is not None:
            index = self.class_map.index_for(classes, dataset)
            if int(index.max()) >= outputs:
                raise ModelSourceError(f"class map {self.class_map.name} points at logit {int(index.max())} but "
                                       f"{self.identity.model_source} has {outputs} outputs")
            self.class_index = index.to(device)
        elif outputs != num_classes:
            raise ModelSourceError(f"{self.identity.model_source} has {outputs} outputs but {dataset} has {num_classes} "
                                   f"classes; pass --class-map ({', '.join(BUNDLED_CLASS_MAPS)} or a file of "
                                   f"'<class> <logit index>' lines)")
        return self

    @property
    def class_map_name(self) -> str:
        return self.class_map.name if self.class_map is not None else ""


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32: true float32 (TF32 matmuls/convolutions off, so numbers do not depend on the GPU); bf16: autocast."""
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


# --------------------------------------------------------------------------------------------- opening sources

@dataclass(frozen=True)
class SourceOptions:
    """What the user said about the model beyond its source string (CLI options / API keywords)."""

    weights: str | None = None
    model_dir: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_size: tuple[int, int, int] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    class_map: str | None = None
    label: str | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        check_preprocessing(self.mean, self.std, self.input_size, self.interpolation or "bilinear", self.crop_pct)

    def preprocessing(self, default: Preprocessing | None = None) -> Preprocessing:
        """The model's own preprocessing (`default`) with the user's overrides on top."""
        base = default or Preprocessing()
        mean, std = (self.mean, self.std) if self.mean is not None else (base.mean, base.std)
        return Preprocessing(mean=mean, std=std,
                             input_size=self.input_size if self.input_size is not None else base.input_size,
                             interpolation=self.interpolation or base.interpolation,
                             crop_pct=self.crop_pct if self.crop_pct is not None else base.crop_pct,
                             inside_model=base.inside_model and self.mean is None)


def open_model(source: str, options: SourceOptions, *, dataset: str | None = None,
               device: torch.device = torch.device("cpu")) -> Predictor:
    """A Predictor for a source string (see the module docstring). `dataset` is the evaluated clean dataset
    (RobustBench needs it to find its model; other models get it as their results `dataset`)."""
    kind, name = split_source(source)
    opener = {"run": _open_run, "timm": _open_timm, "hf-hub": _open_hf_hub, "torchvision": _open_torchvision,
              "robustbench": _open_robustbench, "torchscript": _open_torchscript, "python": _open_python}[kind]
    class_map = load_class_map(options.class_map) if options.class_map else None   # cheap checks first
    predictor = opener(name, options, dataset)
    predictor.class_map = class_map if class_map is not None else predictor.class_map
    predictor.precision = options.precision
    return predictor.to(device)


def predictor_from_module(model: nn.Module, options: SourceOptions) -> Predictor:
    """An nn.Module handed to the Python API: takes [0, 1] images unless mean/std/input_size say otherwise."""
    if not isinstance(model, nn.Module):
        raise ModelSourceError(f"expected an nn.Module or a source string, got {type(model).__name__}")
    digest = state_digest(model.state_dict())
    arch = type(model).__name__
    predictor = Predictor(model=model, preprocessing=options.preprocessing(), precision=options.precision,
                          identity=external_identity("module", arch, arch, digest, options.label))
    if options.class_map:
        predictor.class_map = load_class_map(options.class_map)
    return predictor


def predictor_from_run(run, options: SourceOptions) -> Predictor:
    """A corrbench run (engine.runs.LoadedRun): normalisation inside the model, the method's predict."""
    from corrbench.engine.runs import run_identity
    if options.weights or options.mean is not None or options.input_size is not None or options.crop_pct is not None:
        raise InvalidValueError("--weights, --mean/--std, --input-size and --crop-pct are for --model sources; a "
                                "corrbench run carries its weights and preprocessing")
    preprocessing = Preprocessing(mean=tuple(run.dataset["mean"]), std=tuple(run.dataset["std"]),
                                  input_size=None, inside_model=True)
    columns = run_identity(run)
    identity = ModelIdentity(model_source=f"run:{run.run_id}", run_id=run.run_id, label=options.label or run.run_id,
                             arch=columns["arch"], weights_sha256=run.checkpoint_sha256, method=columns["method"],
                             augment=columns["augment"], method_params=columns["method_params"],
                             dataset=columns["dataset"], seed=columns["seed"], checkpoint_epoch=run.epoch,
                             checkpoint_complete=run.complete)
    predictor = Predictor(model=run.model, preprocessing=preprocessing, identity=identity, predict=run.method.predict,
                          precision=options.precision, run=run, channels_last=True)
    if options.class_map:
        predictor.class_map = load_class_map(options.class_map)
    return predictor


def external_identity(kind: str, name: str, arch: str, digest: str | None, label: str | None) -> ModelIdentity:
    """run_id `<kind>-<sanitised name>-<sha[:8]>`: unique per model and weights, safe in file names."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "model"
    run_id = f"{kind}-{clean}" + (f"-{digest[:8]}" if digest else "")
    source = f"{kind}:{name}"
    return ModelIdentity(model_source=source, run_id=run_id, label=label or source, arch=arch, weights_sha256=digest)


def _open_run(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    from corrbench.engine.runs import load_run
    return predictor_from_run(load_run(name, torch.device("cpu")), options)


# ---- weights files

def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file (plain, or under 'state_dict'/'model')."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"weights file {path} not found; pass --weights with the path of a state dict "
                               f"(.pt/.pth) or .safetensors file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # torch/safetensors raise many kinds for foreign or truncated files
        raise ModelSourceError(f"{path} is not a readable state dict or safetensors file ({type(error).__name__}); "
                               f"save one with torch.save(model.state_dict(), PATH)") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelSourceError(f"{path} holds no state dict (name → tensor); save one with "
                               f"torch.save(model.state_dict(), PATH)")
    if all(k.startswith("module.") for k in state):   # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def fit_weights(build: Callable[[int | None], nn.Module], state: dict[str, torch.Tensor], what: str,
                where: str) -> nn.Module:
    """build(None) with `state` loaded; if only the classifier's output count differs, build(K) for the
    file's K classes first. Anything else that does not fit is one line naming the first mismatches."""
    model = build(None)
    own = model.state_dict()
    differing = [k for k in state if k in own and own[k].shape != state[k].shape]
    if differing and len({own[k].shape[0] for k in differing}) == 1 and len({state[k].shape[0] for k in differing}) == 1 \
            and all(own[k].shape[1:] == state[k].shape[1:] for k in differing):
        model = build(int(state[differing[0]].shape[0]))
        own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if mismatched:
            key = mismatched[0]
            problems.append(f"shape of {key} {tuple(state[key].shape)} vs {tuple(own[key].shape)}")
        raise ModelSourceError(f"the weights in {where} do not fit {what}: {'; '.join(problems)}; pass the weights "
                               f"of this architecture")
    model.load_state_dict(state)
    return model


def _weights_digest(options: SourceOptions, model: nn.Module) -> str:
    return file_sha256(Path(options.weights)) if options.weights else state_digest(model.state_dict())


# ---- timm / hf-hub

def _timm():
    import timm
    return timm


def _timm_preprocessing(model: nn.Module, options: SourceOptions) -> Preprocessing:
    config = _timm().data.resolve_model_data_config(model)
    interpolation = config.get("interpolation", "bicubic")
    return options.preprocessing(Preprocessing(
        mean=tuple(float(v) for v in config["mean"]), std=tuple(float(v) for v in config["std"]),
        input_size=tuple(int(v) for v in config["input_size"]),
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bicubic",
        crop_pct=float(config["crop_pct"]) if config.get("crop_pct") else None))


def _open_timm(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    timm = _timm()
    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        hint = closest(arch, timm.list_models())
        raise ModelSourceError(f"timm has no model '{arch}'{f'; did you mean {hint}?' if hint else ''} "
                               f"(`timm.list_models('*{arch[:4]}*')` lists names)")
    if options.weights:
        state = read_weights(options.weights)

        def build(num_classes: int | None) -> nn.Module:
            extra = {} if num_classes is None else {"num_classes": num_classes}
            return timm.create_model(name, pretrained=False, **extra)
        model = fit_weights(build, state, f"timm {name}", options.weights)
        digest = file_sha256(Path(options.weights))
    else:
        model = _timm_pretrained(name, f"timm:{name}")
        digest = state_digest(model.state_dict())
    return Predictor(model=model, preprocessing=_timm_preprocessing(model, options),
                     identity=external_identity("timm", name, arch, digest, options.label))


def _timm_pretrained(name: str, source: str) -> nn.Module:
    """timm's pretrained weights from the Hugging Face hub cache only: nothing is downloaded (offline, timm
    would retry for a minute first), a missing file is one line saying where it looked."""
    timm = _timm()
    if not name.startswith("hf-hub:") and "." in name:
        try:
            timm.models.get_pretrained_cfg(name)
        except RuntimeError:
            arch = name.split(".", 1)[0]
            tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
            raise ModelSourceError(f"{source}: timm has no pretrained tag '{name.split('.', 1)[1]}' for {arch}; "
                                   f"tags: {', '.join(tags[:20]) or 'none'}") from None
    try:
        with _hub_offline():
            return timm.create_model(name, pretrained=True)
    except Exception as error:   # hub errors come in many kinds (LocalEntryNotFoundError, OSError, HTTP errors …)
        raise _missing_pretrained(source, name, error) from None


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    try:
        import huggingface_hub.constants as hub
    except ImportError:   # timm without huggingface_hub reads its own URLs through torch hub's cache
        yield
        return
    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def _missing_pretrained(source: str, name: str, error: Exception) -> ModelSourceError:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE as where
    except ImportError:
        where = "the Hugging Face hub cache"
    return ModelSourceError(f"{source}: pretrained weights not found in the local cache (looked in {where}; "
                            f"{type(error).__name__}); fetch them once online with python -c \"import timm; "
                            f"timm.create_model('{name}', pretrained=True)\" or pass --weights FILE (a state dict "
                            f"or .safetensors)")


def _open_hf_hub(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    if "/" not in name:
        raise ModelSourceError(f"hf-hub:{name}: expected hf-hub:ORG/NAME (a timm model on the Hugging Face hub)")
    if options.weights:
        raise InvalidValueError("hf-hub: sources load their weights from the hub cache; for a local file use "
                                "timm:ARCH --weights FILE")
    model = _timm_pretrained(f"hf-hub:{name}", f"hf-hub:{name}")
    arch = getattr(model, "pretrained_cfg", {}).get("architecture") or type(model).__name__
    return Predictor(model=model, preprocessing=_timm_preprocessing(model, options),
                     identity=external_identity("hf-hub", name, arch, state_digest(model.state_dict()), options.label))


# ---- torchvision

def _open_torchvision(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    import torchvision.models as tvm
    names = tvm.list_models()
    if name not in names:
        hint = closest(name, names)
        raise ModelSourceError(f"torchvision has no model '{name}'{f'; did you mean {hint}?' if hint else ''}")
    try:
        enum = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        enum = None
    weights = options.weights
    if weights and enum is not None and not Path(weights).exists() and re.fullmatch(r"[A-Za-z0-9_]+", weights):
        try:
            chosen = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
        except KeyError:
            valid = [w.name for w in enum] + ["DEFAULT"]
            raise ModelSourceError(f"torchvision {name} has no weights '{weights}'; valid: {', '.join(valid)} "
                                   f"(or a local file)") from None
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(chosen.url).name
        if not cached.is_file():
            raise ModelSourceError(f"torchvision:{name} weights {chosen.name} are not in the torch hub cache (looked "
                                   f"for {cached}); download them once online (torchvision.models.get_model('{name}', "
                                   f"weights='{chosen.name}')) or pass --weights FILE")
        model = tvm.get_model(name, weights=chosen)
        preprocessing = _torchvision_preprocessing(chosen, options)
        digest = file_sha256(cached)
        label_name = f"{name}.{chosen.name}"
    else:
        if not weights:
            raise InvalidValueError(f"torchvision:{name} needs --weights: an enum name "
                                    f"({', '.join(w.name for w in enum) if enum else 'e.g. IMAGENET1K_V1'}) or a file")
        state = read_weights(weights)

        def build(num_classes: int | None) -> nn.Module:
            extra = {} if num_classes is None else {"num_classes": num_classes}
            return tvm.get_model(name, weights=None, **extra)
        model = fit_weights(build, state, f"torchvision {name}", weights)
        preprocessing = _torchvision_preprocessing(enum.DEFAULT if enum is not None else None, options)
        digest = file_sha256(Path(weights))
        label_name = name
    identity = external_identity("torchvision", label_name, name, digest, options.label)
    return Predictor(model=model, preprocessing=preprocessing, identity=identity)


def _torchvision_preprocessing(weights, options: SourceOptions) -> Preprocessing:
    """The weights' own eval transform (ImageClassification: resize, centre crop, mean/std)."""
    if weights is None:
        return options.preprocessing()
    transform = weights.transforms()
    crop = int(transform.crop_size[0])
    resize_size = int(transform.resize_size[0]) if transform.resize_size else crop
    interpolation = str(getattr(transform.interpolation, "value", transform.interpolation))
    return options.preprocessing(Preprocessing(
        mean=tuple(float(v) for v in transform.mean), std=tuple(float(v) for v in transform.std),
        input_size=(3, crop, crop), interpolation=interpolation if interpolation in INTERPOLATIONS else "bilinear",
        crop_pct=crop / resize_size))


# ---- RobustBench, TorchScript, Python factories

ROBUSTBENCH_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet"}


def _open_robustbench(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    try:
        from robustbench.utils import load_model
    except ImportError:
        raise ModelSourceError("robustbench: sources need the robustbench package: pip install 'corrbench[robustbench]'"
                               " (or pip install robustbench)") from None
    threat, _, model_name = name.rpartition("/")
    threat = threat or "corruptions"
    rb_dataset = ROBUSTBENCH_DATASETS.get(dataset or "")
    if rb_dataset is None:
        raise ModelSourceError(f"RobustBench has models for cifar10, cifar100 and imagenet suites, not {dataset}")
    model_dir = options.model_dir or "models"
    try:
        model = load_model(model_name=model_name, model_dir=model_dir, dataset=rb_dataset, threat_model=threat)
    except Exception as error:   # unknown name (KeyError/ValueError), download failure, bad file …
        raise ModelSourceError(f"robustbench:{name} could not be loaded from {Path(model_dir) / rb_dataset / threat} "
                               f"({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}); "
                               f"check the name on robustbench.github.io and --model-dir") from None
    file = Path(model_dir) / rb_dataset / threat / f"{model_name}.pt"
    digest = file_sha256(file) if file.is_file() else state_digest(model.state_dict())
    # RobustBench models take [0, 1] images and normalise inside (robustbench.utils.load_model)
    preprocessing = options.preprocessing(Preprocessing(inside_model=True))
    return Predictor(model=model, preprocessing=preprocessing,
                     identity=external_identity("robustbench", name, model_name, digest, options.label))


def _open_torchscript(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    path = Path(name)
    if not path.is_file():
        raise MissingDataError(f"TorchScript file {path} not found")
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:   # torch raises RuntimeError/ValueError for files that are not TorchScript
        raise ModelSourceError(f"{path} is not a TorchScript file ({type(error).__name__}); save one with "
                               f"torch.jit.save(torch.jit.script(model), PATH)") from None
    if options.weights:
        raise InvalidValueError("a TorchScript file carries its weights; drop --weights")
    identity = replace(external_identity("torchscript", path.stem, path.stem, file_sha256(path), options.label),
                       model_source=f"torchscript:{path}")
    identity = replace(identity, label=options.label or identity.model_source)
    return Predictor(model=model, preprocessing=options.preprocessing(), identity=identity)


def _open_python(name: str, options: SourceOptions, dataset: str | None) -> Predictor:
    file, sep, factory = name.rpartition(":")
    if not sep or not file or not factory:
        raise ModelSourceError(f"python:{name}: expected python:FILE.py:FACTORY (a function returning an nn.Module)")
    path = Path(file)
    if not path.is_file():
        raise MissingDataError(f"python:{name}: no file {path}")
    module_name = f"corrbench_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception as error:   # the user's file: anything can go wrong
        sys.modules.pop(module_name, None)
        raise ModelSourceError(f"{path} could not be imported ({type(error).__name__}: {_first_line(error)})") from None
    function = getattr(module, factory, None)
    if not callable(function):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module_name)
        raise ModelSourceError(f"{path} has no function '{factory}'; functions there: {', '.join(found) or 'none'}")
    try:
        model = function()
    except Exception as error:   # the user's factory
        raise ModelSourceError(f"{path}:{factory}() raised {type(error).__name__}: {_first_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise ModelSourceError(f"{path}:{factory}() returned {type(model).__name__}, not an nn.Module")
    if options.weights:
        state = read_weights(options.weights)
        model = fit_weights(lambda classes: model, state, f"{path}:{factory}()", options.weights)
    digest = _weights_digest(options, model)
    identity = replace(external_identity("python", f"{path.stem}.{factory}", factory, digest, options.label),
                       model_source=f"python:{name}")
    identity = replace(identity, label=options.label or identity.model_source)
    return Predictor(model=model, preprocessing=options.preprocessing(), identity=identity)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "no message"
