"""Digital corruptions: contrast, pixelate, jpeg_compression, saturate (spec A.12, A.14, A.15, A.19).
Deterministic."""
from __future__ import annotations

import functools
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
from PIL import Image

from corrbench.corruptions import jpeg_torch
from corrbench.corruptions.convert import to_unit, to_uint8
from corrbench.corruptions.hsv import hsv_to_rgb_parts, rgb_to_hsv_parts
from corrbench.corruptions.registry import register
from corrbench.corruptions.resample import box_resize

CONTRAST_FACTOR = {
    "cifar": (0.75, 0.5, 0.4, 0.3, 0.15),
    "tiny": (0.4, 0.3, 0.2, 0.1, 0.05),
    "imagenet": (0.4, 0.3, 0.2, 0.1, 0.05),
}


def channel_means(x: torch.Tensor) -> torch.Tensor:
    """`np.mean(x_hwc, axis=(0, 1))` per image and channel, shape B×3×1×1.

    NumPy adds the pixels one after another in row-major order here (the kept channel axis is the
    inner loop), and a running cumsum reproduces that order exactly on the CPU. A parallel scan on
    CUDA adds in another order (a different last bit flips rare truncations), so callers on other
    devices compute the means on the CPU (`contrast` does).
    """
    b, c, h, w = x.shape
    total = torch.cumsum(x.reshape(b, c, h * w), dim=2)[:, :, -1]
    return (total / (h * w)).reshape(b, c, 1, 1)


@register("contrast", stochastic=False, table=CONTRAST_FACTOR,
          parameters="factor c scaling the deviation from each channel's mean", spec="A.12")
