"""One split of a dataset (`ImageSet`) and the image decoding it uses.

Two kinds of set share one interface:
- `TensorImageSet`: every image in memory as one uint8 N×3×H×W tensor (CIFAR-scale data, .npy data).
- `LazyImageSet`: a list of image files decoded on demand, a batch at a time, by a thread pool (PIL
  releases the GIL while it decodes and resizes). Used for folder datasets (Tiny ImageNet, ImageNet,
  ImageNet-C style folders, `folder:PATH`), which would not fit in memory or would take minutes to decode.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from corrbench.errors import LayoutError

# File suffixes read as images in folder layouts (the set torchvision's ImageFolder accepts).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageSet(ABC):
    """One split: `labels` (int64 [N], in memory) and uint8 RGB images [B,3,H,W] fetched by index.

    `images(index)` takes a slice or an integer index tensor (bool masks are allowed too) and returns a
    CPU tensor; move it to the device yourself. Images are RGB, C = 3, H×W = `image_hw`
    (`image_size` = the shorter side: H = W = `image_size` for square images).
    """

    labels: torch.Tensor
    classes: tuple[str, ...]
    image_size: int
    image_hw: tuple[int, int]
    in_memory: bool

    def __len__(self) -> int:
        return int(self.labels.numel())

    @abstractmethod
    def images(self, index: slice | torch.Tensor) -> torch.Tensor:
        """uint8 [B,3,H,W] images at `index` (a slice or an integer/bool index tensor)."""

    @abstractmethod
    def tensor(self) -> torch.Tensor:
        """All images as one uint8 [N,3,H,W] tensor."""

    def _positions(self, index: slice | torch.Tensor | Sequence[int]) -> torch.Tensor:
        """`index` as a 1-d int64 CPU tensor of positions in [0, N)."""
        n = len(self)
        if isinstance(index, slice):
            return torch.arange(*index.indices(n))
        positions = torch.as_tensor(index).to("cpu")
        if positions.dtype == torch.bool:
            positions = positions.nonzero().flatten()
        positions = positions.flatten().long()
        if positions.numel() and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"index out of range for a set of {n} images")
        return torch.where(positions < 0, positions + n, positions)


class TensorImageSet(ImageSet):
    """All images in memory. `images(slice)` and `tensor()` return views of the stored tensor: treat
    them as read-only (copy before modifying in place)."""

    in_memory = True

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str]):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N,3,H,W], got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        self._images = images
        self.labels = labels.long()
        self.classes = tuple(classes)
        self.image_hw = (int(images.shape[-2]), int(images.shape[-1]))
        self.image_size = min(self.image_hw)

    def images(self, index: slice | torch.Tensor) -> torch.Tensor:
        if isinstance(index, slice):
            return self._images[index]
        return self._images[self._positions(index)]

    def tensor(self) -> torch.Tensor:
        return self._images


def default_workers() -> int:
    """Decoding threads for lazy sets: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


class LazyImageSet(ImageSet):
    """Image files decoded on demand by `decode` (path → uint8 H×W×3 array).

    Every decoded image must be `image_size`×`image_size`×3 (or H×W×3 for `image_size` = (H, W)), else
    `LayoutError` naming the file.
    `tensor()` decodes the whole set: N·3·H·W bytes of memory (6.5 GiB for ImageNet's 50,000 val
    images at 224 px) and roughly N decode times — prefer `images(batch)` in a loop.
    """

    in_memory = False

    def __init__(self, paths: Sequence[Path], labels: torch.Tensor, classes: Sequence[str],
                 image_size: int | tuple[int, int], decode: Callable[[Path], np.ndarray], *,
                 workers: int | None = None):
        if labels.shape != (len(paths),):
            raise ValueError(f"{len(paths)} paths but labels of shape {tuple(labels.shape)}")
        self.paths = list(paths)
        self.labels = labels.long()
        self.classes = tuple(classes)
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.image_hw = (int(height), int(width))
        self.image_size = min(self.image_hw)
        self._decode = decode
        self._workers = workers or default_workers()

    def _decode_checked(self, path: Path) -> np.ndarray:
        array = self._decode(path)
        height, width = self.image_hw
        if array.shape != (height, width, 3):
            raise LayoutError(f"{path} decodes to {array.shape[1]}×{array.shape[0]} pixels but this set "
                              f"serves {width}×{height} images; resize it or move it out of the folder")
        return array

    def images(self, index: slice | torch.Tensor) -> torch.Tensor:
        paths = [self.paths[i] for i in self._positions(index).tolist()]
        out = np.empty((len(paths), *self.image_hw, 3), dtype=np.uint8)
        if len(paths) <= 2 or self._workers == 1:
            arrays = map(self._decode_checked, paths)
        else:
            with ThreadPoolExecutor(min(self._workers, len(paths))) as pool:
                arrays = list(pool.map(self._decode_checked, paths))
        for row, array in enumerate(arrays):
            out[row] = array
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def tensor(self) -> torch.Tensor:
        return self.images(slice(None))


def decode_rgb(path: Path) -> np.ndarray:
    """The file as uint8 H×W×3 RGB (grey and palette images converted by PIL, as ImageFolder does)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:  # PIL.UnidentifiedImageError is an OSError
        raise LayoutError(f"{path} is not a readable image ({error}); remove or replace it") from None


def resize_center_crop(image: Image.Image, resize: int = 256, crop: int = 224) -> Image.Image:
    """ImageNet evaluation preprocessing: shorter side → `resize` (PIL bilinear; the longer side keeps the
    aspect ratio, truncated to an int), then the central `crop`×`crop` window.

    Same arithmetic as torchvision `Resize(resize)` → `CenterCrop(crop)` on PIL images, which is what
    ImageNet-C was generated with (hendrycks/robustness `make_imagenet_c.py`).
    """
    width, height = image.size
    if width <= height:
        new_width, new_height = resize, int(resize * height / width)
    else:
        new_width, new_height = int(resize * width / height), resize
    if (new_width, new_height) != (width, height):
        image = image.resize((new_width, new_height), Image.BILINEAR)
    top = int(round((new_height - crop) / 2.0))
    left = int(round((new_width - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def decode_resize_center_crop(path: Path) -> np.ndarray:
    """The file as uint8 224×224×3 RGB after `resize_center_crop` (Resize(256) → CenterCrop(224))."""
    try:
        with Image.open(path) as image:
            return np.asarray(resize_center_crop(image.convert("RGB")))
    except OSError as error:
        raise LayoutError(f"{path} is not a readable image ({error}); remove or replace it") from None


def grey28_to_rgb32(digits: torch.Tensor) -> torch.Tensor:
    """uint8 [N,28,28] grey digits → uint8 [N,3,32,32]: 2 zero pixels on every side (exact, no
    interpolation) and the grey value copied to R, G and B, so CIFAR-scale corruptions apply unchanged."""
    if digits.dtype != torch.uint8 or digits.shape[1:] != (28, 28):
        raise ValueError(f"expected uint8 [N,28,28] digits, got {digits.dtype} {tuple(digits.shape)}")
    out = torch.zeros((digits.shape[0], 3, 32, 32), dtype=torch.uint8)
    out[:, :, 2:30, 2:30] = digits[:, None]
    return out
