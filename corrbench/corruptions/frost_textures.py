"""The frost textures (spec A.9): read from the installed `imagecorruptions` package, rescaled per scale.

The six textures ship with the `imagecorruptions` wheel (a corrbench dependency) as package data;
they are found through the package's file list, never by importing it (its import pulls in heavy
libraries). The reference reads them with `cv2.imread` (BGR, alpha dropped) and flips to RGB; Pillow's
decode is byte-identical for these six files. Rescaled textures are cached per process and device.
"""
from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from corrbench.errors import MissingDataError

FROST_FILES: tuple[str, ...] = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
"""The reference's texture list, in its order."""

USED_TEXTURES = 5
"""The reference draws `randint(5)`: only the first five textures are ever used (frost6 never)."""

TEXTURE_RESCALE: dict[str, float | None] = {"cifar": 0.2, "tiny": 0.3, "imagenet": None}
"""`cv2.resize(F, (0, 0), fx=f, fy=f)` factor per scale (INTER_LINEAR); None keeps the original size."""

_PACKAGE = "imagecorruptions"
_RESIZE_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights in 1/2048


@functools.lru_cache(maxsize=None)
def frost_texture_path(index: int) -> Path:
    """Path of texture `index` (0..5) inside the installed imagecorruptions package."""
    name = FROST_FILES[index]
    hint = f"reinstall it with `pip install --force-reinstall {_PACKAGE}`"
    try:
        files = importlib.metadata.files(_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise MissingDataError(f"frost needs the '{_PACKAGE}' package, which ships its textures; "
                               f"install it with `pip install {_PACKAGE}`") from None
    for entry in files:
        if entry.name == name and entry.parent.name == "frost":
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise MissingDataError(f"frost texture {name} is missing from the installed '{_PACKAGE}' package; {hint}")


@functools.lru_cache(maxsize=None)
def frost_texture(index: int) -> np.ndarray:
    """Texture `index` as uint8 H×W×3 RGB (read-only), as `cv2.imread(path)[..., ::-1]` gives it."""
    with Image.open(frost_texture_path(index)) as image:
        rgb = np.asarray(image.convert("RGB"))  # drops the PNGs' alpha, as IMREAD_COLOR does
    rgb = np.ascontiguousarray(rgb)
    rgb.setflags(write=False)
    return rgb


def _linear_taps(in_size: int, factor: float, clamp_fraction: bool) -> tuple[np.ndarray, ...]:
    """OpenCV's INTER_LINEAR source indices and 11-bit weights along one axis for scale `factor`.

    Source position `(d + 0.5)/factor − 0.5` in float32, split into floor and fraction, weights
    `round(2048·(1 − f))` and `round(2048·f)` (round half to even); indices are clamped to the
    image. Along x, resize.cpp also zeroes the fraction at the edges; along y it keeps it.
    """
    out_size = int(np.rint(in_size * factor))  # saturate_cast<int>: round half to even
    position = ((np.arange(out_size) + 0.5) * (1.0 / factor) - 0.5).astype(np.float32)
    left = np.floor(position).astype(np.int64)
    frac = (position - left.astype(np.float32)).astype(np.float32)
    if clamp_fraction:
        frac[(left < 0) | (left >= in_size - 1)] = 0
    one = np.float32(1 << _RESIZE_BITS)
    w0 = np.rint((np.float32(1) - frac) * one).astype(np.int64)
    w1 = np.rint(frac * one).astype(np.int64)
    return np.clip(left, 0, in_size - 1), np.clip(left + 1, 0, in_size - 1), w0, w1


def opencv_linear_resize(image: np.ndarray, factor: float) -> np.ndarray:
    """`cv2.resize(image, (0, 0), fx=factor, fy=factor)` (INTER_LINEAR) of a uint8 H×W×C image, in integers.

    Horizontal pass: Σ p·w (exact ints). Vertical pass, as OpenCV's SIMD kernel
    (VResizeLinearVec_32s8u): `(((S0 >> 4)·b0 >> 16) + ((S1 >> 4)·b1 >> 16) + 2) >> 2`, saturated.
    Byte-identical to the installed OpenCV on the frost textures; OpenCV 4.x builds may round the
    last ≤ 4 values of a row with their scalar formula instead (rare ±1 at the right edge).
    """
    height, width = image.shape[:2]
    x0, x1, a0, a1 = _linear_taps(width, factor, clamp_fraction=True)
    y0, y1, b0, b1 = _linear_taps(height, factor, clamp_fraction=False)
    pixels = image.astype(np.int64)
    rows = pixels[:, x0] * a0[None, :, None] + pixels[:, x1] * a1[None, :, None]
    top, bottom = rows[y0] >> 4, rows[y1] >> 4
    mixed = ((top * b0[:, None, None]) >> 16) + ((bottom * b1[:, None, None]) >> 16)
    return np.clip((mixed + 2) >> 2, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def scaled_frost_texture(index: int, scale: str) -> np.ndarray:
    """Texture `index` rescaled for `scale` (spec A.9 step 3), uint8 H′×W′×3 RGB, read-only.

    CIFAR's ×0.2 is exact subsampling `F[2::5, 2::5]`; Tiny's ×0.3 is real bilinear; ImageNet keeps
    the original. The reference resizes the BGR image; the resize is per channel, so RGB is the same.
    """
    factor = TEXTURE_RESCALE[scale]
    texture = frost_texture(index)
    scaled = texture if factor is None else opencv_linear_resize(texture, factor)
    scaled = np.ascontiguousarray(scaled)
    scaled.setflags(write=False)
    return scaled


def texture_sizes(scale: str) -> tuple[tuple[int, int], ...]:
    """(H′, W′) of the five used textures at `scale`."""
    return tuple(scaled_frost_texture(i, scale).shape[:2] for i in range(USED_TEXTURES))


@functools.lru_cache(maxsize=None)
def _texture_stack(scale: str, device: str) -> torch.Tensor:
    height = max(h for h, _ in texture_sizes(scale))
    width = max(w for _, w in texture_sizes(scale))
    stack = torch.zeros(USED_TEXTURES, 3, height, width, dtype=torch.uint8)
    for index in range(USED_TEXTURES):
        texture = torch.from_numpy(scaled_frost_texture(index, scale).copy()).permute(2, 0, 1)
        stack[index, :, : texture.shape[1], : texture.shape[2]] = texture
    return stack.to(device)


def texture_stack(scale: str, device: torch.device) -> torch.Tensor:
    """The five used textures at `scale`, uint8 5×3×Hmax×Wmax on `device` (zero-padded; cached)."""
    return _texture_stack(scale, str(torch.device(device)))