def contrast(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.12: m = per-image channel mean of x = u/255; trunc(255·clip((x − m)·c + m, 0, 1))."""
    factor = CONTRAST_FACTOR[scale][severity - 1]
    x = to_unit(images)
    # the CPU's sequential sum on every device: a B×3 result, from the uint8 pixels (a small copy)
    means = channel_means(x if x.device.type == "cpu" else to_unit(images.cpu())).to(x.device)
    return to_uint8((x - means) * factor + means)


PIXELATE_FACTOR = {
    "cifar": (0.95, 0.9, 0.85, 0.75, 0.65),
    "tiny": (0.9, 0.8, 0.7, 0.6, 0.5),
    "imagenet": (0.6, 0.5, 0.4, 0.3, 0.25),
}


@register("pixelate", stochastic=False, table=PIXELATE_FACTOR,
          parameters="downscale factor c: BOX-resize to int(S·c) px and back", spec="A.14")
def pixelate(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.14: Pillow `resize((k, k), BOX)` with k = int(S·c), then `resize((S, S), BOX)`, both
    emulated exactly in integers (G9). H×W images: int(H·c)×int(W·c) and back (as imagecorruptions)."""
    factor = PIXELATE_FACTOR[scale][severity - 1]
    height, width = images.shape[-2:]
    return box_resize(box_resize(images, (int(height * factor), int(width * factor))), (height, width))


JPEG_QUALITY = {
    "cifar": (80, 65, 58, 50, 40),
    "tiny": (65, 58, 50, 40, 25),
    "imagenet": (25, 18, 15, 10, 7),
}


def _jpeg_round_trip(image_hwc: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image_hwc).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def _torchvision_round_trip(images_chw: torch.Tensor, quality: int) -> torch.Tensor:
    """torchvision's batched CPU codec (libjpeg(-turbo), baseline 4:2:0 encode, fancy-upsampling decode)."""
    from torchvision.io import decode_jpeg, encode_jpeg
    return torch.stack(decode_jpeg(encode_jpeg(list(images_chw), quality=quality)))


def _probe_images(quality: int, noise_sides: tuple[int, ...], gradient_side: int,
                  flats: tuple[tuple[int, int, int], ...]) -> list[torch.Tensor]:
    """uint8 3×H×W probes for a codec check: seeded noise squares, a colour gradient (chroma counts) and
    flat (height, width, value) images."""
    generator = torch.Generator().manual_seed(quality)
    ramp = torch.arange(gradient_side, dtype=torch.float64)
    gradient = torch.stack([(ramp[:, None] * a + ramp[None, :] * b) % 256
                            for a, b in ((5, 3), (2, 7), (11, 1))]).to(torch.uint8)
    probes = [torch.randint(0, 256, (3, side, side), generator=generator, dtype=torch.uint8) for side in noise_sides]
    return probes + [gradient] + [torch.full((3, h, w), value, dtype=torch.uint8) for h, w, value in flats]


def _gives_pillows_bytes(round_trip: Callable[[torch.Tensor], torch.Tensor], quality: int,
                         probes: list[torch.Tensor]) -> bool:
    """Whether `round_trip` (uint8 B×3×H×W → same) decodes every probe as Pillow does at `quality`."""
    for probe in probes:
        expected = _jpeg_round_trip(probe.permute(1, 2, 0).contiguous().numpy(), quality)
        if not np.array_equal(round_trip(probe[None])[0].permute(1, 2, 0).numpy(), expected):
            return False
    return True


@functools.lru_cache(maxsize=None)
def torchvision_matches_pillow(quality: int) -> bool:
    """Whether torchvision's codec gives Pillow's bytes at `quality` on probe images (noise, gradients,
    flat, odd sizes). Both bundle libjpeg-turbo with the same defaults; a build that differs shows on
    the probes, and then every image goes through Pillow."""
    try:
        return _gives_pillows_bytes(lambda batch: _torchvision_round_trip(batch, quality), quality,
                                    _probe_images(quality, (8, 17, 32, 64), 40, ((9, 9, 200),)))
    except (ImportError, RuntimeError):  # no torchvision image codec in this build
        return False


@functools.lru_cache(maxsize=None)
def emulation_matches_pillow(quality: int) -> bool:
    """Whether `jpeg_torch`'s emulation gives this Pillow's bytes at `quality` on probe images (noise, colour
    gradients, flat, extremes): it follows the libjpeg-turbo that Pillow bundles; a Pillow built on
    another libjpeg shows on the probes, and then the codecs run instead."""
    return _gives_pillows_bytes(lambda batch: jpeg_torch.jpeg_round_trip(batch, quality), quality,
                                _probe_images(quality, (16, 32), 48, ((16, 32, 255), (32, 16, 0))))


_EMULATION_MAX_PIXELS = 48 * 48
"""CPU images up to this size go through the tensor emulation (2.4× the codec at 32 px, one thread; even
at 64 px, slower at 224 px, where a codec's fixed cost per image no longer dominates)."""


@register("jpeg_compression", stochastic=False, table=JPEG_QUALITY,
          parameters="Pillow JPEG quality", spec="A.15")
def jpeg_compression(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.15: Pillow JPEG save at the table's quality (Pillow defaults: baseline, 4:2:0), then
    decode (G16). Small CPU images (CIFAR) go through `jpeg_torch`, an exact tensor emulation of
    Pillow's libjpeg-turbo, when it reproduces this Pillow's bytes. Otherwise a codec runs on the CPU and
    the result comes back to the images' device: torchvision's batched CPU codec (~2.5× faster than
    Pillow) when it reproduces Pillow's bytes, else Pillow image by image; either way on
    `torch.get_num_threads()` threads (both codecs release the GIL). (The emulation also runs on CUDA;
    it is used there once `tests/test_jpeg_torch.py`'s CUDA test has passed on a GPU.)"""
    quality = JPEG_QUALITY[scale][severity - 1]
    height, width = images.shape[-2:]
    if images.device.type == "cpu" and height * width <= _EMULATION_MAX_PIXELS and jpeg_torch.supports(height, width):
        emulated = [emulation_matches_pillow(q) for q in JPEG_QUALITY[scale]]  # all five at first use (~30 ms)
        if emulated[severity - 1]:
            return jpeg_torch.jpeg_round_trip(images, quality)
    host = images.cpu().contiguous()   # the whole batch at once (whole_batch below): one thread pool
    if images.shape[0] and torchvision_matches_pillow(quality):
        def round_trip(part: torch.Tensor) -> torch.Tensor:
            return _torchvision_round_trip(part, quality)
    else:
        def round_trip(part: torch.Tensor) -> torch.Tensor:
            hwc = part.permute(0, 2, 3, 1).contiguous().numpy()
            decoded = np.stack([_jpeg_round_trip(image, quality) for image in hwc])
            return torch.from_numpy(decoded).permute(0, 3, 1, 2)
    return codec_map(round_trip, host).contiguous().to(images.device)


jpeg_compression.whole_batch = True   # the registry's CPU chunking would starve the codec threads


def codec_map(round_trip: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """`round_trip` over contiguous parts of a CPU batch on `torch.get_num_threads()` threads, in order."""
    workers = min(torch.get_num_threads(), images.shape[0] // 4)
    if workers <= 1:
        return round_trip(images)
    bounds = np.linspace(0, images.shape[0], workers + 1).astype(int)
    parts = [images[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
    with ThreadPoolExecutor(workers) as pool:
        return torch.cat(list(pool.map(round_trip, parts)))


SATURATE_SCALE_SHIFT = {
    "cifar": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
    "tiny": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
    "imagenet": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
}


@register("saturate", stochastic=False, table=SATURATE_SCALE_SHIFT,
          parameters="(a, b): HSV saturation S ← clip(S·a + b, 0, 1)", spec="A.19")
def saturate(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.19: rgb2hsv(x), S ← clip(S·a + b, 0, 1), hsv2rgb, clip, ×255, truncate (G10 op order)."""
    gain, offset = SATURATE_SCALE_SHIFT[scale][severity - 1]
    hue, saturation, value = rgb_to_hsv_parts(to_unit(images))
    return to_uint8(hsv_to_rgb_parts(hue, (saturation * gain + offset).clamp_(0.0, 1.0), value))
