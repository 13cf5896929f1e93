"""Random draws of the stochastic corruptions, kept injectable (spec 0.2, D.4).

Every draw array has the images' layout B×3×H×W: image b's draws are an independent block, and
`draws[b].permute(1, 2, 0)` is the reference's per-image (S, S, 3) array. Draws come only from the
explicit generator, never from the global RNG.

The generator may live on the CPU while the images are on another device: draws are then made on the
CPU and moved over, so one seed gives the same draws, hence the same bytes, on every device (make-c
and the -P/MNIST-C builders use a CPU generator for this reason). A generator on the images' device
works too, with that device's own random stream.
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import working_dtype


# Generated draws are float32, widened to the working dtype: ~5× faster than float64 sampling, the same
# distribution for every purpose here, and injected (reference) draws still enter in full float64.
def standard_normal(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) draws of the images' shape, float32, on the images' device: callers widen them to the
    working dtype chunk by chunk (exact), so a large batch's draws never exist in float64 at once."""
    return torch.randn(images.shape, generator=generator, device=generator.device,
                       dtype=torch.float32).to(device=images.device)


def uniform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """U[0, 1) draws of the images' shape, in the working dtype, on the images' device."""
    return torch.rand(images.shape, generator=generator, device=generator.device,
                      dtype=torch.float32).to(device=images.device, dtype=working_dtype(images.device))


def poisson(rates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson counts of `rates` drawn on the generator's device, returned on the rates' device."""
    return torch.poisson(rates.to(generator.device), generator=generator).to(rates.device)


def take_draws(draws: torch.Tensor, images: torch.Tensor, name: str, what: str) -> torch.Tensor:
    """Injected draws, checked to have the images' shape and moved to their device and working dtype."""
    if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != tuple(images.shape):
        shape = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"{name}: {what} must be a tensor of the images' shape "
                         f"{tuple(images.shape)} (B×3×H×W), got {shape}")
    return draws.to(device=images.device, dtype=working_dtype(images.device))
