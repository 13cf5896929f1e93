"""Generated -C data: fixed, seeded chunks of corrupted test images, and the JPEG step of the published
Tiny-ImageNet-C / ImageNet-C sets.

Generated data is produced in fixed chunks of GENERATION_CHUNK images whose generator seeds derive
from (seed, corruption, severity, chunk), so the bytes do not depend on the evaluation batch size —
`corrbench data make-c` (corrbench.data.make_c) writes exactly what `eval --source generated`
(corrbench.data.suites) sees for the same seed. Both import this module; it imports neither.
"""
from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch
from PIL import Image

from corrbench.corruptions import corrupt
from corrbench.data.imageset import ImageSet, default_workers
from corrbench.data.suite_base import slice_chunks
from corrbench.device import make_generator

GENERATION_CHUNK = 1000
JPEG_QUALITY = 85
JPEG_SCALES = ("tiny", "imagenet")
"""Scales whose published -C sets are JPEG folders, so whose generated images take the q85 round trip."""
PROVENANCE_FILE = "corrbench-make-c.json"
T, R = TypeVar("T"), TypeVar("R")


def layout_for_scale(scale: str) -> str:
    """'folders' (ImageNet-C style JPEG tree) for the tiny and imagenet scales, else 'npy' (CIFAR-10-C)."""
    return "folders" if scale in JPEG_SCALES else "npy"


# ---------------------------------------------------------------------------------------------------
# The JPEG step of Tiny-ImageNet-C / ImageNet-C: `Image.fromarray(img).save(path.JPEG, quality=85,
# optimize=True)` (spec §0.1). `optimize` changes the Huffman tables only, never the decoded pixels.

def encode_jpeg(image_hwc: np.ndarray) -> bytes:
    """uint8 H×W×3 RGB → the JPEG file bytes of the published -C folders (quality 85, 4:2:0, optimized)."""
    buffer = io.BytesIO()
    Image.fromarray(image_hwc).save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes → uint8 H×W×3 RGB, decoded as `corrbench.data.imageset.decode_rgb` decodes a file."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def parallel_map(function: Callable[[T], R], items: list[T]) -> list[R]:
    # Pillow releases the GIL while it encodes and decodes, so threads scale over the cores.
    if len(items) <= 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(default_workers(), len(items))) as pool:
        return list(pool.map(function, items))


def to_hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def encode_jpeg_batch(images: torch.Tensor) -> list[bytes]:
    """uint8 B×3×H×W (any device) → B JPEG files as `encode_jpeg` writes them."""
    return parallel_map(encode_jpeg, list(to_hwc(images)))


def jpeg_round_trip(images: torch.Tensor) -> torch.Tensor:
    """uint8 B×3×H×W → the images as read back from the JPEG files make-c writes, on the same device."""
    if images.shape[0] == 0:
        return images.clone()
    decoded = parallel_map(decode_jpeg, encode_jpeg_batch(images))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous().to(images.device)


# ---------------------------------------------------------------------------------------------------
# Seeded chunks

def generate_chunk(clean: ImageSet, corruption: str, severity: int, seed: int, scale: str,
                   device: torch.device, chunk_index: int, *, jpeg: bool = True) -> torch.Tensor:
    """Chunk `chunk_index` (GENERATION_CHUNK images, test-set order) of corruption × severity, seeded.

    At the tiny and imagenet scales the chunk is corrupted in pieces of a few dozen images (one generator,
    drawn from in order, so the bytes are still fixed) to bound memory, and — as the published
    Tiny-ImageNet-C / ImageNet-C files were saved as JPEG quality 85 (spec §0.1) — each image then takes
    that JPEG round trip, so it equals what `corrbench data make-c` writes, decoded. `jpeg=False` returns
    the images before that step (make-c encodes them itself).
    """
    start = chunk_index * GENERATION_CHUNK
    stop = min(start + GENERATION_CHUNK, len(clean))
    # a CPU generator on every device: the same draws, so the same bytes, on CPU and CUDA (issue 12)
    generator = make_generator(torch.device("cpu"), "corrbench-c", seed, corruption, severity, chunk_index)
    piece = {"tiny": 250, "imagenet": 50}.get(scale, GENERATION_CHUNK)   # ~25-60 MB per float64 temporary
    corrupted = [corrupt(clean.images(slice(first, min(first + piece, stop))).to(device), corruption, severity,
                         scale=scale, generator=generator)
                 for first in range(start, stop, piece)]
    images = corrupted[0] if len(corrupted) == 1 else torch.cat(corrupted)
    return jpeg_round_trip(images) if jpeg and scale in JPEG_SCALES else images


class GeneratedImages:
    """Corrupted images generated on demand, chunk by chunk, with seeds independent of the batch size."""

    def __init__(self, clean: ImageSet, corruption: str, severity: int, seed: int, scale: str,
                 device: torch.device):
        self.clean, self.corruption, self.severity = clean, corruption, severity
        self.seed, self.scale, self.device = seed, scale, device
        self._cache: tuple[int, torch.Tensor] | None = None

    def chunk(self, index: int) -> torch.Tensor:
        if self._cache is not None and self._cache[0] == index:
            return self._cache[1]
        images = generate_chunk(self.clean, self.corruption, self.severity, self.seed, self.scale, self.device, index)
        self._cache = (index, images)
        return images

    def __call__(self, index: slice) -> torch.Tensor:
        return slice_chunks(self.chunk, GENERATION_CHUNK, index.start or 0, index.stop)


def read_provenance(directory: Path) -> dict | None:
    """The make-c recipe of `directory` (`PROVENANCE_FILE`), or None when it was not written by make-c
    (or is unreadable)."""
    path = Path(directory) / PROVENANCE_FILE
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    is_recipe = isinstance(recipe, dict) and str(recipe.get("format", "")).startswith("corrbench-make-c/")
    return recipe if is_recipe else None
