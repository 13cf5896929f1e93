"""-P suites: perturbation sequences in the official CIFAR-10-P layout, `(N, T, 32, 32, 3)` uint8 per
perturbation file (corruptions-spec.md Part B), read from files or generated from the clean test split.

Either way a suite is streamed video batch by video batch. Generated videos are produced in fixed chunks
of P_GENERATION_CHUNK test images whose generator seeds derive from (seed, perturbation, noise level,
chunk), so the bytes depend neither on the evaluation batch size nor on `limit` — `corrbench data make-p`
writes exactly what `flip-rate --source generated` sees for the same seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from corrbench.atomic import atomic_path
from corrbench.data.datasets import ImageSet, dataset_info, load_dataset
from corrbench.data.readers import open_p_file
from corrbench.data.suites import SUITES, SuiteSpec, choose_source, get_suite_spec, slice_chunks
from corrbench.device import make_generator
from corrbench.progress import ProgressLike, null_progress
from corrbench.errors import (InvalidValueError, LayoutError, MissingDataError, UnknownNameError, UserError,
                              check_range)
from corrbench.perturbations import (FRAME_SIZE, NOISE_DIFFICULTIES, P_PERTURBATIONS, P_TEST_PERTURBATIONS,
                                     P_VALIDATION_PERTURBATIONS, generate_sequences, get_perturbation,
                                     list_perturbations)

__all__ = ["P_TEST_PERTURBATIONS", "P_VALIDATION_PERTURBATIONS", "P_GENERATION_CHUNK", "PerturbationPart",
           "GeneratedPerturbationPart", "PerturbationSuite", "open_perturbation_suite", "generate_p_chunk",
           "p_file_name", "write_p_suite", "default_p_folder"]

P_GENERATION_CHUNK = 250   # videos per generated chunk: ~24 MB of uint8 frames; fixed, as seeds depend on it


@dataclass
class PerturbationPart:
    """One perturbation file of a -P suite: videos (N, T, H, W, 3) uint8, streamed in batches of videos."""

    perturbation: str
    difficulty: int
    path: Path
    limit: int | None = None     # only the first `limit` videos

    def __post_init__(self) -> None:
        self._videos = open_p_file(self.path)

    @property
    def n(self) -> int:
        total = int(self._videos.shape[0])
        return total if self.limit is None else min(total, self.limit)

    @property
    def frames(self) -> int:
        return int(self._videos.shape[1])

    def batches(self, videos_per_batch: int) -> Iterator[torch.Tensor]:
        """uint8 tensors of shape B×T×3×H×W."""
        for start in range(0, self.n, videos_per_batch):
            block = torch.from_numpy(self._videos[start:min(start + videos_per_batch, self.n)].copy())
            yield block.permute(0, 1, 4, 2, 3).contiguous()


class GeneratedPerturbationPart:
    """One perturbation of a generated -P suite: videos made on demand, chunk by chunk, on `device`."""

    def __init__(self, clean: ImageSet, perturbation: str, difficulty: int, seed: int, device: torch.device,
                 limit: int | None = None):
        self.clean, self.perturbation, self.difficulty = clean, perturbation, difficulty
        self.seed, self.device = seed, device
        self.n = len(clean) if limit is None else min(len(clean), limit)
        self.frames = get_perturbation(perturbation).frames
        self._cache: tuple[int, torch.Tensor] | None = None

    def chunk(self, index: int) -> torch.Tensor:
        if self._cache is None or self._cache[0] != index:
            self._cache = (index, generate_p_chunk(self.clean, self.perturbation, self.difficulty, self.seed,
                                                   self.device, index))
        return self._cache[1]

    def videos(self, start: int, stop: int) -> torch.Tensor:
        """uint8 B×T×3×H×W videos start..stop (test-set order)."""
        return slice_chunks(self.chunk, P_GENERATION_CHUNK, start, stop)

    def batches(self, videos_per_batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.n, videos_per_batch):
            yield self.videos(start, min(start + videos_per_batch, self.n))


@dataclass
class PerturbationSuite:
    spec: SuiteSpec
    directory: Path | None
    parts: list[PerturbationPart | GeneratedPerturbationPart]
    source: str = "files"        # 'files' | 'generated'
    seed: int | None = None      # generator seed for 'generated'; None for files


def noise_level(perturbation: str, difficulty: int) -> int:
    """The generation level of a sequence: the difficulty for noise (it picks the noise strength and the
    file), 1 for the others (for them the difficulty is only the evaluation's frame step)."""
    return difficulty if get_perturbation(perturbation).noise else 1


def p_file_name(perturbation: str, difficulty: int = 1) -> str:
    """`<perturbation>.npy`, or `<perturbation>_<d>.npy` for noise of difficulty d > 1 (ImageNet-P naming)."""
    if difficulty > 1 and "noise" in perturbation:
        return f"{perturbation}_{difficulty}.npy"
    return f"{perturbation}.npy"


def generate_p_chunk(clean: ImageSet, perturbation: str, difficulty: int, seed: int, device: torch.device,
                     chunk_index: int) -> torch.Tensor:
    """Videos of chunk `chunk_index` (P_GENERATION_CHUNK test images in order), uint8 B×T×3×32×32, seeded
    by (seed, perturbation, noise level, chunk)."""
    start = chunk_index * P_GENERATION_CHUNK
    stop = min(start + P_GENERATION_CHUNK, len(clean))
    images = clean.images(slice(start, stop)).to(device)
    level = noise_level(perturbation, difficulty)
    generator = (make_generator(device, "corrbench-p", seed, perturbation, level, chunk_index)
                 if get_perturbation(perturbation).stochastic else None)
    return generate_sequences(images, perturbation, generator, difficulty=level)


def _check_options(difficulty: int, limit: int | None) -> None:
    if difficulty < 1:
        raise InvalidValueError(f"difficulty must be at least 1, got {difficulty}")
    if limit is not None:
        check_range("limit", limit, low=1)


def _check_frame_size(dataset: str) -> None:
    size = dataset_info(dataset).image_size
    if size != FRAME_SIZE:
        raise UserError(f"-P sequences are generated at {FRAME_SIZE} px (CIFAR scale); {dataset} has "
                        f"{size}-px images")


def _generated_perturbations(perturbations: Sequence[str] | None, subset: str, difficulty: int) -> list[str]:
    chosen = list(perturbations) if perturbations else list_perturbations(subset)
    noise = [p for p in chosen if get_perturbation(p).noise]   # get_perturbation: UnknownNameError for a typo
    if noise and difficulty not in NOISE_DIFFICULTIES:
        raise InvalidValueError(f"noise sequences ({', '.join(noise)}) have difficulties 1, 2 and 3, got "
                                f"{difficulty}; choose one of those or leave the noise sequences out")
    return chosen


def open_perturbation_suite(name: str, data_root: Path, *, source: str = "auto", seed: int = 0,
                            perturbations: Sequence[str] | None = None, difficulty: int = 1,
                            device: torch.device | str = "cpu", limit: int | None = None) -> PerturbationSuite:
    """Resolve a -P suite: official files (`<perturbation>.npy`, noise of difficulty d > 1 as
    `<name>_<d>.npy`) or generated from the clean test split (`source`: auto, files, generated).

    Without `perturbations`, files give the test perturbations present in the folder and generation gives
    all ten test perturbations. `limit` keeps the first N videos of each.
    """
    spec = get_suite_spec(name)
    if spec.kind != "p":
        raise UserError(f"{name} is a corruption (-C) suite; use `corrbench eval --suite {name}`")
    _check_options(difficulty, limit)
    chosen_source, directory = choose_source(spec, source, data_root)
    if chosen_source == "generated":
        _check_frame_size(spec.dataset)
        chosen = _generated_perturbations(perturbations, "test", difficulty)
        clean = load_dataset(spec.dataset, "test", data_root)
        torch_device = torch.device(device)
        parts = [GeneratedPerturbationPart(clean, p, difficulty, seed, torch_device, limit) for p in chosen]
        return PerturbationSuite(spec, None, parts, source="generated", seed=seed)
    assert directory is not None
    if perturbations:
        for perturbation in perturbations:
            if perturbation not in P_PERTURBATIONS:
                raise UnknownNameError("perturbation", perturbation, P_PERTURBATIONS)
        chosen = list(perturbations)
    else:
        chosen = [p for p in P_TEST_PERTURBATIONS if (directory / p_file_name(p, difficulty)).is_file()]
        if not chosen:
            raise LayoutError(f"{directory} has none of the -P files "
                              f"({', '.join(p_file_name(p, difficulty) for p in P_TEST_PERTURBATIONS)})")
    parts = []
    for perturbation in chosen:
        path = directory / p_file_name(perturbation, difficulty)
        if not path.is_file():
            raise MissingDataError(f"{path} not found; {spec.how_to_get}, or use --source generated")
        parts.append(PerturbationPart(perturbation, difficulty, path, limit))
    return PerturbationSuite(spec, directory, parts, source="files", seed=None)


def default_p_folder(dataset: str, data_root: Path) -> Path:
    """Where the -P suite of `dataset` is looked for: <data root>/<its suite folder>."""
    for _, spec in SUITES.items():
        if spec.kind == "p" and spec.dataset == dataset and spec.folder:
            return data_root / spec.folder
    raise UserError(f"no -P suite folder is registered for {dataset}; pass --out")


def write_p_suite(dataset: str, out: Path | str, *, data_root: Path, perturbations: Sequence[str] | None = None,
                  difficulty: int = 1, seed: int = 0, limit: int | None = None, device: torch.device | str = "cpu",
                  overwrite: bool = False, progress: ProgressLike | None = None) -> list[Path]:
    """Write generated -P files `<out>/<perturbation>.npy`, (N, T, 32, 32, 3) uint8 (CIFAR-10-P layout),
    from `dataset`'s test split: the bytes `open_perturbation_suite(..., source='generated')` evaluates.

    Without `perturbations`, all fourteen (test and validation). Each file is streamed chunk by chunk
    into a memory-mapped temporary file and renamed into place when complete; existing files are replaced
    only with `overwrite`.
    """
    progress = progress or null_progress()
    _check_options(difficulty, limit)
    _check_frame_size(dataset)
    chosen = _generated_perturbations(perturbations, "all", difficulty)
    out = Path(out)
    paths = {p: out / p_file_name(p, noise_level(p, difficulty)) for p in chosen}
    existing = [path for path in paths.values() if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]} already exists{more}; pass --overwrite to replace it")
    clean = load_dataset(dataset, "test", data_root)
    torch_device = torch.device(device)
    count = len(clean) if limit is None else min(len(clean), limit)
    written = []
    task = progress.add_task("videos", total=count)
    for perturbation, path in paths.items():
        frames = get_perturbation(perturbation).frames
        level = noise_level(perturbation, difficulty)
        progress.reset(task, total=count, description=perturbation)
        with atomic_path(path) as temp:
            array = np.lib.format.open_memmap(temp, mode="w+", dtype=np.uint8,
                                              shape=(count, frames, FRAME_SIZE, FRAME_SIZE, 3))
            for index in range((count + P_GENERATION_CHUNK - 1) // P_GENERATION_CHUNK):
                start = index * P_GENERATION_CHUNK
                videos = generate_p_chunk(clean, perturbation, level, seed, torch_device, index)
                take = min(count - start, videos.shape[0])
                array[start:start + take] = videos[:take].permute(0, 1, 3, 4, 2).cpu().numpy()
                progress.advance(task, take)
            array.flush()
            del array
        written.append(path)
    return written
