"""Names of the corruptions, their families and the three scale families (spec Part 0, anchors §2.2)."""
from __future__ import annotations

SCALES: tuple[str, ...] = ("cifar", "tiny", "imagenet")
"""Scale families: each picks its own severity constants (spec D.6), not the image size."""

SCALE_SIZE: dict[str, int] = {"cifar": 32, "tiny": 64, "imagenet": 224}
"""Image side of each scale family: CIFAR-10/100-C, Tiny-ImageNet-C, ImageNet-C."""

BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
"""The 15 benchmark corruptions in Hendrycks' order (anchors §2.2)."""

EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""Hendrycks' four validation corruptions (anchors §2.2)."""

ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

FAMILIES: tuple[str, ...] = ("noise", "blur", "weather", "digital")

CORRUPTION_FAMILY: dict[str, str] = {
    "gaussian_noise": "noise", "shot_noise": "noise", "impulse_noise": "noise", "speckle_noise": "noise",
    "defocus_blur": "blur", "glass_blur": "blur", "motion_blur": "blur", "zoom_blur": "blur",
    "gaussian_blur": "blur",
    "snow": "weather", "frost": "weather", "fog": "weather", "brightness": "weather", "spatter": "weather",
    "contrast": "digital", "elastic_transform": "digital", "pixelate": "digital",
    "jpeg_compression": "digital", "saturate": "digital",
}
"""Family of each corruption: Hendrycks' four groups; the extras join the group they resemble."""

SUBSETS: tuple[str, ...] = ("all", "benchmark", "extra") + FAMILIES
"""Valid `subset` arguments of `list_corruptions`."""
