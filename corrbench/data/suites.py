"""Suites: `<dataset>-c` (corruptions × severities) and `<dataset>-p` (perturbation sequences, read by
corrbench.data.psuites).

A suite is read from the official files when they are under the data root, or generated on the fly
from the clean test split by corrbench's corruption engine (`--source generated`). Either way it is
streamed part by part, batch by batch: no suite is ever held in memory whole.

Generated data is produced in fixed chunks of GENERATION_CHUNK images whose generator seeds derive
from (seed, corruption, severity, chunk), so the bytes do not depend on the evaluation batch size —
`corrbench data make-c` writes exactly what `eval --source generated` sees for the same seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from corrbench.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, corrupt, list_corruptions
from corrbench.data.datasets import ImageSet, dataset_info, load_dataset
from corrbench.data.readers import FolderSeverity, NpySeverityBlocks, read_c_labels
from corrbench.device import make_generator
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UserError
from corrbench.registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
GENERATION_CHUNK = 1000
SOURCES = ("auto", "files", "generated")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    dataset: str
    kind: str                    # 'c' | 'p'
    folder: str | None           # official folder name under the data root
    layout: str | None           # 'npy' (CIFAR-10-C / -P style) | 'folders' (ImageNet-C style) | None
    how_to_get: str
    published: bool = True          # False: no published files — `auto` falls back to generating it

    def locations(self, data_root: Path) -> list[Path]:
        return [data_root / self.folder] if self.folder else []


SUITES: Registry[SuiteSpec] = Registry("suite")
for _spec in (
    SuiteSpec("cifar10-c", "cifar10", "c", "CIFAR-10-C", "npy",
              "download CIFAR-10-C.tar from Zenodo record 2535967 and unpack it into the data root"),
    SuiteSpec("cifar100-c", "cifar100", "c", "CIFAR-100-C", "npy",
              "download CIFAR-100-C.tar from Zenodo record 3555552 and unpack it into the data root"),
    SuiteSpec("tinyimagenet-c", "tinyimagenet", "c", "Tiny-ImageNet-C", "folders",
              "download Tiny-ImageNet-C from Zenodo record 2536630 and unpack it into the data root"),
    SuiteSpec("imagenet-c", "imagenet", "c", "ImageNet-C", "folders",
              "download blur/digital/noise/weather .tar from Zenodo record 2235448 into <data root>/ImageNet-C"),
    SuiteSpec("mnist5k-c", "mnist5k", "c", "MNIST5K-C", "npy",
              "generated on the fly from the mnist5k test split, or written by `corrbench data make-c "
              "--dataset mnist5k --out <data root>/MNIST5K-C`", published=False),
    SuiteSpec("mnist-mnistc", "mnist", "c", "mnist_c", "mnistc",
              "download mnist_c.zip from Zenodo record 3239543 and unpack it into the data root (folder mnist_c), "
              "or write it with `corrbench data make-mnistc --dataset mnist --out <data root>/mnist_c`"),
    SuiteSpec("mnist5k-mnistc", "mnist5k", "c", "mnist5k_c", "mnistc",
              "generated on the fly from the mnist5k test split, or written by `corrbench data make-mnistc "
              "--dataset mnist5k --out <data root>/mnist5k_c`", published=False),
    SuiteSpec("mnist5k-p", "mnist5k", "p", "MNIST5K-P", "npy",
              "generated on the fly from the mnist5k test split, or written by `corrbench data make-p "
              "--dataset mnist5k --out <data root>/MNIST5K-P`", published=False),
    SuiteSpec("cifar10-p", "cifar10", "p", "CIFAR-10-P", "npy",
              "download CIFAR-10-P from the link in the hendrycks/robustness README into the data root"),
    SuiteSpec("cifar100-p", "cifar100", "p", "CIFAR-100-P", "npy",
              "download CIFAR-100-P from the link in the hendrycks/robustness README into the data root"),
):
    SUITES.register(_spec.name, _spec)


def get_suite_spec(name: str) -> SuiteSpec:
    return SUITES.get(name)


@dataclass
class Part:
    """One (corruption, severity) of a -C suite; severity 0 with corruption 'clean' is the clean test set."""

    corruption: str
    severity: int
    labels: torch.Tensor
    _loader: "object" = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.labels.shape[0])

    @property
    def benchmark(self) -> bool:
        return self.corruption in BENCHMARK_CORRUPTIONS

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 B×3×H×W images, int64 labels) in test-set order."""
        for start in range(0, self.n, batch_size):
            stop = min(start + batch_size, self.n)
            yield self._loader(slice(start, stop)), self.labels[start:stop]


