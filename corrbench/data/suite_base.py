"""What every suite module shares: the suite spec and its registry, a suite's parts, the registry of
suite openers by layout, and the choice between files and generation.

Modules that open a kind of suite (`corrbench.data.suites` for the -C layouts, `corrbench.data.mnistc` for
MNIST-C) import this module and register an opener for their layout; `corrbench.data.suites` looks the
opener up by `spec.layout`. Nothing here imports them, so the suite modules form no import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from corrbench.corruptions import BENCHMARK_CORRUPTIONS
from corrbench.errors import InvalidValueError, MissingDataError
from corrbench.registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
SOURCES = ("auto", "files", "generated")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    dataset: str
    kind: str                    # 'c' | 'p'
    folder: str | None           # folder under the data root (an absolute path for suites of your own data)
    layout: str | None           # 'npy' (CIFAR-10-C / -P style) | 'folders' (ImageNet-C style) | 'mnistc' | None
    how_to_get: str
    published: bool = True       # False: no published files — `auto` falls back to generating it
    generated: bool = True       # False: files only (cfolder:/cnpy: suites of any corruption names)

    def locations(self, data_root: Path) -> list[Path]:
        return [data_root / self.folder] if self.folder else []


SUITES: Registry[SuiteSpec] = Registry("suite")
"""The named suites (official sets and the MNIST-C / mnist5k ones); `<dataset>-c`, `c:DATASET`,
`cfolder:PATH` and `cnpy:PATH` are resolved on demand by `corrbench.data.suites.resolve_suite`."""
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
    # ImageNet-P layout: <perturbation>[_<d>]/<wnid>/<name>.mp4 (or make-p's .npy); corrbench.data.videop
    SuiteSpec("tinyimagenet-p", "tinyimagenet", "p", "Tiny-ImageNet-P", "videos",
              "download Tiny-ImageNet-P from Zenodo record 2536630 and unpack it into the data root "
              "(folder Tiny-ImageNet-P), or write it with `corrbench data make-p --dataset tinyimagenet`"),
    SuiteSpec("imagenet-p", "imagenet", "p", "ImageNet-P", "videos",
              "download ImageNet-P from Zenodo record 3565846 and unpack it into <data root>/ImageNet-P, "
              "or write it with `corrbench data make-p --dataset imagenet`"),
):
    SUITES.register(_spec.name, _spec)

SuiteOpener = Callable[..., object]
SUITE_OPENERS: Registry[SuiteOpener] = Registry("suite layout")
"""layout → `opener(spec, data_root, *, source, seed, corruptions, severities, device)` returning the suite."""


def register_opener(layout: str) -> Callable[[SuiteOpener], SuiteOpener]:
    """Decorator: the function opens suites whose spec has this layout."""
    return SUITE_OPENERS.decorator(layout)


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
        """One of the 15 benchmark corruptions (any other name, e.g. of a cfolder: suite, is not)."""
        return self.corruption in BENCHMARK_CORRUPTIONS

    def batches(self, batch_size: int, start: int = 0,
                stop: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 B×3×H×W images, int64 labels) in test-set order; images start..stop only (a shard)."""
        stop = self.n if stop is None else stop
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            yield self._loader(slice(first, last)), self.labels[first:last]


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


def check_severities(severities: Sequence[int] | None) -> list[int]:
    chosen = list(severities) if severities else list(SEVERITIES)
    for severity in chosen:
        if severity not in SEVERITIES:
            raise InvalidValueError(f"severity must be between 1 and 5, got {severity}")
    return chosen


def choose_source(spec: SuiteSpec, source: str, data_root: Path) -> tuple[str, Path | None]:
    """('files', folder) or ('generated', None) for `--source` auto | files | generated."""
    if source not in SOURCES:
        raise InvalidValueError(f"--source must be one of {', '.join(SOURCES)}, got '{source}'")
    directory = Path(data_root) / spec.folder if spec.folder else None
    found = directory is not None and directory.is_dir()
    if not spec.generated:
        if source == "generated":
            raise InvalidValueError(f"{spec.name} is read from its files only (its corruptions are not corrbench's); "
                                    f"drop --source generated, or use --suite c for a generated -C suite")
        if not found:
            raise MissingDataError(f"{directory} is not a folder; {spec.how_to_get}")
        return "files", directory
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
