"""zoom_blur (spec A.7) and the reference's `clipped_zoom` (spec G4, G5), batched.

`clipped_zoom(img, z)` crops the centred ch×ch square, ch = ceil(S/z), zooms it with scipy's
`zoom(order=1)` (aligned corners, n = round(ch·z) with Python 3's half-to-even rounding) and keeps
S×S from offset trim = (n − S)//2. Only (ch, top, n, trim) matter, so zoom factors that share them give
identical layers.

Arithmetic: scipy evaluates each output in float64 and casts it to the array's dtype. Here the
bilinear step (`bilinear_aligned`) samples o·(ch−1)/(n−1) with scipy's weights and sums its four
corner terms in scipy's order with separate elementwise ops: bit-identical to scipy, and identical on
every device (`F.interpolate` rounds in another order, and differently on CUDA).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch

from corrbench.corruptions.convert import divide, to_uint8, to_unit, working_dtype
from corrbench.corruptions.registry import register

_ELEMENTS_PER_CHUNK = 1 << 16  # CPU working set per chunk: ~20 CIFAR images, 0.5 MB per float64 layer (fits L2)


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
        raise ValueError("clipped_zoom: images must be a float tensor B×C×H×W")
    if not (math.isfinite(zoom) and zoom >= 1.0):
        raise ValueError(f"clipped_zoom: zoom must be a finite factor ≥ 1, got {zoom}")


def _to_hwn(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → H×W×(B·C) contiguous: gathers along H or W then copy whole runs of B·C values, and
    every elementwise step runs vectorised over all images and channels at once."""
    b, c, h, w = x.shape
    return x.reshape(b * c, h, w).permute(1, 2, 0).contiguous()


