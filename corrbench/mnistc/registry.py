"""The MNIST-C corruption registry and its front door `corrupt_digits` (spec Part C).

MNIST-C (Mu & Gilmer 2019, google-research/mnist-c `corruptions.py`) corrupts 28×28 grey digits, each
corruption at ONE fixed severity (the default argument of its reference function). A kernel takes uint8
digits B×28×28 and returns uint8 B×28×28; the reference returns float32 in [0, 255] and the released
data was rounded, `np.round(x).astype(uint8)` (spec C), which `round_to_uint8` reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from corrbench.errors import LayoutError
from corrbench.registry import Registry

SIDE = 28

MNISTC_CORRUPTIONS = (
    "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate", "brightness",
    "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag", "canny_edges",
)
"""The 15 benchmark corruptions (the reference's CORRUPTIONS minus identity), in its order."""


@dataclass(frozen=True)
class DigitCorruption:
    """One MNIST-C corruption: `fn(digits, generator=..., draws=...)` on uint8 B×28×28 (checked input)."""

    name: str
    stochastic: bool
    fn: Callable[..., torch.Tensor]
    parameters: str
    draws: str           # the injectable draws' format ('' when deterministic)


MNISTC: Registry[DigitCorruption] = Registry("MNIST-C corruption")


def register_digit(name: str, *, stochastic: bool, parameters: str, draws: str = ""):
    """Decorator: register the decorated kernel as MNIST-C corruption `name`."""
    if name not in MNISTC_CORRUPTIONS:
        raise ValueError(f"'{name}' is not one of the 15 MNIST-C corruptions")

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        MNISTC.register(name, DigitCorruption(name, stochastic, fn, parameters, draws))
        return fn
    return wrap


def round_to_uint8(y: torch.Tensor) -> torch.Tensor:
    """The reference's end of pipeline: `.astype(float32)` of a value in [0, 255], then
    `np.round(x).astype(uint8)` (round half to even, as torch.round)."""
    return y.to(torch.float32).round_().to(torch.uint8)


def corrupt_digits(digits: torch.Tensor, name: str, *, generator: torch.Generator | None = None,
                   draws: Any = None) -> torch.Tensor:
    """Apply MNIST-C corruption `name` to uint8 digits B×28×28 or B×1×28×28 on any device.

    Stochastic corruptions draw from `generator` (a CPU torch.Generator gives the same bytes on every
    device, one on the digits' device draws there; each digit gets its own draws) unless `draws` are given
    in the kernel's documented format. Returns uint8 in the input's shape on the input's device.
    """
    chosen = MNISTC.get(name)
    if not isinstance(digits, torch.Tensor) or digits.dtype != torch.uint8 or \
            digits.shape[-2:] != (SIDE, SIDE) or digits.ndim not in (3, 4) or \
            (digits.ndim == 4 and digits.shape[1] != 1):
        shape = tuple(digits.shape) if isinstance(digits, torch.Tensor) else type(digits).__name__
        raise LayoutError(f"MNIST-C corruptions take uint8 digits B×28×28 or B×1×28×28, got {shape}; "
                          f"convert the images to grey 28×28 first")
    flat = digits.reshape(-1, SIDE, SIDE)
    if flat.shape[0] == 0:
        return digits.clone()
    if not chosen.stochastic:
        if draws is not None:
            raise ValueError(f"{name} is deterministic and takes no draws")
        out = chosen.fn(flat)
    else:
        if draws is None and (generator is None or
                              torch.device(generator.device).type not in ("cpu", flat.device.type)):
            raise ValueError(f"{name} is random: pass a torch.Generator on the CPU or on {flat.device} (or explicit draws)")
        out = chosen.fn(flat, generator=generator, draws=draws)
    return out.reshape(digits.shape)


def check_draws(draws: Any, shape: tuple[int, ...], name: str, what: str) -> torch.Tensor:
    """An injected draw tensor, checked to have `shape`."""
    if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != tuple(shape):
        got = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"{name}: draws must be {what}, a tensor of shape {tuple(shape)}, got {got}")
    return draws
