"""PIL-equivalent image operations on uint8 batches B×C×H×W, any device, one magnitude per image.

Each op reproduces the PIL call named in its docstring bit for bit on RGB images (Pillow's C code:
ImageOps LUTs, `Image.blend` in float32 with truncation, the SMOOTH 3×3 filter in float32 with +0.5
rounding and copied borders, `Image.transform(AFFINE)` with its three nearest-neighbour code paths
and its edge-clamped bilinear filter, fill 0). Known limits, where PIL's result depends on
accumulation order we do not replay: nearest-neighbour transforms whose corner coordinates exceed
±32768 px, and pure scalings with non-integer scale (neither occurs in AugMix/AutoAugment/
RandAugment/TrivialAugment).

`apply_per_image` applies a different op with a different magnitude to every image of a batch:
images are grouped by op, so each op runs once per batch on its share of the images.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError

RESAMPLES = ("nearest", "bilinear")


def check_uint8_batch(images: object) -> None:
    """LayoutError unless `images` is a uint8 tensor B×C×H×W."""
    if not isinstance(images, torch.Tensor):
        raise LayoutError(f"images must be a uint8 torch.Tensor B×C×H×W, got {type(images).__name__}")
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise LayoutError(f"images must be uint8 B×C×H×W, got {images.dtype} of shape {tuple(images.shape)}; "
                          f"pass the raw uint8 pixels, channels first")


def per_image(value: float | torch.Tensor, images: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A magnitude (scalar or one per image) as a length-B tensor of `dtype` on the images' device."""
    value = torch.as_tensor(value, dtype=dtype, device=images.device)
    if value.ndim == 0:
        return value.expand(images.shape[0])
    if value.shape != (images.shape[0],):
        raise InvalidValueError(f"a magnitude needs one value per image ({images.shape[0]}), got shape "
                                f"{tuple(value.shape)}")
    return value


def _column(value: torch.Tensor) -> torch.Tensor:
    return value.view(-1, 1, 1, 1)


# ---------------------------------------------------------------------------------------------------
# Point operations (ImageOps)


def identity(images: torch.Tensor) -> torch.Tensor:
    return images


def invert(images: torch.Tensor) -> torch.Tensor:
    """ImageOps.invert: 255 − x."""
    return 255 - images


def posterize(images: torch.Tensor, bits: float | torch.Tensor) -> torch.Tensor:
    """ImageOps.posterize(img, bits): keep the `bits` (0..8) most significant bits of every channel."""
    bits = per_image(bits, images, torch.int64)
    if bool(((bits < 0) | (bits > 8)).any()):
        raise InvalidValueError("posterize keeps 0 to 8 bits per channel")
    mask = (256 - (1 << (8 - bits))).to(torch.uint8)
    return images & _column(mask)


