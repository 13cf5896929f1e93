"""The -P perturbation registry: name → sequence generator with its frame count T (corruptions-spec.md B.2).

A generator turns uint8 images B×3×32×32 into uint8 videos B×T×3×32×32, batched over images, with
per-image independent draws from an explicit torch.Generator (stochastic ones), or from injected draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from corrbench.errors import InvalidValueError, LayoutError
from corrbench.registry import Registry

FRAME_SIZE = 32   # the -P sequences are defined at CIFAR scale (make_cifar_p.py)

# The perturbations cifar-p-eval.py evaluates (spec B.3); the others are validation ones.
P_TEST_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter", "brightness",
                        "translate", "rotate", "tilt", "scale")
P_VALIDATION_PERTURBATIONS = ("speckle_noise", "gaussian_blur", "snow", "shear")
P_PERTURBATIONS = P_TEST_PERTURBATIONS + P_VALIDATION_PERTURBATIONS
NOISE_DIFFICULTIES = (1, 2, 3)   # noise strength levels, stored as <name>.npy, <name>_2.npy, <name>_3.npy


@dataclass(frozen=True)
class Perturbation:
    """One -P sequence: `fn` and what a reader or a listing needs to know about it.

    `fn(images)` for deterministic sequences, `fn(images, generator=..., draws=...)` for stochastic ones,
    plus `difficulty=` for the noise ones; `fn` assumes checked input.
    """

    name: str
    frames: int
    stochastic: bool
    clean_first: bool           # frame 0 is the unmodified image
    fn: Callable[..., torch.Tensor]
    schedule: str               # one line: what frame t is
    spec: str = "B.2"

    @property
    def noise(self) -> bool:
        """The reference's rule (`'noise' in name`): noise videos are compared with frame 0, and their
        difficulty picks the noise strength instead of the frame step."""
        return "noise" in self.name

    @property
    def benchmark(self) -> bool:
        return self.name in P_TEST_PERTURBATIONS

    def generate(self, images: torch.Tensor, generator: torch.Generator | None = None, *,
                 difficulty: int = 1, draws: Any = None) -> torch.Tensor:
        """Videos uint8 B×T×3×32×32 of uint8 images B×3×32×32, on the images' device.

        Stochastic sequences draw from `generator` (a CPU one gives the same bytes on every device, one on
        the images' device draws there) unless `draws` are given.
        `difficulty` (1..3) picks the noise strength of noise sequences; other sequences ignore it (for
        them it is the frame step of the evaluation).
        """
        check_frames(images)
        if self.noise and difficulty not in NOISE_DIFFICULTIES:
            raise InvalidValueError(f"noise difficulty must be 1, 2 or 3, got {difficulty}")
        if images.shape[0] == 0:
            return images.new_empty((0, self.frames, *images.shape[1:]))
        if not self.stochastic:
            if draws is not None:
                raise ValueError(f"{self.name} is deterministic and takes no draws")
            return self.fn(images)
        if draws is None:
            if generator is None:
                raise ValueError(f"{self.name} is stochastic: pass a torch.Generator on {images.device} "
                                 f"(or pre-drawn `draws`)")
            if generator.device.type not in ("cpu", images.device.type):  # CPU: same bytes on any device
                raise ValueError(f"{self.name}: the generator is on {generator.device} but the images are on "
                                 f"{images.device}")
        extra = {"difficulty": difficulty} if self.noise else {}
        return self.fn(images, generator=generator, draws=draws, **extra)

    __call__ = generate


PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")


def register_perturbation(name: str, *, frames: int, stochastic: bool, clean_first: bool,
                          schedule: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator: register the decorated generator as perturbation `name`; the function itself is returned."""
    if name not in P_PERTURBATIONS:
        raise ValueError(f"'{name}' is not one of the {len(P_PERTURBATIONS)} -P perturbation names")

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        PERTURBATIONS.register(name, Perturbation(name=name, frames=frames, stochastic=stochastic,
                                                  clean_first=clean_first, fn=fn, schedule=schedule))
        return fn
    return wrap


def get_perturbation(name: str) -> Perturbation:
    """The registered perturbation `name`; UnknownNameError (with the valid names) if there is none."""
    return PERTURBATIONS.get(name)


def list_perturbations(subset: str = "all") -> list[str]:
    """Registered perturbations of `subset` ('all', 'test', 'validation') in the reference's order."""
    chosen = {"all": P_PERTURBATIONS, "test": P_TEST_PERTURBATIONS, "validation": P_VALIDATION_PERTURBATIONS}
    if subset not in chosen:
        raise InvalidValueError(f"perturbation subset must be all, test or validation, got '{subset}'")
    return [n for n in chosen[subset] if n in PERTURBATIONS]


def generate_sequences(images: torch.Tensor, name: str, generator: torch.Generator | None = None, *,
                       difficulty: int = 1, draws: Any = None) -> torch.Tensor:
    """The -P videos of perturbation `name` for uint8 images B×3×32×32: uint8 B×T×3×32×32 on their device."""
    return get_perturbation(name).generate(images, generator, difficulty=difficulty, draws=draws)


def check_frames(images: object) -> None:
    """LayoutError unless `images` is a uint8 tensor B×3×32×32."""
    if not isinstance(images, torch.Tensor):
        raise LayoutError(f"images must be a uint8 torch.Tensor B×3×32×32, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise LayoutError(f"images must be uint8 (0..255), got {images.dtype}; pass the raw uint8 pixels")
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, FRAME_SIZE, FRAME_SIZE):
        raise LayoutError(f"-P sequences are defined on 32×32 RGB images B×3×32×32, got shape "
                          f"{tuple(images.shape)}")


def take_frame_draws(draws: Any, images: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype,
                     name: str, what: str) -> torch.Tensor:
    """Injected draws checked to have `shape`, moved to the images' device and `dtype`."""
    if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != tuple(shape):
        got = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"{name}: {what} must be a tensor of shape {tuple(shape)}, got {got}")
    return draws.to(device=images.device, dtype=dtype)
