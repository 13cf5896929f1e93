"""zoom_blur (spec A.7) and the reference's `clipped_zoom` (spec G4, G5), batched.

`clipped_zoom(img, z)` crops the centred ch×ch square, ch = ceil(S/z), zooms it with scipy's
`zoom(order=1)` (aligned corners, n = round(ch·z) with Python 3's half-to-even rounding) and keeps
S×S from offset trim = (n − S)//2. Only (ch, top, n, trim) matter, so zoom factors that share them give
identical layers.

Arithmetic: scipy evaluates each output in float64 and casts it to the array's dtype. Here the
bilinear step is `F.interpolate(..., align_corners=True)` in float64 at the same sample positions
o·(ch−1)/(n−1); it rounds in another order, so a float64 value can differ from scipy's in the last
bits (and PyTorch snaps a sample lying one double ulp below an integer onto it, a 1e-14 change).
After zoom_blur's float32 cast that moves about 1e-5 of the layer values by one float32 ulp, which
changes a byte only if it straddles a truncation: measured 0 of 6.1 million bytes at 32 px.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from corrbench.corruptions.convert import to_unit, to_uint8, working_dtype
from corrbench.corruptions.registry import register

_ELEMENTS_PER_CHUNK = 1 << 18  # CPU working set per chunk of images (stays in cache)


class ZoomGeometry(NamedTuple):
    """Spec G5 for one (side, zoom): crop side, crop offset, zoomed side, trim offset, and whether the
    zoomed square's last row/column falls past the crop by float rounding (scipy then writes 0 there)."""

    crop: int
    top: int
    zoomed: int
    trim: int
    last_outside: bool


@functools.lru_cache(maxsize=None)
def zoom_geometry(side: int, zoom: float) -> ZoomGeometry:
    """Spec G5: ch = int(ceil(S/z)), top = (S − ch)//2, n = round(ch·z) (half to even), trim = (n − S)//2."""
    crop = int(np.ceil(side / zoom))
    zoomed = int(round(crop * zoom))
    # scipy samples output o at o·(ch−1)/(n−1); in its 'constant' mode a sample that rounding puts past
    # the last input index is cval = 0 (e.g. ch 15, n 26). No zoom of the severity tables does this.
    last_outside = zoomed > 1 and (zoomed - 1) * ((crop - 1) / (zoomed - 1)) > crop - 1
    return ZoomGeometry(crop, (side - crop) // 2, zoomed, (zoomed - side) // 2, last_outside)


def _check_zoom_input(images: torch.Tensor, zoom: float) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.ndim != 4:
        raise ValueError("clipped_zoom: images must be a float tensor B×C×S×S")
    if images.shape[2] != images.shape[3]:
        raise ValueError(f"clipped_zoom: images must be square, got {images.shape[2]}×{images.shape[3]}")
    if not (math.isfinite(zoom) and zoom >= 1.0):
        raise ValueError(f"clipped_zoom: zoom must be a finite factor ≥ 1, got {zoom}")


def _stack_channels(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → 1×(B·C)×H×W in channels-last memory: the interpolation kernel then runs vectorised
    over all images and channels at once (about 3× faster on the CPU than B×C×H×W)."""
    b, c, h, w = x.shape
    return x.reshape(1, b * c, h, w).contiguous(memory_format=torch.channels_last)


def _unstack_channels(x: torch.Tensor, batch: int) -> torch.Tensor:
    return x.reshape(batch, -1, *x.shape[2:]).contiguous()


def _zoom_layer(x: torch.Tensor, geometry: ZoomGeometry) -> torch.Tensor:
    """`clipped_zoom` of float images `x` N×C×S×S (already in the working dtype); same dtype out."""
    side = x.shape[-1]
    crop, top, zoomed, trim, last_outside = geometry
    square = x[..., top:top + crop, top:top + crop]
    if zoomed == crop:  # step (ch−1)/(n−1) = 1: scipy returns the crop itself
        return square[..., trim:trim + side, trim:trim + side]
    layer = F.interpolate(square, size=(zoomed, zoomed), mode="bilinear", align_corners=True)
    if last_outside:
        layer[..., -1, :] = 0.0
        layer[..., :, -1] = 0.0
    return layer[..., trim:trim + side, trim:trim + side]


def clipped_zoom(images: torch.Tensor, zoom: float) -> torch.Tensor:
    """Spec G4/G5: the reference's `clipped_zoom` of float images B×C×S×S (any float dtype, any device).

    Computed in float64 (float32 on MPS) and returned in the input's dtype, as scipy computes in
    double and casts to the array's dtype.
    """
    zoom = float(zoom)
    _check_zoom_input(images, zoom)
    geometry = zoom_geometry(images.shape[-1], zoom)
    stacked = _stack_channels(images.to(working_dtype(images.device)))
    zoomed = _unstack_channels(_zoom_layer(stacked, geometry).to(images.dtype), images.shape[0])
    if zoomed.untyped_storage().data_ptr() == images.untyped_storage().data_ptr():
        zoomed = zoomed.clone()  # an identity zoom must not hand back the caller's own tensor
    return zoomed


ZOOM_BLUR_RANGES = {
    "cifar": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "tiny": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "imagenet": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)),
}


def zoom_factors(scale: str, severity: int) -> tuple[float, ...]:
    """The zoom list of `scale` at `severity`: `np.arange(start, stop, step)` exactly as NumPy makes it,
    float overshoot included (so arange(1, 1.06, .01) ends at 1.06: 7 factors)."""
    start, stop, step = ZOOM_BLUR_RANGES[scale][severity - 1]
    return tuple(float(z) for z in np.arange(start, stop, step))


@register("zoom_blur", stochastic=False, table=ZOOM_BLUR_RANGES,
          parameters="(start, stop, step) of np.arange: the zoom factors averaged with the image", spec="A.7")
def zoom_blur(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.7, in float32 like the reference: x = float32(u/255); out = Σ_z float32(clipped_zoom(x, z))
    accumulated in order; trunc(255·clip((x + out)/(len + 1), 0, 1)). z = 1 adds x itself."""
    factors = zoom_factors(scale, severity)
    side = images.shape[-1]
    geometries = [zoom_geometry(side, z) for z in factors]
    step = (max(1, _ELEMENTS_PER_CHUNK // images[0].numel()) if images.device.type == "cpu"
            else images.shape[0])
    outputs = []
    for start in range(0, images.shape[0], step):
        chunk = images[start:start + step]
        x32 = _stack_channels(to_unit(chunk).to(torch.float32))
        x = x32.to(working_dtype(images.device))  # scipy reads the float32 pixels into doubles
        total = torch.zeros_like(x32)
        previous, layer = None, None
        for geometry in geometries:
            if geometry != previous:  # neighbouring factors often share (ch, top, n, trim): same layer
                layer = _zoom_layer(x, geometry).to(torch.float32)
                previous = geometry
            total += layer
        outputs.append(_unstack_channels(to_uint8((x32 + total) / (len(factors) + 1)), chunk.shape[0]))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
