"""The corruption registry: one decorator to register, one lookup, and `corrupt`, the front door."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from corrbench.errors import UnknownNameError
from corrbench.registry import Registry
from corrbench.corruptions.chunks import map_chunks
from corrbench.corruptions.checks import (
    check_generator, check_image_layout, check_images, check_scale, check_severity, scale_family_for,
)
from corrbench.corruptions.names import (
    ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTION_FAMILY, EXTRA_CORRUPTIONS, FAMILIES, SCALES, SUBSETS,
)


@dataclass(frozen=True)
class Corruption:
    """One corruption: its kernel `fn` plus what a reader or a listing needs to know about it.

    `fn(images, severity, *, scale)` for deterministic corruptions and
    `fn(images, severity, *, scale, generator, draws)` for stochastic ones; `fn` assumes checked input.
    `table[scale]` holds the five per-severity constants, `parameters` says what they are and
    `spec` names the section of the corruptions spec that defines the corruption.
    """

    name: str
    family: str
    stochastic: bool
    fn: Callable[..., torch.Tensor]
    table: Mapping[str, tuple]
    parameters: str
    spec: str

    def __call__(self, images: torch.Tensor, severity: int, *, scale: str,
                 generator: torch.Generator | None = None, draws: Any = None) -> torch.Tensor:
        """Corrupt uint8 images B×3×H×W at `severity` 1..5 with the constants of `scale`.

        Stochastic corruptions draw from `generator` (a CPU one gives the same bytes on every device;
        one on the images' device draws there) unless `draws` are given;
        deterministic ones ignore `generator`. Returns uint8 of the same shape on the same device.
        """
        severity = check_severity(severity)
        check_images(images, check_scale(scale))
        if images.shape[0] == 0:
            return images.clone()
        if not self.stochastic:
            if draws is not None:
                raise ValueError(f"{self.name} is deterministic and takes no draws")
            if getattr(self.fn, "whole_batch", False):
                return self.fn(images, severity, scale=scale)
            # each image on its own: cache-sized chunks on the CPU, one call elsewhere (same bytes)
            return map_chunks(lambda part: self.fn(part, severity, scale=scale), images)
        if draws is None:
            check_generator(generator, images, self.name)
        return self.fn(images, severity, scale=scale, generator=generator, draws=draws)


CORRUPTIONS: Registry[Corruption] = Registry("corruption")
"""The implemented corruptions by name."""


def register(name: str, *, stochastic: bool, table: Mapping[str, tuple], parameters: str,
             spec: str) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Decorator: register the decorated kernel as corruption `name`; the kernel itself is returned."""
    if name not in CORRUPTION_FAMILY:
        raise ValueError(f"'{name}' is not one of the 19 corruption names")
    if set(table) != set(SCALES) or any(len(table[s]) != 5 for s in SCALES):
        raise ValueError(f"{name}: the severity table needs five entries for each of {SCALES}")

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        CORRUPTIONS.register(name, Corruption(
            name=name, family=CORRUPTION_FAMILY[name], stochastic=stochastic, fn=fn,
            table={s: tuple(table[s]) for s in SCALES}, parameters=parameters, spec=spec))
        return fn
    return wrap


def get_corruption(name: str) -> Corruption:
    """The registered corruption `name`; UnknownNameError (with the valid names) if there is none."""
    return CORRUPTIONS.get(name)


def list_corruptions(subset: str = "all") -> list[str]:
    """Implemented corruptions of `subset` (all, benchmark, extra, noise, blur, weather, digital), in
    the order of ALL_CORRUPTIONS."""
    if subset not in SUBSETS:
        raise UnknownNameError("corruption subset", str(subset), SUBSETS)
    if subset == "benchmark":
        chosen = BENCHMARK_CORRUPTIONS
    elif subset == "extra":
        chosen = EXTRA_CORRUPTIONS
    elif subset in FAMILIES:
        chosen = tuple(n for n in ALL_CORRUPTIONS if CORRUPTION_FAMILY[n] == subset)
    else:
        chosen = ALL_CORRUPTIONS
    return [n for n in chosen if n in CORRUPTIONS]


def severity_parameters(corruption: str, scale: str) -> tuple:
    """The five per-severity constants of `corruption` at `scale` (severity 1 first)."""
    return get_corruption(corruption).table[check_scale(scale)]


def corrupt(images: torch.Tensor, corruption: str, severity: int, *, scale: str | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply `corruption` at `severity` (1..5) to uint8 images B×3×H×W on any device.

    `scale` picks the constants (cifar, tiny, imagenet); None takes `scale_family_for(H, W)` (the family
    nearest to the shorter side; exact at 32, 64 and 224 px). Any H×W ≥ 16 px works.
    Stochastic corruptions need `generator`: each image gets independent draws. A CPU generator gives the
    same bytes for the same seed on every device (CPU, CUDA); a generator on the images' device draws
    there, with that device's own random stream.
    Returns uint8 of the same shape on the same device.
    """
    chosen = get_corruption(corruption)
    if scale is None:
        check_image_layout(images)
        scale = scale_family_for(images.shape[2], images.shape[3])
    return chosen(images, severity, scale=scale, generator=generator)
