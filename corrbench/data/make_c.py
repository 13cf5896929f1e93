"""`corrbench data make-c`: write a -C suite to disk in the official layout, generated from the clean test
split by corrbench's seeded corruption engine.

Any dataset works (registered, `npy:`, `folder:`), at any image size, square or not: the scale family
(severity constants) is the one nearest to the shorter image side (`corrbench.corruptions.scale_family_for`),
and decides the layout (corruptions spec §0.1; hendrycks/robustness `make_cifar_c.py`, `make_imagenet_c.py`):
- **cifar family** (shorter side ≤ 45 px: cifar10, cifar100, mnist5k, mnist, fashion-mnist, small `npy:` /
  `folder:` data): the CIFAR-10-C layout. `<out>/<corruption>.npy` is uint8 (5·N, H, W, 3), rows
  [(s−1)·N, s·N) holding severity s of the N test images in test-set order; `<out>/labels.npy` holds the
  5·N labels (uint8 when the classes fit in a byte, as in CIFAR-10-C, else int64).
- **tiny and imagenet families** (Tiny ImageNet 64 px, ImageNet 224 px, larger data): the ImageNet-C layout,
  `<out>/<corruption>/<severity>/<class>/<image>.JPEG`. As the published Tiny-ImageNet-C / ImageNet-C, every
  corrupted image is saved as JPEG quality 85 (`optimize=True`); the clean ImageNet images were already
  served Resize(256) → CenterCrop(224) (`corrbench.data.imageset.resize_center_crop`).

`eval --source generated` sees exactly these images for the same seed on any device (draws come from a
CPU generator, and the corruptions give the CPU's bytes on CUDA): both come from `corrbench.data.generate.generate_chunk`
(fixed chunks seeded by (seed, corruption, severity, chunk)), and at the JPEG scales the generated suite
decodes the same (deterministic) encoding that is written here: `jpeg_round_trip` = `decode_jpeg ∘ encode_jpeg`.

Writing streams chunk by chunk (peak memory: one chunk of images and its corruption temporaries) into a
hidden folder beside `out` that is renamed onto `out` only once complete (`corrbench.atomic`): an error or
Ctrl-C leaves `out` as it was. `out` also receives `corrbench-make-c.json`, the recipe (dataset, seed,
device type, corruptions, corrbench version) that `corrbench data verify` reads.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from corrbench import __version__
from corrbench.atomic import atomic_path
from corrbench.corruptions import MIN_SIDE, get_corruption, list_corruptions, scale_family_note
from corrbench.data import generate
from corrbench.data.datasets import dataset_info, load_dataset, resolve_data_root
from corrbench.data.generate import (JPEG_QUALITY, JPEG_SCALES, PROVENANCE_FILE,  # noqa: F401 (re-exported)
                                     decode_jpeg, encode_jpeg, encode_jpeg_batch, jpeg_round_trip, layout_for_scale,
                                     read_provenance)
from corrbench.data.generate import parallel_map as _parallel_map
from corrbench.data.generate import to_hwc as _to_hwc
from corrbench.data.imageset import ImageSet
from corrbench.data.suites import c_suite_spec, resolve_suite
from corrbench.device import resolve_device
from corrbench.progress import ProgressLike, null_progress
from corrbench.errors import InvalidValueError, UserError

SEVERITIES = (1, 2, 3, 4, 5)
MAX_UINT8_CLASSES = 256


# ---------------------------------------------------------------------------------------------------
# What to generate, checked before anything is written

@dataclass(frozen=True)
class MakeCPlan:
    """A checked make-c request."""

    dataset: str
    out: Path
    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    scale: str                   # the scale family (severity constants)
    image_size: int              # the shorter image side
    layout: str
    seed: int
    device: torch.device
    image_hw: tuple[int, int] = (0, 0)

    @property
    def scale_note(self) -> str:
        """One line: which scale family the images take and why."""
        return scale_family_note(*self.image_hw, self.scale)


def check_severities(severities: Sequence[int] | None) -> tuple[int, ...]:
    """The requested severities (default 1..5) in the given order, each checked to be 1..5."""
    chosen = tuple(severities) if severities else SEVERITIES
    for severity in chosen:
        if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
            raise InvalidValueError(f"severity must be between 1 and 5, got {severity}")
    return tuple(dict.fromkeys(int(s) for s in chosen))


def check_corruptions(corruptions: Sequence[str] | None) -> tuple[str, ...]:
    """The requested corruptions (default: every registered one), each resolved through the registry."""
    if not corruptions:
        return tuple(list_corruptions("all"))
    for name in corruptions:
        get_corruption(name)   # UnknownNameError with the valid names, or "not implemented yet"
    return tuple(dict.fromkeys(corruptions))


def check_out(out: Path, overwrite: bool) -> Path:
    """`out` as an absolute path; refuses a file, or a non-empty folder unless `overwrite`."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder path (it receives the -C files)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out {out} exists and is not empty; pass --overwrite to replace it, or choose "
                        f"another folder")
    return out


