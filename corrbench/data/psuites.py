"""-P suites: perturbation sequences in the official CIFAR-10-P layout, `(N, T, 32, 32, 3)` uint8 per
perturbation file, streamed video batch by video batch (corruptions-spec.md Part B)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch

from corrbench.data.readers import open_p_file
from corrbench.data.suites import SuiteSpec, get_suite_spec
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError, UnknownNameError, UserError

# The perturbations cifar-p-eval.py evaluates (corruptions-spec.md B.3); the others are validation ones.
P_TEST_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter", "brightness",
                        "translate", "rotate", "tilt", "scale")
P_VALIDATION_PERTURBATIONS = ("speckle_noise", "gaussian_blur", "snow", "shear")


@dataclass
class PerturbationPart:
    """One perturbation file of a -P suite: videos (N, T, H, W, 3) uint8, streamed in batches of videos."""

    perturbation: str
    difficulty: int
    path: Path

    def __post_init__(self) -> None:
        self._videos = open_p_file(self.path)

    @property
    def n(self) -> int:
        return int(self._videos.shape[0])

    @property
    def frames(self) -> int:
        return int(self._videos.shape[1])

    def batches(self, videos_per_batch: int) -> Iterator[torch.Tensor]:
        """uint8 tensors of shape B×T×3×H×W."""
        for start in range(0, self.n, videos_per_batch):
            block = torch.from_numpy(self._videos[start:start + videos_per_batch].copy())
            yield block.permute(0, 1, 4, 2, 3).contiguous()


@dataclass
class PerturbationSuite:
    spec: SuiteSpec
    directory: Path
    parts: list[PerturbationPart]


def open_perturbation_suite(name: str, data_root: Path, *, perturbations: Sequence[str] | None = None,
                            difficulty: int = 1) -> PerturbationSuite:
    """Resolve a -P suite from official files (`<perturbation>.npy`, noise difficulty d>1 as `<name>_<d>.npy`)."""
    spec = get_suite_spec(name)
    if spec.kind != "p":
        raise UserError(f"{name} is a corruption (-C) suite; use `corrbench eval --suite {name}`")
    if difficulty < 1:
        raise InvalidValueError(f"difficulty must be at least 1, got {difficulty}")
    directory = data_root / spec.folder
    if not directory.is_dir():
        raise MissingDataError(f"{name} files not found at {directory}; {spec.how_to_get}, or pass --data-root")
    known = P_TEST_PERTURBATIONS + P_VALIDATION_PERTURBATIONS
    if perturbations:
        for perturbation in perturbations:
            if perturbation not in known:
                raise UnknownNameError("perturbation", perturbation, known)
        chosen = list(perturbations)
    else:
        chosen = [p for p in P_TEST_PERTURBATIONS if _p_path(directory, p, difficulty).is_file()]
        if not chosen:
            raise LayoutError(f"{directory} has none of the -P files ({', '.join(p + '.npy' for p in P_TEST_PERTURBATIONS)})")
    parts = []
    for perturbation in chosen:
        path = _p_path(directory, perturbation, difficulty)
        if not path.is_file():
            raise MissingDataError(f"{path} not found; {spec.how_to_get}")
        parts.append(PerturbationPart(perturbation, difficulty, path))
    return PerturbationSuite(spec, directory, parts)


def _p_path(directory: Path, perturbation: str, difficulty: int) -> Path:
    # Noise sequences of difficulty 2/3 are separate files; other perturbations use the chain step instead.
    if difficulty > 1 and "noise" in perturbation:
        return directory / f"{perturbation}_{difficulty}.npy"
    return directory / f"{perturbation}.npy"