def _from_hwn(x: torch.Tensor, batch: int) -> torch.Tensor:
    h, w, n = x.shape
    return x.permute(2, 0, 1).reshape(batch, n // batch, h, w).contiguous()


@functools.lru_cache(maxsize=None)
def _linear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scipy's order-1 `zoom` along one axis: output o samples s = o·((n_in − 1)/(n_out − 1)); returns
    (i0, i1, w0, w1) with i0 = ⌊s⌋, i1 = min(i0 + 1, n_in − 1), w0 = 1 − (s − i0) and, as scipy forms it,
    w1 = 1 − w0 (not always s − i0 in floating point: zoom 2 differs in 1 of 100 values)."""
    step = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    position = np.arange(size_out, dtype=np.float64) * step
    first = np.minimum(np.floor(position), size_in - 1).astype(np.int64)
    w0 = 1.0 - (position - first)
    return first, np.minimum(first + 1, size_in - 1), w0, 1.0 - w0


@functools.lru_cache(maxsize=512)
def _device_taps(size_in: int, size_out: int, start: int, length: int, device: torch.device,
                 dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """`_linear_taps` of outputs start … start + length − 1 only, on the device."""
    window = slice(start, start + length)
    first, second, w0, w1 = (a[window] for a in _linear_taps(size_in, size_out))
    return (torch.from_numpy(first.copy()).to(device), torch.from_numpy(second.copy()).to(device),
            torch.from_numpy(w0.copy()).to(device, dtype), torch.from_numpy(w1.copy()).to(device, dtype))


def _bilinear_hwn(x: torch.Tensor, rows: tuple[torch.Tensor, ...], cols: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """scipy's order-1 sum on H×W×N images for the given row and column taps: the four corner terms
    (value·w_row)·w_col added in the order (r0,c0), (r0,c1), (r1,c0), (r1,c1), each product rounded on
    its own (value·w_row is shared by both columns: the same rounded number scipy forms)."""
    r0, r1, wr0, wr1 = rows
    c0, c1, wc0, wc1 = cols
    top = x.index_select(0, r0).mul_(wr0.view(-1, 1, 1))
    bottom = x.index_select(0, r1).mul_(wr1.view(-1, 1, 1))
    wc0, wc1 = wc0.view(1, -1, 1), wc1.view(1, -1, 1)
    out = top.index_select(1, c0).mul_(wc0)
    out += top.index_select(1, c1).mul_(wc1)
    out += bottom.index_select(1, c0).mul_(wc0)
    out += bottom.index_select(1, c1).mul_(wc1)
    return out


def bilinear_aligned(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """scipy `zoom(order=1)` of float images N×C×h×w to N×C×height×width (aligned corners), bit-exact.

    Gathers and separate elementwise multiplies and adds in scipy's order, which round identically on
    every device (a fused interpolation kernel does not: CUDA's contracts products into FMAs).
    """
    rows = _device_taps(x.shape[-2], height, 0, height, x.device, x.dtype)
    cols = _device_taps(x.shape[-1], width, 0, width, x.device, x.dtype)
    return _from_hwn(_bilinear_hwn(_to_hwn(x), rows, cols), x.shape[0])


def _zoom_layer(x: torch.Tensor, geometry: ZoomGeometry | tuple[ZoomGeometry, ZoomGeometry]) -> torch.Tensor:
    """`clipped_zoom` of float images `x` H×W×N (already in the working dtype); same dtype out.
    `geometry` = (rows, columns), or one ZoomGeometry for both axes of square images: each axis is
    cropped, zoomed and trimmed on its own (imagecorruptions' clipped_zoom for H×W images; spec G5 when H = W).
    Only the kept window of the zoomed crop is computed."""
    height, width = x.shape[:2]
    rows, cols = (geometry, geometry) if isinstance(geometry, ZoomGeometry) else geometry
    crop = x[rows.top:rows.top + rows.crop, cols.top:cols.top + cols.crop]
    if rows.zoomed == rows.crop and cols.zoomed == cols.crop:  # step (ch−1)/(n−1) = 1: the crop itself
        return crop[rows.trim:rows.trim + height, cols.trim:cols.trim + width]
    layer = _bilinear_hwn(crop, _device_taps(rows.crop, rows.zoomed, rows.trim, height, x.device, x.dtype),
                          _device_taps(cols.crop, cols.zoomed, cols.trim, width, x.device, x.dtype))
    if rows.last_outside and rows.trim + height == rows.zoomed:   # scipy's cval row is in the window
        layer[-1] = 0.0
    if cols.last_outside and cols.trim + width == cols.zoomed:
        layer[:, -1] = 0.0
    return layer


def zoom_geometry_hw(height: int, width: int, zoom: float) -> tuple[ZoomGeometry, ZoomGeometry]:
    """(rows, columns) geometry of `clipped_zoom` on H×W images."""
    return zoom_geometry(height, zoom), zoom_geometry(width, zoom)


def clipped_zoom(images: torch.Tensor, zoom: float) -> torch.Tensor:
    """Spec G4/G5: the reference's `clipped_zoom` of float images B×C×H×W (any float dtype, any device).

    Computed in float64 (float32 on MPS) and returned in the input's dtype, as scipy computes in
    double and casts to the array's dtype.
    """
    zoom = float(zoom)
    _check_zoom_input(images, zoom)
    geometry = zoom_geometry_hw(images.shape[-2], images.shape[-1], zoom)
    hwn = _to_hwn(images.to(working_dtype(images.device)))
    zoomed = _from_hwn(_zoom_layer(hwn, geometry).to(images.dtype), images.shape[0])
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
    geometries = [zoom_geometry_hw(images.shape[-2], images.shape[-1], z) for z in factors]
    step = (max(1, _ELEMENTS_PER_CHUNK // images[0].numel()) if images.device.type == "cpu"
            else images.shape[0])
    outputs = []
    for start in range(0, images.shape[0], step):
        chunk = images[start:start + step]
        x32 = _to_hwn(to_unit(chunk).to(torch.float32))
        x = x32.to(working_dtype(images.device))  # scipy reads the float32 pixels into doubles
        total = torch.zeros_like(x32)
        previous, layer = None, None
        for geometry in geometries:
            if geometry != previous:  # neighbouring factors often share (ch, top, n, trim): same layer
                layer = _zoom_layer(x, geometry).to(torch.float32)
                previous = geometry
            total += layer
        outputs.append(_from_hwn(to_uint8(divide(x32 + total, len(factors) + 1)), chunk.shape[0]))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