def solarize(images: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """ImageOps.solarize(img, threshold): x if x < threshold else 255 − x."""
    threshold = _column(per_image(threshold, images))
    return torch.where(images.to(torch.float64) < threshold, images, 255 - images)


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """ImageOps.autocontrast(img) (cutoff 0): per channel, int(x·s − lo·s) clipped, s = 255/(hi − lo)."""
    low = images.amin(dim=(2, 3), keepdim=True).to(torch.float64)
    high = images.amax(dim=(2, 3), keepdim=True).to(torch.float64)
    flat = high <= low
    # tensor / tensor: `255.0 / t` would multiply by a reciprocal and round differently from Python
    spread = torch.where(flat, 1.0, high - low)
    scale = torch.full_like(spread, 255.0) / spread
    offset = -low * scale
    stretched = (images.to(torch.float64) * scale + offset).trunc().clamp(0, 255).to(torch.uint8)
    return torch.where(flat, images, stretched)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """ImageOps.equalize(img): per channel, lut[i] = (step//2 + #pixels below i) // step with
    step = (#pixels − count of the highest occupied level) // 255; identity if step is 0 or only one
    level occurs. lut values above 255 (possible at the top level) are clipped, as PIL's `point` does."""
    batch, channels, height, width = images.shape
    flat = images.reshape(batch * channels, height * width).long()
    return equalize_lut(images).gather(1, flat).to(torch.uint8).view(batch, channels, height, width)


def equalize_lut(images: torch.Tensor) -> torch.Tensor:
    """`equalize`'s lookup table per image and channel: (B·C)×256 int64 values in 0..255."""
    batch, channels, height, width = images.shape
    flat = images.reshape(batch * channels, height * width).long()
    hist = torch.zeros(batch * channels, 256, dtype=torch.int64, device=images.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    occupied = hist > 0
    top = 255 - occupied.flip(1).long().argmax(dim=1, keepdim=True)
    step = (height * width - hist.gather(1, top)) // 255
    below = hist.cumsum(1) - hist
    lut = ((step // 2 + below) // step.clamp(min=1)).clamp(max=255)
    keep = (occupied.sum(1, keepdim=True) <= 1) | (step == 0)
    return torch.where(keep, torch.arange(256, device=images.device), lut)


# ---------------------------------------------------------------------------------------------------
# Enhancements (ImageEnhance): Image.blend(degenerate, image, factor)


def blend(degenerate: torch.Tensor, images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Image.blend(degenerate, image, factor): trunc(clip(d + f·(x − d))) in float32 (f as a C float)."""
    factor = _column(per_image(factor, images).to(torch.float32))
    base = degenerate.to(torch.float32)
    mixed = base + factor * (images.to(torch.float32) - base)
    return mixed.clamp(0, 255).trunc().to(torch.uint8)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """Image.convert('L') of RGB: (19595 R + 38470 G + 7471 B + 2^15) >> 16 (ITU-R 601-2), B×1×H×W."""
    if images.shape[1] == 1:
        return images
    rgb = images.to(torch.int32)
    luma = (rgb[:, 0:1] * 19595 + rgb[:, 1:2] * 38470 + rgb[:, 2:3] * 7471 + 0x8000) >> 16
    return luma.to(torch.uint8)


def color(images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Color(img).enhance(factor): blend with the greyscale image."""
    return blend(luminance(images).expand_as(images), images, factor)


def brightness(images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Brightness(img).enhance(factor): blend with black."""
    return blend(torch.zeros_like(images), images, factor)


def contrast(images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Contrast(img).enhance(factor): blend with the grey level int(mean(L) + 0.5)."""
    luma = luminance(images)
    total = luma.sum(dim=(1, 2, 3), dtype=torch.int64).to(torch.float64)
    mean = total / torch.full_like(total, luma[0].numel())   # true division (CUDA multiplies by 1/scalar)
    grey = (mean + 0.5).floor().to(torch.uint8)
    return blend(_column(grey).expand_as(images), images, factor)


def smooth(images: torch.Tensor) -> torch.Tensor:
    """img.filter(ImageFilter.SMOOTH): kernel [[1,1,1],[1,5,1],[1,1,1]]/13 in float32, summed row by row
    as Pillow does, +0.5 then truncated; the one-pixel border is copied unchanged."""
    if images.shape[2] < 3 or images.shape[3] < 3:
        return images
    x = images.to(torch.float32)
    # Pillow divides the kernel by its scale in float32 (`kerneldata[i] /= divisor`).
    # Filled on the device (torch.full): a host→device copy would wait for the queued kernels.
    one = torch.full((), float(np.float32(1.0) / np.float32(13.0)), dtype=torch.float32, device=images.device)
    five = torch.full((), float(np.float32(5.0) / np.float32(13.0)), dtype=torch.float32, device=images.device)
    left, centre, right = x[..., :-2], x[..., 1:-1], x[..., 2:]

    def row(weight_centre: torch.Tensor, rows: slice) -> torch.Tensor:
        return left[..., rows, :] * one + centre[..., rows, :] * weight_centre + right[..., rows, :] * one

    height = images.shape[2]
    total = 0.5 + row(one, slice(2, height))          # the row below first, as Pillow's kernel[0..2]
    total = total + row(five, slice(1, height - 1))
    total = total + row(one, slice(0, height - 2))
    out = images.clone()
    out[..., 1:-1, 1:-1] = total.clamp(0, 255).trunc().to(torch.uint8)
    return out


def sharpness(images: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Sharpness(img).enhance(factor): blend with the SMOOTH-filtered image."""
    return blend(smooth(images), images, factor)


# ---------------------------------------------------------------------------------------------------
# Geometry (Image.transform with AFFINE data; fill 0)


def _check_resample(resample: str) -> None:
    if resample not in RESAMPLES:
        raise UnknownNameError("resample mode", resample, RESAMPLES)


def affine(images: torch.Tensor, coefficients: torch.Tensor, resample: str = "nearest", *,
           sync_free: bool = False) -> torch.Tensor:
    """Image.transform(size, AFFINE, (a, b, c, d, e, f), resample) per image.

    `coefficients` is B×6: output pixel (x, y) samples the input at (a·x' + b·y' + c, d·x' + e·y' + f)
    with x' = x + 0.5, y' = y + 0.5 (pixel centres); samples outside the image are 0.
    `sync_free` computes every code path and selects per image instead of asking the device which
    paths are needed (same bytes, no host sync; for accelerators).
    """
    _check_resample(resample)
    batch, channels, height, width = images.shape
    coefficients = coefficients.to(device=images.device, dtype=torch.float64).reshape(batch, 6)
    a = coefficients.view(batch, 6, 1, 1).unbind(1)
    ys = torch.arange(height, device=images.device, dtype=torch.float64).view(1, height, 1)
    xs = torch.arange(width, device=images.device, dtype=torch.float64).view(1, 1, width)
    pixels = _PixelTable(images)
    if resample == "bilinear" and (sync_free or not bool(_is_whole_pixel_shift(coefficients).all())):
        return _bilinear(pixels, a, xs, ys, sync_free=sync_free)
    # Whole-pixel shifts sample pixel centres exactly (dx = dy = 0): bilinear equals nearest there.
    column, row = _nearest_source(a, xs, ys, width, height, sync_free=sync_free)
    return pixels.fetch(pixels.index(row, column))


def _is_whole_pixel_shift(coefficients: torch.Tensor) -> torch.Tensor:
    a0, a1, a2, a3, a4, a5 = coefficients.unbind(1)
    return (a0 == 1) & (a1 == 0) & (a3 == 0) & (a4 == 1) & (a2 == a2.round()) & (a5 == a5.round())


class _PixelTable:
    """The batch as one flat table of whole pixels (RGB packed into an int32 when C ≤ 4, so a pixel is
    fetched with one `index_select`), plus a trailing black pixel that out-of-image samples point to."""

    def __init__(self, images: torch.Tensor):
        self.shape = images.shape
        batch, channels, height, width = images.shape
        self.packed = channels <= 4
        pixel_count = batch * height * width
        if self.packed:
            table = images.new_zeros(pixel_count + 1, 4)
            table[:pixel_count, :channels].view(batch, height, width, channels).copy_(images.permute(0, 2, 3, 1))
            self.table = table.view(torch.int32).view(-1)
        else:
            self.table = images.new_zeros(pixel_count + 1, channels)
            self.table[:pixel_count].view(batch, height, width, channels).copy_(images.permute(0, 2, 3, 1))
        self.black = pixel_count
        # int32 indices: index_select takes them, and they halve the memory traffic of index arithmetic.
        self.offset = (torch.arange(batch, device=images.device, dtype=torch.int32) * (height * width)).view(batch, 1, 1)

    def index(self, row: torch.Tensor, column: torch.Tensor, outside: torch.Tensor | None = None) -> torch.Tensor:
        """Flat table index of (row, column) per image (B×H×W int32); out of the image -> the black pixel."""
        height, width = self.shape[2], self.shape[3]
        if outside is None:
            outside = (column < 0) | (column >= width) | (row < 0) | (row >= height)
        return torch.where(outside, self.black, self.offset + row * width + column)

    def fetch(self, index: torch.Tensor, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
        """The pixels at `index` as a planar B×C×H×W tensor of `dtype`."""
        batch, channels, height, width = self.shape
        pixels = self.table.index_select(0, index.view(-1))
        values = pixels.view(torch.uint8).view(batch, height * width, 4)[..., :channels] if self.packed else \
            pixels.view(batch, height * width, channels)
        out = torch.empty(batch, channels, height, width, dtype=dtype, device=index.device)
        out.view(batch, channels, height * width).copy_(values.permute(0, 2, 1))
        return out


def _nearest_source(a, xs, ys, width: int, height: int, sync_free: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Source column and row (int32, B×H×W) of PIL's nearest-neighbour affine (Geometry.c): pure
    scalings/translations use the float `ImagingScaleAffine` path, other maps the 16.16 fixed-point
    path when the four corners fit, else the float path."""
    a0, a1, a2, a3, a4, a5 = a

    def coord(value: torch.Tensor) -> torch.Tensor:   # COORD(): −1 below zero, else truncation
        return value.clamp(-1.0, 2.0 ** 30).floor().int()   # the upper clamp only keeps int32 defined

    # ImagingScaleAffine: xo = c + a/2, advanced by a per column (exact for a = ±1, b = d = 0).
    column = coord((a2 + a0 * 0.5) + xs * a0).expand(-1, height, -1)
    row = coord((a5 + a4 * 0.5) + ys * a4).expand(-1, -1, width)
    is_scale = (a1 == 0) & (a3 == 0)
    if not sync_free and bool(is_scale.all()):
        return column, row
    # affine_fixed: coefficients rounded to 16.16 fixed point, integer accumulation, >> 16.
    def fix(value: torch.Tensor) -> torch.Tensor:
        return (value * 65536.0 + 0.5).floor().long()

    f0, f1, f3, f4 = fix(a0), fix(a1), fix(a3), fix(a4)
    f2 = fix(a2 + a0 * 0.5 + a1 * 0.5)
    f5 = fix(a5 + a3 * 0.5 + a4 * 0.5)
    xi, yi = xs.long(), ys.long()
    fixed_column = ((f2 + yi * f1 + xi * f0) >> 16).int()
    fixed_row = ((f5 + yi * f4 + xi * f3) >> 16).int()
    corners_fit = torch.ones_like(is_scale)
    for cx, cy in ((0, 0), (width, height), (0, height), (width, 0)):
        corners_fit &= ((cx * a0 + cy * a1 + a2).abs() < 32768.0) & ((cx * a3 + cy * a4 + a5).abs() < 32768.0)
    if sync_free or not bool(corners_fit.all()):
        # Float path for huge coordinates (direct evaluation instead of PIL's running sums).
        fixed_column = torch.where(corners_fit, fixed_column, coord((a2 + a1 * 0.5 + a0 * 0.5) + ys * a1 + xs * a0))
        fixed_row = torch.where(corners_fit, fixed_row, coord((a5 + a4 * 0.5 + a3 * 0.5) + ys * a4 + xs * a3))
    return torch.where(is_scale, column, fixed_column), torch.where(is_scale, row, fixed_row)


def _bilinear(pixels: _PixelTable, a, xs: torch.Tensor, ys: torch.Tensor, sync_free: bool = False) -> torch.Tensor:
    """PIL's generic transform with `bilinear_filter32RGB`: float64 sample point, neighbours clamped to
    the image, v = a + (b − a)·d along x then y, truncated; samples outside [0, W) × [0, H) are 0.

    Where every image of the call has dx = 0 (shear_y) or dy = 0 (shear_x), the second neighbour is
    skipped: a + (b − a)·0 is exactly a, so the result is unchanged.
    """
    a0, a1, a2, a3, a4, a5 = a
    batch, channels, height, width = pixels.shape
    x_in = a0 * (xs + 0.5) + a1 * (ys + 0.5) + a2
    y_in = a3 * (xs + 0.5) + a4 * (ys + 0.5) + a5
    outside = (x_in < 0) | (x_in >= width) | (y_in < 0) | (y_in >= height)
    x_in, y_in = x_in - 0.5, y_in - 0.5
    x0, y0 = x_in.floor(), y_in.floor()
    dx, dy = x_in - x0, y_in - y0
    x0, y0 = x0.clamp(-1, width).int(), y0.clamp(-1, height).int()    # only outside samples are clamped
    left, top = x0.clamp(0, width - 1), y0.clamp(0, height - 1)
    right, bottom = (x0 + 1).clamp(0, width - 1), (y0 + 1).clamp(0, height - 1)
    need_right = sync_free or bool((dx != 0).any())
    need_bottom = sync_free or bool((dy != 0).any())

    def at(row: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
        return pixels.fetch(pixels.index(row, column, outside), torch.float64)

    def lerp_(start: torch.Tensor, end: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """start + (end − start)·weight in Pillow's order of operations, into `end`."""
        return end.sub_(start).mul_(weight.unsqueeze(1)).add_(start)

    upper = at(top, left)
    if need_right:
        upper = lerp_(upper, at(top, right), dx)
    if need_bottom:
        lower = at(bottom, left)
        if need_right:
            lower = lerp_(lower, at(bottom, right), dx)
        upper = lerp_(upper, lower, dy)
    return upper.floor_().to(torch.uint8)                             # ≥ 0, so floor = C's truncation


def _stack_coefficients(*columns: torch.Tensor) -> torch.Tensor:
    return torch.stack(columns, dim=1)


def shear_x(images: torch.Tensor, shear: float | torch.Tensor, resample: str = "nearest") -> torch.Tensor:
    """img.transform(size, AFFINE, (1, shear, 0, 0, 1, 0), resample)."""
    s = per_image(shear, images)
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return affine(images, _stack_coefficients(one, s, zero, zero, one, zero), resample)


def shear_y(images: torch.Tensor, shear: float | torch.Tensor, resample: str = "nearest") -> torch.Tensor:
    """img.transform(size, AFFINE, (1, 0, 0, shear, 1, 0), resample)."""
    s = per_image(shear, images)
    one, zero = torch.ones_like(s), torch.zeros_like(s)
    return affine(images, _stack_coefficients(one, zero, zero, s, one, zero), resample)


def translate_x(images: torch.Tensor, pixels: float | torch.Tensor, resample: str = "nearest") -> torch.Tensor:
    """img.transform(size, AFFINE, (1, 0, pixels, 0, 1, 0), resample): content moves left by `pixels`."""
    t = per_image(pixels, images)
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return affine(images, _stack_coefficients(one, zero, t, zero, one, zero), resample)


def translate_y(images: torch.Tensor, pixels: float | torch.Tensor, resample: str = "nearest") -> torch.Tensor:
    """img.transform(size, AFFINE, (1, 0, 0, 0, 1, pixels), resample): content moves up by `pixels`."""
    t = per_image(pixels, images)
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return affine(images, _stack_coefficients(one, zero, zero, zero, one, t), resample)


def rotation_coefficients(degrees: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The AFFINE data of img.rotate(degrees) (counter-clockwise about the centre, same size), B×6.

    Computed on the host in Python floats exactly as `Image.rotate` does (libm cos/sin rounded to 15
    decimals with Python's correctly rounded `round`): torch's `round(decimals=15)` differs in the last
    bit, which moves the sample point off a pixel centre by 1e-16 and flips a truncation now and then.
    """
    centre_x, centre_y = width / 2, height / 2
    rows = []
    for value in degrees.detach().to("cpu", torch.float64).tolist():
        angle = -math.radians(value % 360.0)
        cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
        rows.append((cos, sin, cos * -centre_x + sin * -centre_y + 0.0 + centre_x,
                     -sin, cos, -sin * -centre_x + cos * -centre_y + 0.0 + centre_y))
    return torch.tensor(rows, dtype=torch.float64).view(-1, 6).to(degrees.device)


def rotate(images: torch.Tensor, degrees: float | torch.Tensor, resample: str = "nearest") -> torch.Tensor:
    """img.rotate(degrees, resample): counter-clockwise about the centre, same size, corners filled 0."""
    coefficients = rotation_coefficients(per_image(degrees, images), images.shape[3], images.shape[2])
    return affine(images, coefficients, resample)


# ---------------------------------------------------------------------------------------------------
# Per-image dispatch

GEOMETRIC_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "rotate": rotate, "shear_x": shear_x, "shear_y": shear_y, "translate_x": translate_x, "translate_y": translate_y,
}
MAGNITUDE_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "posterize": posterize, "solarize": solarize, "color": color, "contrast": contrast,
    "brightness": brightness, "sharpness": sharpness,
}
PLAIN_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity, "autocontrast": autocontrast, "equalize": equalize, "invert": invert,
}
OP_NAMES: tuple[str, ...] = (*PLAIN_OPS, *MAGNITUDE_OPS, *GEOMETRIC_OPS)


def apply_op(name: str, images: torch.Tensor, magnitude: float | torch.Tensor = 0.0,
             resample: str = "nearest") -> torch.Tensor:
    """Op `name` (one of OP_NAMES) with one magnitude per image (ignored by magnitude-free ops)."""
    if name in GEOMETRIC_OPS:
        return GEOMETRIC_OPS[name](images, magnitude, resample)
    if name in MAGNITUDE_OPS:
        return MAGNITUDE_OPS[name](images, magnitude)
    if name in PLAIN_OPS:
        return PLAIN_OPS[name](images)
    raise UnknownNameError("augmentation op", name, OP_NAMES)


def check_per_image_arguments(images: torch.Tensor, op_names: Sequence[str], resample: str) -> None:
    """The checks both per-image paths rely on: a uint8 batch, a known resampling, known op names."""
    check_uint8_batch(images)
    _check_resample(resample)
    for name in op_names:
        if name not in OP_NAMES:
            raise UnknownNameError("augmentation op", name, OP_NAMES)


def apply_per_image_grouped(images: torch.Tensor, op_index: torch.Tensor, magnitude: torch.Tensor,
                            op_names: Sequence[str], resample: str = "nearest") -> torch.Tensor:
    """The grouped path of `corrbench.augment.per_image.apply_per_image` (checked arguments, op_index and
    float64 magnitudes on the images' device): images are sorted by op and every op runs once on its share
    of the batch (one host sync per call for the group sizes)."""
    order = torch.argsort(op_index, stable=True)
    counts = torch.bincount(op_index + 1, minlength=len(op_names) + 1).tolist()
    if counts[0] == len(op_index):
        return images.clone()                 # clone keeps the memory format
    # Results are produced in op order and put back with one row gather (faster than index_copy_).
    pieces = [images.index_select(0, order[:counts[0]])]
    start = counts[0]                         # the unchanged images sort first (index −1)
    for name, count in zip(op_names, counts[1:]):
        rows = order[start:start + count]
        if count:
            selected = images.index_select(0, rows)
            pieces.append(selected if name == "identity" else apply_op(name, selected, magnitude[rows], resample))
        start += count
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    out = torch.cat(pieces).index_select(0, inverse)
    if images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)      # keep the layout the engine chose
    return out