def suite_to_dataset(suite: str | None, dataset: str | None) -> str:
    """The dataset make-c corrupts, from `--dataset` and/or a generated -C suite named as eval names it
    (`<dataset>-c`, `c:DATASET`, `c` with the dataset)."""
    if suite is None:
        if not dataset:
            raise UserError("make-c needs --dataset (e.g. --dataset cifar10 or --dataset npy:IMAGES.npy,LABELS.npy)")
        return dataset
    spec = resolve_suite(suite, dataset)
    if not spec.generated or spec.kind != "c" or spec.layout == "mnistc":
        raise UserError(f"make-c writes corrbench's own -C suites; {suite} is not one (use make-mnistc for MNIST-C, "
                        f"make-p for -P)")
    return spec.dataset


def default_c_folder(dataset: str, data_root: Path | str | None = None) -> Path:
    """Where `eval --source files` looks for `dataset`'s -C suite: <data root>/<its suite folder> (e.g.
    data/CIFAR-10-C, data/FASHION-MNIST-C), or beside your own data (IMAGES-C beside IMAGES.npy for
    `npy:`, PATH-C beside PATH for `folder:`)."""
    return resolve_data_root(data_root) / c_suite_spec(dataset).folder


def plan_make_c(dataset: str, out: Path | str | None = None, *, seed: int = 0,
                corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
                device: torch.device | str = "auto", data_root: Path | str | None = None,
                overwrite: bool = False) -> MakeCPlan:
    """Check every option (one-line `UserError`s) without loading or writing anything. `out` defaults to
    `default_c_folder(dataset, data_root)`."""
    chosen_severities = check_severities(severities)
    chosen_corruptions = check_corruptions(corruptions)
    info = dataset_info(dataset)
    if info.image_size < MIN_SIDE:
        height, width = info.height_width
        raise InvalidValueError(f"{dataset} serves {height}×{width} images; the corruptions need at least "
                                f"{MIN_SIDE}×{MIN_SIDE} px, so upscale the images first")
    scale = info.scale     # the family nearest to the shorter side (`corrbench.corruptions.scale_family_for`)
    layout = layout_for_scale(scale)
    if layout == "npy" and sorted(chosen_severities) != list(SEVERITIES):
        raise InvalidValueError("the CIFAR-10-C .npy layout stores all 5 severities in every file; drop "
                                "--severities (pick corruptions with --corruptions instead)")
    out = Path(out) if out is not None else default_c_folder(dataset, data_root)
    return MakeCPlan(dataset=dataset, out=check_out(out, overwrite), corruptions=chosen_corruptions,
                     severities=chosen_severities, scale=scale, image_size=info.image_size, layout=layout,
                     seed=int(seed), device=device if isinstance(device, torch.device) else resolve_device(device),
                     image_hw=info.height_width)


# ---------------------------------------------------------------------------------------------------
# Writing

@dataclass
class WrittenCorruption:
    """One corruption on disk: its .npy file or its folder, relative to `out`."""

    corruption: str
    path: str
    images: int
    bytes: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class MakeCResult:
    plan: MakeCPlan
    n_per_severity: int
    written: list[WrittenCorruption] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def out(self) -> Path:
        return self.plan.out

    @property
    def images(self) -> int:
        return sum(w.images for w in self.written)

    @property
    def bytes(self) -> int:
        return sum(w.bytes for w in self.written)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def make_c(dataset: str, out: Path | str | None = None, *, seed: int = 0, corruptions: Sequence[str] | None = None,
           severities: Sequence[int] | None = None, device: torch.device | str = "auto",
           data_root: Path | str | None = None, overwrite: bool = False,
           progress: ProgressLike | None = None) -> MakeCResult:
    """Generate the -C suite of `dataset`'s test split and write it to `out` in the official layout.

    `out` is the suite folder itself (default: `default_c_folder`, e.g. `data/CIFAR-10-C`, where
    `eval --suite <dataset>-c --source files` looks); it appears complete or not at all.
    Options are checked first (`plan_make_c`); unknown corruptions, severities outside 1..5 and a
    non-empty `out` without `overwrite` raise one-line `UserError`s.
    """
    plan = plan_make_c(dataset, out, seed=seed, corruptions=corruptions, severities=severities, device=device,
                       data_root=data_root, overwrite=overwrite)
    clean = load_dataset(dataset, "test", data_root)
    progress = progress or null_progress()
    result = MakeCResult(plan=plan, n_per_severity=len(clean))
    task = progress.add_task("make-c", total=len(plan.corruptions) * len(plan.severities) * len(clean))
    started = time.perf_counter()
    with atomic_path(plan.out) as temp:
        temp.mkdir()
        write = _write_npy_corruption if plan.layout == "npy" else _write_folder_corruption
        if plan.layout == "npy":
            _write_labels(temp, clean)
        for corruption in plan.corruptions:
            progress.update(task, description=f"make-c {corruption}")
            result.written.append(write(temp, clean, plan, corruption, progress, task))
        (temp / PROVENANCE_FILE).write_text(json.dumps(provenance(plan, len(clean)), indent=2) + "\n")
    result.seconds = time.perf_counter() - started
    return result


