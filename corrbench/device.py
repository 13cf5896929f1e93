"""Device choice and the seeding rule shared by training and evaluation."""
from __future__ import annotations

import hashlib

import torch

from corrbench.errors import InvalidValueError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValueError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(f"device '{name}' asked for but CUDA is not available here; use --device cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (seed, epoch, stream, …): independent streams, stable across runs."""
    blob = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def make_generator(device: torch.device, *parts: object) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*parts))
    return generator
