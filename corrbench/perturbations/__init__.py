"""-P perturbation sequences (CIFAR-10-P style), as `make_cifar_p.py` builds them (corruptions-spec.md B.2).

`generate_sequences(images, name, generator)` turns uint8 images B×3×32×32 into uint8 videos
B×T×3×32×32. One module per kind of sequence (noise, geometric, tilt, blur, brightness, weather); each
registers its generators with `@register_perturbation`.
"""
from corrbench.perturbations.registry import (
    FRAME_SIZE, NOISE_DIFFICULTIES, P_PERTURBATIONS, P_TEST_PERTURBATIONS, P_VALIDATION_PERTURBATIONS,
    PERTURBATIONS, Perturbation, generate_sequences, get_perturbation, list_perturbations, register_perturbation,
)
from corrbench._discovery import import_submodules

# Every module of this package is imported so that its @register_perturbation-ed generators enter the registry.
import_submodules(__name__, __path__)

__all__ = [
    "FRAME_SIZE", "NOISE_DIFFICULTIES", "P_PERTURBATIONS", "P_TEST_PERTURBATIONS", "P_VALIDATION_PERTURBATIONS",
    "PERTURBATIONS", "Perturbation", "generate_sequences", "get_perturbation", "list_perturbations",
    "register_perturbation",
]
