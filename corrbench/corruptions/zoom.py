"""zoom_blur (spec A.7) and the reference's `clipped_zoom` (spec G4, G5), batched.

`clipped_zoom(img, z)` crops the centred ch×ch square, ch = ceil(S/z), zooms it with scipy's
`zoom(order=1)` (aligned corners, n = round(ch·z) with Python 3's half-to-even rounding) and keeps
S×S from offset trim = (n − S)//2. Only (ch, top, n, trim) matter, so zoom factors that share them give
identical layers.

Arithmetic: scipy evaluates each output in float64 and casts it to the array's dtype. Here the
bilinear step (`_bilinear_calls`) samples o·(ch−1)/(n−1) with scipy's weights and sums its four
corner terms in scipy's order with separate elementwise ops: bit-identical to scipy, and identical on
every device (`F.interpolate` rounds in another order, and differently on CUDA).

Layout: images are worked on as W×H×N (N = batch·channels, innermost), so both interpolation steps read
and write runs of whole image rows or columns × N values, and every elementwise op covers all images and
channels at once.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from corrbench.corruptions.convert import working_dtype
from corrbench.corruptions.registry import register

# Pixel values (B·C·H·W) per CPU chunk of zoom_blur: up to 21 CIFAR images. A CIFAR chunk runs ~650 prepared
# ops over the five severities (1–2 µs fixed cost each), so much smaller chunks pay that cost per image
# (5 images: 25 % slower at one thread), and larger ones gain nothing as the ~10 chunk-sized float64
# buffers leave the cache (42 images: about the same). clipped_zoom chunks the same way (snow's one-channel
# CIFAR layers: 64 per chunk, 1.3–2× faster than one 256-layer batch, whose fresh buffers page-fault).
_ELEMENTS_PER_CHUNK = 1 << 16


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
    """B×C×H×W → H×W×(B·C) contiguous (the layout `_zoom_layer` takes)."""
    b, c, h, w = x.shape
    return x.reshape(b * c, h, w).permute(1, 2, 0).contiguous()


def _whn_view(x: torch.Tensor) -> torch.Tensor:
    """B×C×H×W → W×H×(B·C), a view where the strides allow it (a contiguous batch: always)."""
    b, c, h, w = x.shape
    return x.permute(3, 2, 0, 1).reshape(w, h, b * c)


def _from_whn(x: torch.Tensor, batch: int) -> torch.Tensor:
    """W×H×(B·C) → B×C×H×W contiguous."""
    w, h, n = x.shape
    return x.permute(2, 1, 0).reshape(batch, n // batch, h, w).contiguous()


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


_Run = tuple[int, int, int, int, int]


def _arithmetic_runs(first: np.ndarray, second: np.ndarray) -> tuple[_Run, ...]:
    """Outputs split into maximal pieces (start, count, i0 of the first, i0 step, i1 − i0) along which
    i0 is arithmetic and i1 − i0 constant: each piece reads its taps through one strided view."""
    runs = []
    start, size = 0, len(first)
    while start < size:
        pair = int(second[start] - first[start])
        end = start + 1
        step = int(first[end] - first[start]) if end < size else 0
        while end < size and first[end] - first[end - 1] == step and second[end] - first[end] == pair:
            end += 1
        runs.append((start, end - start, int(first[start]), step if end - start > 1 else 0, pair))
        start = end
    return tuple(runs)


class _Taps(NamedTuple):
    """One axis's taps on the device: `index` = i0 then i1 (2·length), `weights` = w0 over w1 (2×length),
    and `runs` (see `_arithmetic_runs`), or None where a gather is the cheaper way to read the taps."""

    index: torch.Tensor
    weights: torch.Tensor
    runs: tuple[_Run, ...] | None


@functools.lru_cache(maxsize=512)
def _device_taps(size_in: int, size_out: int, start: int, length: int, device: torch.device,
                 dtype: torch.dtype) -> _Taps:
    """`_linear_taps` of outputs start … start + length − 1 only, on the device.

    Strided views replace the gathers on the CPU when the taps form few arithmetic runs (zooms near 1,
    as in zoom_blur: a new run at each repeated tap), which saves a copy pass per step (CIFAR zoom_blur:
    13 % faster than gathers); with runs of ~4 outputs (ImageNet zoom_blur) the op per run costs as much
    as the pass, and on GPUs launches are dearer than passes. Both read the same values, so the bytes do
    not depend on the choice."""
    window = slice(start, start + length)
    first, second, w0, w1 = (a[window] for a in _linear_taps(size_in, size_out))
    runs = _arithmetic_runs(first, second)
    use_runs = torch.device(device).type == "cpu" and len(runs) <= length // 4 + 1
    return _Taps(torch.from_numpy(np.concatenate([first, second])).to(device),
                 torch.from_numpy(np.stack([w0, w1])).to(device, dtype), runs if use_runs else None)


def _bilinear_scratch_size(x: torch.Tensor, rows: _Taps, cols: _Taps) -> int:
    """Elements of the scratch buffer `_bilinear_calls` needs for x (W×H×N) and these taps."""
    width, _, lanes = x.shape
    height_out, width_out = rows.weights.shape[1], cols.weights.shape[1]
    return 2 * height_out * lanes * (width + 2 * width_out)


def _bilinear_calls(x: torch.Tensor, rows: _Taps, cols: _Taps, out: torch.Tensor,
                    scratch: torch.Tensor | None = None) -> list[Callable[[], object]]:
    """The calls that write scipy's order-1 sum for x (W×H×N, any strides) and the given row and column
    taps into `out` (W_out×H_out×N, any strides); they reread x's storage each time, so they can be
    prepared once and rerun for new images in the same buffers. `scratch`: a flat buffer of at least
    `_bilinear_scratch_size` elements, or None to allocate one.

    Rounding: the four corner terms (value·w_row)·w_col are each rounded on their own (value·w_row is
    shared by both columns: the same rounded number scipy forms) and added in the order (r0,c0), (r0,c1),
    (r1,c0), (r1,c1). Taps are read with gathers or, along arithmetic runs, strided views (exact copies
    either way), each multiply is a separate op (no fused multiply-add on any device).
    """
    width, _, lanes = x.shape
    height_out, width_out = rows.weights.shape[1], cols.weights.shape[1]
    if scratch is None:
        scratch = x.new_empty(_bilinear_scratch_size(x, rows, cols))
    span = 2 * height_out * lanes  # one column of the row step: (r0 | r1) × output rows × N
    rowed = scratch[:width * span].view(width, 2, height_out, lanes)
    terms = scratch[width * span:(width + 2 * width_out) * span].view(2, width_out, span)
    calls: list[Callable[[], object]] = []

    # Row step: rowed[c, k, i] = x[c, i_k(i)]·w_k(i) (k = 0, 1 for r0, r1), weights spread over N so the
    # multiply runs over whole contiguous column pieces.
    row_weights = rows.weights.view(1, 2, height_out, 1).expand(1, 2, height_out, lanes).contiguous()
    if rows.runs is None:
        calls.append(functools.partial(torch.index_select, x, 1, rows.index,
                                       out=rowed.view(width, 2 * height_out, lanes)))
        calls.append(functools.partial(rowed.mul_, row_weights))
    else:
        for start, count, source, step, pair in rows.runs:
            column, row, lane = x.stride()
            taps = x.as_strided((width, 2, count, lanes), (column, pair * row, step * row, lane),
                                x.storage_offset() + source * row)
            calls.append(functools.partial(torch.mul, taps, row_weights.narrow(2, start, count),
                                           out=rowed.narrow(2, start, count)))

    # Column step: terms[k', j] = rowed[j_k'(j)]·w_k'(j), each a whole (r0 | r1) × rows × N block.
    flat = rowed.view(width, span)
    col_weights = cols.weights.view(2, width_out, 1)
    if cols.runs is None:
        calls.append(functools.partial(torch.index_select, flat, 0, cols.index,
                                       out=terms.view(2 * width_out, span)))
        calls.append(functools.partial(terms.mul_, col_weights))
    else:
        for start, count, source, step, pair in cols.runs:
            taps = flat.as_strided((2, count, span), (pair * span, step * span, 1),
                                   flat.storage_offset() + source * span)
            calls.append(functools.partial(torch.mul, taps, col_weights.narrow(1, start, count),
                                           out=terms.narrow(1, start, count)))

    # terms[k', j, k] is corner (r_k, c_k'): sum in scipy's order.
    corners = terms.view(2, width_out, 2, height_out, lanes)
    calls.append(functools.partial(torch.add, corners[0, :, 0], corners[1, :, 0], out=out))
    calls.append(functools.partial(out.add_, corners[0, :, 1]))
    calls.append(functools.partial(out.add_, corners[1, :, 1]))
    return calls


def _run(calls: list[Callable[[], object]]) -> None:
    for call in calls:
        call()


def bilinear_aligned(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """scipy `zoom(order=1)` of float images N×C×h×w to N×C×height×width (aligned corners), bit-exact.

    Gathers (or strided views) and separate elementwise multiplies and adds in scipy's order, which round
    identically on every device (a fused interpolation kernel does not: CUDA's contracts products into FMAs).
    """
    source = _whn_view(x)
    rows = _device_taps(x.shape[-2], height, 0, height, x.device, x.dtype)
    cols = _device_taps(x.shape[-1], width, 0, width, x.device, x.dtype)
    out = x.new_empty((width, height, source.shape[2]))
    _run(_bilinear_calls(source, rows, cols, out))
    return _from_whn(out, x.shape[0])


def _zoom_calls(x: torch.Tensor, rows: ZoomGeometry, cols: ZoomGeometry, out: torch.Tensor | None = None,
                scratch: torch.Tensor | None = None) -> tuple[list[Callable[[], object]], torch.Tensor]:
    """(calls, layer): the prepared calls of `clipped_zoom` on x (W×H×N, working dtype) and the tensor
    (W×H×N) they fill. No calls where the zoom keeps the crop as it is; the layer is then a view of x.
    `out` / `scratch`: buffers to fill (see `_bilinear_calls`), or None to allocate them.
    Each axis is cropped, zoomed and trimmed on its own (imagecorruptions' clipped_zoom for H×W images;
    spec G5 when H = W). Only the kept window of the zoomed crop is computed."""
    width, height, lanes = x.shape
    crop = x[cols.top:cols.top + cols.crop, rows.top:rows.top + rows.crop]
    if rows.zoomed == rows.crop and cols.zoomed == cols.crop:  # step (ch−1)/(n−1) = 1: the crop itself
        return [], crop[cols.trim:cols.trim + width, rows.trim:rows.trim + height]
    row_taps = _device_taps(rows.crop, rows.zoomed, rows.trim, height, x.device, x.dtype)
    col_taps = _device_taps(cols.crop, cols.zoomed, cols.trim, width, x.device, x.dtype)
    out = x.new_empty((width, height, lanes)) if out is None else out
    calls = _bilinear_calls(crop, row_taps, col_taps, out, scratch)
    if rows.last_outside and rows.trim + height == rows.zoomed:   # scipy's cval row is in the window
        calls.append(functools.partial(out[:, -1].fill_, 0.0))
    if cols.last_outside and cols.trim + width == cols.zoomed:
        calls.append(functools.partial(out[-1].fill_, 0.0))
    return calls, out


def _zoom_layer(x: torch.Tensor, geometry: ZoomGeometry | tuple[ZoomGeometry, ZoomGeometry]) -> torch.Tensor:
    """`clipped_zoom` of float images `x` H×W×N (already in the working dtype); same dtype out, H×W×N
    (a transposed view). `geometry` = (rows, columns), or one ZoomGeometry for both axes of square images."""
    rows, cols = (geometry, geometry) if isinstance(geometry, ZoomGeometry) else geometry
    calls, layer = _zoom_calls(x.transpose(0, 1), rows, cols)
    _run(calls)
    return layer.transpose(0, 1)


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
    rows, cols = zoom_geometry_hw(images.shape[-2], images.shape[-1], zoom)
    batch, channels, height, width = images.shape
    zoomed = torch.empty(images.shape, dtype=images.dtype, device=images.device)  # never the input itself
    step = batch or 1
    if images.device.type == "cpu":  # chunks whose buffers stay in cache, reused (fresh MB-sized ones fault)
        step = max(1, _ELEMENTS_PER_CHUNK // max(1, channels * height * width))
        step = -(-batch // -(-batch // step)) if batch else 1  # as even as possible: one or two preparations
    prepared: dict[int, tuple[torch.Tensor, list[Callable[[], object]], torch.Tensor]] = {}
    for start in range(0, batch, step):
        chunk = images[start:start + step]
        lanes, pixels = chunk.shape[0] * channels, height * width
        if lanes not in prepared:
            # H×W×N buffers, read as W×H×N through transposed views (which the steps take): N×(H·W) ↔
            # (H·W)×N is then a plain 2-D transpose, which `copy_` does blockwise for equal dtypes on the
            # CPU (snow's float64 layers: 0.7 µs per CIFAR layer, against 2.2–3.8 µs for the W×H×N permute)
            hwn = torch.empty((height, width, lanes), dtype=working_dtype(images.device), device=images.device)
            out = torch.empty_like(hwn)
            calls, layer = _zoom_calls(hwn.transpose(0, 1), rows, cols, out=out.transpose(0, 1))
            # the layer is `out`, or a view of hwn where the zoom keeps the crop as it is
            prepared[lanes] = (hwn, calls, layer.transpose(0, 1))
        hwn, calls, layer = prepared[lanes]
        hwn.view(pixels, lanes).copy_(chunk.reshape(lanes, pixels).t())
        _run(calls)
        zoomed[start:start + step].view(lanes, pixels).copy_(layer.reshape(pixels, lanes).t())  # casts like .to
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


class _ZoomBlurChunks:
    """zoom_blur for chunks of one shape B×C×H×W: buffers and the prepared calls of every layer, built
    once and rerun per chunk (no allocation per chunk or layer; the layers share one scratch buffer)."""

    def __init__(self, geometries: list[tuple[ZoomGeometry, ZoomGeometry]], shape: torch.Size,
                 device: torch.device) -> None:
        batch, channels, height, width = shape
        dtype = working_dtype(device)
        self.x = torch.empty((width, height, batch * channels), dtype=dtype, device=device)
        self.x32 = torch.empty(self.x.shape, dtype=torch.float32, device=device)
        self.total = torch.empty_like(self.x32)
        self.byte_scale = torch.tensor(255.0, dtype=dtype, device=device)
        self.count = torch.tensor(float(len(geometries) + 1), dtype=torch.float32, device=device)
        layer, layer32 = torch.empty_like(self.x), torch.empty_like(self.x32)
        scratch = self.x.new_empty(6 * self.x.numel())  # ≥ `_bilinear_scratch_size` for crops ≤ W
        self.calls: list[Callable[[], object]] = []
        previous, current = None, layer32
        for index, geometry in enumerate(geometries):
            if geometry != previous:  # neighbouring factors often share (ch, top, n, trim): same layer
                calls, zoomed = _zoom_calls(self.x, *geometry, out=layer, scratch=scratch)
                if calls:
                    self.calls += calls
                    self.calls.append(functools.partial(layer32.copy_, zoomed))
                    current = layer32
                else:  # the crop itself, a view of x: float32 of it is the same view of x32
                    current = self.x32.as_strided(zoomed.shape, zoomed.stride(), zoomed.storage_offset())
                previous = geometry
            # total starts as the first layer: 0 + layer in float32 is the layer (all terms are ≥ +0)
            self.calls.append(functools.partial(self.total.add_ if index else self.total.copy_, current))

    def run(self, images: torch.Tensor, out: torch.Tensor) -> None:
        """Writes zoom_blur of the uint8 chunk `images` into `out` (uint8, contiguous, same shape)."""
        # convert.to_unit in place: u/255 in the working dtype, divided by a tensor (IEEE on every device)
        self.x.copy_(_whn_view(images))
        torch.div(self.x, self.byte_scale, out=self.x)
        self.x32.copy_(self.x)
        self.x.copy_(self.x32)  # scipy reads the float32 pixels into doubles
        _run(self.calls)
        # convert.to_uint8(convert.divide(x + total, len + 1)) in place: x + total commutes exactly, and
        # the cast to uint8 truncates, which is the floor for the clipped values ≥ 0
        torch.div(self.total.add_(self.x32), self.count, out=self.total).clamp_(0.0, 1.0).mul_(255.0)
        batch, channels, height, width = out.shape
        out.permute(3, 2, 0, 1).view(width, height, batch * channels).copy_(self.total)


@register("zoom_blur", stochastic=False, table=ZOOM_BLUR_RANGES,
          parameters="(start, stop, step) of np.arange: the zoom factors averaged with the image", spec="A.7")
def zoom_blur(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.7, in float32 like the reference: x = float32(u/255); out = Σ_z float32(clipped_zoom(x, z))
    accumulated in order; trunc(255·clip((x + out)/(len + 1), 0, 1)). z = 1 adds x itself."""
    factors = zoom_factors(scale, severity)
    geometries = [zoom_geometry_hw(images.shape[-2], images.shape[-1], z) for z in factors]
    batch = images.shape[0]
    step = max(1, _ELEMENTS_PER_CHUNK // images[0].numel()) if images.device.type == "cpu" else batch
    step = -(-batch // -(-batch // step))  # as even as possible: often one chunk size, so one preparation
    result = torch.empty(images.shape, dtype=torch.uint8, device=images.device)
    chunks: dict[int, _ZoomBlurChunks] = {}  # at most two chunk sizes: the step and the remainder
    for start in range(0, batch, step):
        chunk = images[start:start + step]
        if len(chunk) not in chunks:
            chunks[len(chunk)] = _ZoomBlurChunks(geometries, chunk.shape, images.device)
        chunks[len(chunk)].run(chunk, result[start:start + step])
    return result


zoom_blur.whole_batch = True  # it chunks a CPU batch itself, preparing its buffers and calls once per batch
