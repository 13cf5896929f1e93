"""The MNIST-C suites: the official layout and generation from a 28×28 digit test split.

Layout (google-research/mnist-c, Zenodo 3239543): `<suite folder>/<corruption>/test_images.npy`
(N, 28, 28, 1) uint8 and `test_labels.npy` (N,), one folder per corruption, each at its one fixed
severity (recorded as severity 1). For evaluation the digits are served exactly like the clean MNIST
sets serve theirs: 32×32 RGB through `grey28_to_rgb32`.

Generated data comes in chunks of GENERATION_CHUNK digits whose generators derive from (seed,
corruption, chunk), so `corrbench data make-mnistc` writes exactly what `eval --source generated` sees.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from corrbench.atomic import atomic_path
from corrbench.data.datasets import ImageSet, load_dataset
from corrbench.data.imageset import grey28_to_rgb32
from corrbench.data.suite_base import SUITES, Part, SuiteSpec, choose_source, register_opener, slice_chunks
from corrbench.device import make_generator
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UserError, not_available
from corrbench.mnistc import MNISTC_CORRUPTIONS, SIDE, corrupt_digits

GENERATION_CHUNK = 1000
IMAGES_FILE, LABELS_FILE = "test_images.npy", "test_labels.npy"
MNISTC_DATASETS = ("mnist", "mnist5k")

def mnistc_spec(name: str) -> SuiteSpec:
    """The registered spec of an MNIST-C suite (mnist-mnistc, mnist5k-mnistc)."""
    return SUITES.get(name)


def clean_digits(clean: ImageSet) -> torch.Tensor:
    """uint8 N×28×28 grey digits of a clean MNIST-style set (the exact inverse of `grey28_to_rgb32`)."""
    images = clean.tensor()
    if images.shape[1:] != (3, 32, 32):
        raise LayoutError(f"MNIST-C needs 28×28 digits served as 32×32 RGB, got images of shape {tuple(images.shape[1:])}")
    return images[:, 0, 2:2 + SIDE, 2:2 + SIDE]


def generate_mnistc_chunk(digits: torch.Tensor, corruption: str, seed: int, device: torch.device,
                          chunk_index: int) -> torch.Tensor:
    """Chunk `chunk_index` (GENERATION_CHUNK digits, test-set order) of `corruption`: uint8 n×28×28 on `device`."""
    start = chunk_index * GENERATION_CHUNK
    generator = make_generator(torch.device("cpu"), "corrbench-mnistc", seed, corruption, chunk_index)  # same bytes on every device
    return corrupt_digits(digits[start:start + GENERATION_CHUNK].to(device), corruption, generator=generator)


class GeneratedDigits:
    """Corrupted digits of one corruption, generated chunk by chunk, served as uint8 B×3×32×32 (CPU)."""

    def __init__(self, digits: torch.Tensor, corruption: str, seed: int, device: torch.device):
        self.digits, self.corruption, self.seed, self.device = digits, corruption, seed, device
        self._cache: tuple[int, torch.Tensor] | None = None

    def chunk(self, index: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != index:
            self._cache = (index, generate_mnistc_chunk(self.digits, self.corruption, self.seed, self.device,
                                                        index).cpu())
        return self._cache[1]

    def __call__(self, index: slice) -> torch.Tensor:
        return grey28_to_rgb32(slice_chunks(self.chunk, GENERATION_CHUNK, index.start or 0, index.stop))


class FileDigits:
    """One corruption's memory-mapped `test_images.npy` (N, 28, 28, 1), served as uint8 B×3×32×32."""

    def __init__(self, path: Path):
        self.images = read_mnistc_images(path)

    def __call__(self, index: slice) -> torch.Tensor:
        return grey28_to_rgb32(torch.from_numpy(np.array(self.images[index, :, :, 0])))


def read_mnistc_images(path: Path) -> np.ndarray:
    """Memory-map an MNIST-C `test_images.npy`, checked to be (N, 28, 28, 1) uint8."""
    if not path.is_file():
        raise MissingDataError(f"{path} not found; an MNIST-C folder holds <corruption>/{IMAGES_FILE}")
    images = np.load(path, mmap_mode="r")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIDE, SIDE, 1):
        raise LayoutError(f"{path} holds {images.dtype} {images.shape}, expected uint8 (N, 28, 28, 1) digits")
    return images