def provenance(plan: MakeCPlan, n_per_severity: int) -> dict:
    """The recipe stored beside the files: enough to regenerate them, and for `verify` to know them."""
    return {"format": "corrbench-make-c/1", "corrbench_version": __version__, "dataset": plan.dataset,
            "seed": plan.seed, "device_type": plan.device.type, "scale": plan.scale, "layout": plan.layout,
            "image_size": plan.image_size, "image_hw": list(plan.image_hw), "scale_note": plan.scale_note,
            "n_per_severity": n_per_severity,
            "corruptions": list(plan.corruptions), "severities": list(plan.severities),
            "generation_chunk": generate.GENERATION_CHUNK,
            "jpeg_quality": JPEG_QUALITY if plan.layout == "folders" else None}


def _chunks(n: int) -> range:
    return range((n + generate.GENERATION_CHUNK - 1) // generate.GENERATION_CHUNK)


def _write_labels(folder: Path, clean: ImageSet) -> None:
    labels = clean.labels.numpy()
    classes = max(len(clean.classes), int(labels.max()) + 1 if labels.size else 0)
    dtype = np.uint8 if classes <= MAX_UINT8_CLASSES else np.int64
    np.save(folder / "labels.npy", np.tile(labels.astype(dtype), len(SEVERITIES)))


def _write_npy_corruption(folder: Path, clean: ImageSet, plan: MakeCPlan, corruption: str,
                          progress: ProgressLike, task) -> WrittenCorruption:
    n, (height, width) = len(clean), clean.image_hw
    path = folder / f"{corruption}.npy"
    started = time.perf_counter()
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(SEVERITIES) * n, height, width, 3))
    try:
        for severity in plan.severities:
            for chunk_index in _chunks(n):
                images = generate.generate_chunk(clean, corruption, severity, plan.seed, plan.scale, plan.device,
                                                 chunk_index)
                start = (severity - 1) * n + chunk_index * generate.GENERATION_CHUNK
                rows[start:start + images.shape[0]] = _to_hwc(images)
                progress.advance(task, images.shape[0])
        rows.flush()
    finally:
        del rows
    return WrittenCorruption(corruption, path.name, len(plan.severities) * n, path.stat().st_size,
                             time.perf_counter() - started)


def image_file_names(clean: ImageSet) -> list[str]:
    """The file name of each test image in the JPEG layouts: the clean file's stem + `.JPEG` (ImageNet-C
    keeps the ILSVRC2012 names), `<index>.JPEG` for in-memory data. A stem shared by two files of one
    class keeps its original suffix so that no file overwrites another."""
    paths = getattr(clean, "paths", None)
    if paths is None:
        width = max(6, len(str(len(clean))))
        return [f"{index:0{width}d}.JPEG" for index in range(len(clean))]
    stems = [(label, Path(path).stem) for label, path in zip(clean.labels.tolist(), paths)]
    shared = {key for key, count in Counter(stems).items() if count > 1}
    return [f"{Path(path).name}.JPEG" if key in shared else f"{key[1]}.JPEG" for key, path in zip(stems, paths)]


def _write_jpeg(target_and_image: tuple[Path, np.ndarray]) -> int:
    target, image = target_and_image
    data = encode_jpeg(image)
    target.write_bytes(data)
    return len(data)


def _write_folder_corruption(folder: Path, clean: ImageSet, plan: MakeCPlan, corruption: str,
                             progress: ProgressLike, task) -> WrittenCorruption:
    n = len(clean)
    names = image_file_names(clean)
    labels = clean.labels.tolist()
    classes = list(clean.classes)
    started = time.perf_counter()
    written = 0
    for severity in plan.severities:
        severity_dir = folder / corruption / str(severity)
        for label in sorted(set(labels)):
            (severity_dir / classes[label]).mkdir(parents=True, exist_ok=True)
        for chunk_index in _chunks(n):
            images = generate.generate_chunk(clean, corruption, severity, plan.seed, plan.scale, plan.device,
                                             chunk_index, jpeg=False)
            start = chunk_index * generate.GENERATION_CHUNK
            targets = [severity_dir / classes[labels[start + i]] / names[start + i] for i in range(images.shape[0])]
            written += sum(_parallel_map(_write_jpeg, list(zip(targets, _to_hwc(images)))))
            progress.advance(task, images.shape[0])
    return WrittenCorruption(corruption, f"{corruption}/", len(plan.severities) * n, written,
                             time.perf_counter() - started)