@dataclass
class CorruptionSuite:
    spec: SuiteSpec
    source: str                  # 'files' | 'generated'
    clean: ImageSet
    corruptions: list[str]
    severities: list[int]
    seed: int | None             # generator seed for 'generated'; None for files
    directory: Path | None
    device: torch.device
    scale: str

    def __len__(self) -> int:
        return 1 + len(self.corruptions) * len(self.severities)

    def parts(self, include_clean: bool = True) -> Iterator[Part]:
        if include_clean:
            yield Part("clean", 0, self.clean.labels, self.clean.images)
        for corruption in self.corruptions:
            if self.source == "files":
                yield from self._file_parts(corruption)
            else:
                for severity in self.severities:
                    generated = GeneratedImages(self.clean, corruption, severity, self.seed, self.scale, self.device)
                    yield Part(corruption, severity, self.clean.labels, generated)

    def _file_parts(self, corruption: str) -> Iterator[Part]:
        assert self.directory is not None
        if self.spec.layout == "npy":
            blocks = NpySeverityBlocks(self.directory / f"{corruption}.npy", n_per_severity=len(self.clean))
            for severity in self.severities:
                yield Part(corruption, severity, self.clean.labels,
                           lambda index, s=severity: blocks.images(s, index))
        else:
            folder = FolderSeverity(self.directory / corruption, self.clean_classes())
            for severity in self.severities:
                images = folder.severity(severity)
                yield Part(corruption, severity, images.labels, images.images)

    def clean_classes(self) -> list[str]:
        classes = getattr(self.clean, "classes", None)
        if not classes:
            raise LayoutError(f"the clean {self.spec.dataset} test set has no class-folder names to match "
                              f"{self.directory}'s folders against")
        return list(classes)


class GeneratedImages:
    """Corrupted images generated on demand, chunk by chunk, with seeds independent of the batch size."""

    def __init__(self, clean: ImageSet, corruption: str, severity: int, seed: int, scale: str,
                 device: torch.device):
        self.clean, self.corruption, self.severity = clean, corruption, severity
        self.seed, self.scale, self.device = seed, scale, device
        self._cache: tuple[int, torch.Tensor] | None = None

    def chunk(self, index: int) -> torch.Tensor:
        if self._cache is not None and self._cache[0] == index:
            return self._cache[1]
        images = generate_chunk(self.clean, self.corruption, self.severity, self.seed, self.scale, self.device, index)
        self._cache = (index, images)
        return images

    def __call__(self, index: slice) -> torch.Tensor:
        return slice_chunks(self.chunk, GENERATION_CHUNK, index.start or 0, index.stop)


def slice_chunks(chunk: Callable[[int], torch.Tensor], chunk_size: int, start: int, stop: int) -> torch.Tensor:
    """Items start..stop of a sequence stored as fixed-size chunks (`chunk(i)` = items i·size … (i+1)·size)."""
    pieces = []
    position = start
    while position < stop:
        index = position // chunk_size
        offset = index * chunk_size
        take = min(stop, offset + chunk_size)
        pieces.append(chunk(index)[position - offset:take - offset])
        position = take
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


def generate_chunk(clean: ImageSet, corruption: str, severity: int, seed: int, scale: str,
                   device: torch.device, chunk_index: int, *, jpeg: bool = True) -> torch.Tensor:
    """Chunk `chunk_index` (GENERATION_CHUNK images, test-set order) of corruption × severity, seeded.

    At the tiny and imagenet scales the chunk is corrupted in pieces of a few dozen images (one generator,
    drawn from in order, so the bytes are still fixed) to bound memory, and — as the published
    Tiny-ImageNet-C / ImageNet-C files were saved as JPEG quality 85 (spec §0.1) — each image then takes
    that JPEG round trip, so it equals what `corrbench data make-c` writes, decoded. `jpeg=False` returns
    the images before that step (make-c encodes them itself).
    """
    from corrbench.data.make_c import JPEG_SCALES, jpeg_round_trip  # make_c imports this module
    start = chunk_index * GENERATION_CHUNK
    stop = min(start + GENERATION_CHUNK, len(clean))
    generator = make_generator(device, "corrbench-c", seed, corruption, severity, chunk_index)
    piece = {"tiny": 250, "imagenet": 50}.get(scale, GENERATION_CHUNK)   # ~25-60 MB per float64 temporary
    corrupted = [corrupt(clean.images(slice(first, min(first + piece, stop))).to(device), corruption, severity,
                         scale=scale, generator=generator)
                 for first in range(start, stop, piece)]
    images = corrupted[0] if len(corrupted) == 1 else torch.cat(corrupted)
    return jpeg_round_trip(images) if jpeg and scale in JPEG_SCALES else images