def read_mnistc_labels(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise MissingDataError(f"{path} not found; an MNIST-C folder holds <corruption>/{LABELS_FILE}")
    labels = np.load(path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise LayoutError(f"{path} holds {labels.dtype} {labels.shape}, expected integer labels (N,)")
    return torch.from_numpy(labels.astype(np.int64))


class MnistcPart(Part):
    """A Part of an MNIST-C suite: all 15 corruptions are the benchmark."""

    @property
    def benchmark(self) -> bool:
        return self.corruption in MNISTC_CORRUPTIONS


@dataclass
class MnistcSuite:
    """An MNIST-C suite, with the interface `engine.evaluate` consumes from CorruptionSuite."""

    spec: SuiteSpec
    source: str                  # 'files' | 'generated'
    clean: ImageSet
    corruptions: list[str]
    severities: list[int]        # always [1]: one fixed severity per corruption
    seed: int | None
    directory: Path | None
    device: torch.device
    scale_family: None = None    # MNIST-C has its own corruptions on 28-px digits: no scale family
    scale_note: str = "MNIST-C: its own 15 corruptions on 28×28 digits (no scale family)"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    def __len__(self) -> int:
        return 1 + len(self.corruptions)

    def parts(self, include_clean: bool = True) -> Iterator[Part]:
        if include_clean:
            yield Part("clean", 0, self.clean.labels, self.clean.images)
        digits = clean_digits(self.clean) if self.source == "generated" else None
        for corruption in self.corruptions:
            if self.source == "generated":
                yield MnistcPart(corruption, 1, self.clean.labels,
                                 GeneratedDigits(digits, corruption, self.seed, self.device))
            else:
                folder = self.directory / corruption
                labels = read_mnistc_labels(folder / LABELS_FILE)
                if not torch.equal(labels, self.clean.labels):
                    raise LayoutError(f"{folder / LABELS_FILE} does not match the clean {self.spec.dataset} test "
                                      f"labels in test-set order; the folder is not {self.spec.folder} for this test set")
                yield MnistcPart(corruption, 1, labels, FileDigits(folder / IMAGES_FILE))


def _check_severities(severities: Sequence[int] | None) -> list[int]:
    if severities and list(severities) != [1]:
        raise InvalidValueError(f"MNIST-C has one fixed severity per corruption (recorded as 1); got severities "
                                f"{', '.join(map(str, severities))}; pass --severities 1 or leave it out")
    return [1]


def open_mnistc_suite(name: str, data_root: Path, *, source: str = "auto", seed: int = 0,
                      corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
                      device: torch.device | str = "cpu") -> MnistcSuite:
    """Resolve an MNIST-C suite (`mnist-mnistc`, `mnist5k-mnistc`): files or generated, which corruptions."""
    spec = mnistc_spec(name)
    if spec.layout != "mnistc":
        raise UserError(f"{name} is not an MNIST-C suite; open it with corrbench.data.suites.open_corruption_suite")
    return _open(spec, Path(data_root), source=source, seed=seed, corruptions=corruptions, severities=severities,
                 device=device)


@register_opener("mnistc")
def _open(spec: SuiteSpec, data_root: Path, *, source: str = "auto", seed: int = 0,
          corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
          device: torch.device | str = "cpu") -> MnistcSuite:
    chosen_source, directory = choose_source(spec, source, Path(data_root))
    clean = load_dataset(spec.dataset, "test", data_root)
    chosen_severities = _check_severities(severities)
    if chosen_source == "files":
        available = [c for c in MNISTC_CORRUPTIONS if (directory / c / IMAGES_FILE).is_file()]
    else:
        available = list(MNISTC_CORRUPTIONS)
    if corruptions:
        for corruption in corruptions:
            if corruption not in available:
                where = f"in {directory}" if chosen_source == "files" else "in MNIST-C"
                raise not_available("corruption", corruption, available, where)
        chosen = list(corruptions)
    else:
        missing = [c for c in MNISTC_CORRUPTIONS if c not in available]
        if missing:
            raise LayoutError(f"{directory} is missing {', '.join(f'{c}/{IMAGES_FILE}' for c in missing)}; "
                              f"re-download it or choose a subset with --corruptions")
        chosen = available
    return MnistcSuite(spec=spec, source=chosen_source, clean=clean, corruptions=chosen, severities=chosen_severities,
                       seed=seed if chosen_source == "generated" else None, directory=directory,
                       device=torch.device(device))


@dataclass
class MnistcWritten:
    out: Path
    corruptions: list[str]
    images: int
    seconds: float


def make_mnistc(dataset: str, out: Path | str, *, seed: int = 0, corruptions: Sequence[str] | None = None,
                data_root: Path | str | None = None, device: torch.device | str = "cpu",
                overwrite: bool = False) -> MnistcWritten:
    """Write MNIST-C for `dataset`'s test split into `out` in the official layout, atomically (the folder
    appears complete or not at all); the bytes equal `eval --source generated --seed seed` on this device type."""
    import time
    if dataset not in MNISTC_DATASETS:
        raise InvalidValueError(f"--dataset must be one of {', '.join(MNISTC_DATASETS)} for MNIST-C, got '{dataset}'")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out} exists and is not empty; choose another --out or pass --overwrite")
    chosen = list(corruptions) if corruptions else list(MNISTC_CORRUPTIONS)
    for corruption in chosen:
        if corruption not in MNISTC_CORRUPTIONS:
            from corrbench.mnistc import MNISTC
            MNISTC.get(corruption)  # UnknownNameError with the valid names
    clean = load_dataset(dataset, "test", data_root)
    digits = clean_digits(clean)
    labels = clean.labels.numpy().astype(np.uint8)
    torch_device = torch.device(device)
    started = time.perf_counter()
    with atomic_path(out) as temp:
        temp.mkdir()
        for corruption in chosen:
            chunks = [generate_mnistc_chunk(digits, corruption, seed, torch_device, index).cpu()
                      for index in range((len(digits) + GENERATION_CHUNK - 1) // GENERATION_CHUNK)]
            folder = temp / corruption
            folder.mkdir()
            np.save(folder / IMAGES_FILE, torch.cat(chunks).numpy()[..., None])
            np.save(folder / LABELS_FILE, labels)
    return MnistcWritten(out=out, corruptions=chosen, images=len(digits) * len(chosen),
                         seconds=time.perf_counter() - started)
