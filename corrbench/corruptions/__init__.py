"""Batched, seeded image corruptions (CIFAR-10-C / Tiny-ImageNet-C / ImageNet-C style).

`corrupt(images, name, severity, scale=..., generator=...)` is the front door. Kernels live in one
module per family (noise, blur, weather, digital); each severity table sits above its kernel.
Faithful to the reference generators as written down in the corruptions spec (Parts 0 and A).
"""
from corrbench.corruptions.names import (
    ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTION_FAMILY, EXTRA_CORRUPTIONS, FAMILIES, SCALE_SIZE, SCALES,
)
from corrbench.corruptions.checks import MIN_SIDE, scale_family_for, scale_family_note, scale_for_size
from corrbench.corruptions.registry import (
    CORRUPTIONS, Corruption, corrupt, get_corruption, list_corruptions, register, severity_parameters,
)
from corrbench._discovery import import_submodules

# Every module of this package is imported so that its @register-ed kernels enter the registry.
import_submodules(__name__, __path__)

__all__ = [
    "SCALES", "SCALE_SIZE", "BENCHMARK_CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "FAMILIES",
    "CORRUPTION_FAMILY", "Corruption", "CORRUPTIONS", "register", "get_corruption", "list_corruptions",
    "scale_for_size", "scale_family_for", "scale_family_note", "MIN_SIDE", "corrupt", "severity_parameters",
]