def _check_severities(severities: Sequence[int] | None) -> list[int]:
    chosen = list(severities) if severities else list(SEVERITIES)
    for severity in chosen:
        if severity not in SEVERITIES:
            raise InvalidValueError(f"severity must be between 1 and 5, got {severity}")
    return chosen


def choose_source(spec: SuiteSpec, source: str, data_root: Path) -> tuple[str, Path | None]:
    if source not in SOURCES:
        raise InvalidValueError(f"--source must be one of {', '.join(SOURCES)}, got '{source}'")
    directory = data_root / spec.folder if spec.folder else None
    found = directory is not None and directory.is_dir()
    if not spec.published and source == "auto":
        return ("files", directory) if found else ("generated", None)
    if source == "files" or (source == "auto" and found):
        if not found:
            raise MissingDataError(f"{spec.name} files not found at {directory}; {spec.how_to_get}, pass --data-root, "
                                   f"or use --source generated")
        return "files", directory
    if source == "auto":
        raise MissingDataError(f"{spec.name} files not found at {directory}; {spec.how_to_get} (or pass --data-root), "
                               f"or generate the suite with --source generated")
    return "generated", None


def open_corruption_suite(name: str, data_root: Path, *, source: str = "auto", seed: int = 0,
                          corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
                          device: torch.device | str = "cpu") -> CorruptionSuite:
    """Resolve a -C suite: where its data comes from, which corruptions and severities it has."""
    spec = get_suite_spec(name)
    if spec.kind != "c":
        raise UserError(f"{name} is a perturbation (-P) suite; use `corrbench flip-rate --suite {name}`")
    if spec.layout == "mnistc":   # MNIST-C: its own corruptions on 28-px digits (corrbench.mnistc)
        from corrbench.data.mnistc import open_mnistc_suite
        return open_mnistc_suite(name, data_root, source=source, seed=seed, corruptions=corruptions,
                                 severities=severities, device=device)
    chosen_source, directory = choose_source(spec, source, data_root)
    info = dataset_info(spec.dataset)
    clean = load_dataset(spec.dataset, "test", data_root)
    chosen_severities = _check_severities(severities)
    if chosen_source == "files":
        available = [c for c in ALL_CORRUPTIONS if _has_corruption(spec, directory, c)]
        if spec.layout == "npy":
            labels = read_c_labels(directory, n_per_severity=len(clean))
            if not torch.equal(labels, clean.labels):
                raise LayoutError(f"{directory / 'labels.npy'} does not match the clean {spec.dataset} test labels in "
                                  f"test-set order; the folder is not {spec.folder} for this test set")
    else:
        available = list_corruptions("all")
    if corruptions:
        for corruption in corruptions:
            if corruption not in available:
                where = f"in {directory}" if directory else "in corrbench's engine yet"
                raise MissingDataError(f"corruption '{corruption}' is not available {where}; available: "
                                       f"{', '.join(available) or 'none'}")
        chosen = list(corruptions)
    else:
        if chosen_source == "files":
            missing = [c for c in ALL_CORRUPTIONS if c not in available]
            if missing and not available:
                raise LayoutError(f"{directory} has none of the {len(ALL_CORRUPTIONS)} corruption files; "
                                  f"expected e.g. {_expected_name(spec, ALL_CORRUPTIONS[0])}")
            if missing:
                raise LayoutError(f"{directory} is missing {', '.join(_expected_name(spec, c) for c in missing)}; "
                                  f"re-download it or choose a subset with --corruptions")
        chosen = available
    return CorruptionSuite(spec=spec, source=chosen_source, clean=clean, corruptions=chosen,
                           severities=chosen_severities, seed=seed if chosen_source == "generated" else None,
                           directory=directory, device=torch.device(device), scale=info.scale)


def _expected_name(spec: SuiteSpec, corruption: str) -> str:
    return f"{corruption}.npy" if spec.layout == "npy" else f"{corruption}/"


def _has_corruption(spec: SuiteSpec, directory: Path, corruption: str) -> bool:
    if spec.layout == "npy":
        return (directory / f"{corruption}.npy").is_file()
    return (directory / corruption).is_dir()
