"""`apply_per_image` without host synchronisation: every image's op in a few batch-wide kernels.

The grouped path (`ops.apply_per_image_grouped`) sorts the images by op and runs each op on its share, which
needs the group sizes on the host (one device→host sync per call, and one small launch sequence per
op). On an accelerator this path is used instead; it gives the same bytes (tests compare both):

- point ops (identity, invert, posterize, solarize, autocontrast, equalize, brightness, contrast) are
  per-image, per-channel 256-entry lookup tables: every op's table is computed for every image (the
  tables are B×C×256, far smaller than the images), each image keeps the table of the op it drew, and
  one gather applies them;
- geometric ops (rotate, shear, translate) are one affine map per image: each image gets its op's
  coefficients (the identity for the others) and one `affine` call transforms the whole batch (the
  identity samples pixel centres exactly, so untouched images come out unchanged);
- color and sharpness (which read the luminance or the neighbours) run on the whole batch and are
  selected per image.

Each LUT reproduces its op's arithmetic on the 256 input levels, with the op's per-image statistics
(min/max, histogram, mean luminance) taken from the image, so a value maps exactly as the op maps it.
Rotations use a table of coefficients computed on the host once per set of possible angles.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch

from corrbench.augment import ops

POINT_OPS = ("identity", "invert", "posterize", "solarize", "autocontrast", "equalize", "brightness", "contrast")
PIXEL_OPS = ("color", "sharpness")
NEUTRAL = {"posterize": 8.0, "solarize": 256.0, "brightness": 1.0, "contrast": 1.0, "color": 1.0, "sharpness": 1.0,
           "rotate": 0.0, "shear_x": 0.0, "shear_y": 0.0, "translate_x": 0.0, "translate_y": 0.0}


def _levels(images: torch.Tensor) -> torch.Tensor:
    """The 256 input levels as a uint8 'image' B×C×1×256 (one row per image and channel)."""
    batch, channels = images.shape[:2]
    return torch.arange(256, device=images.device, dtype=torch.uint8).expand(batch, channels, 1, 256)


def point_lut(name: str, images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """Op `name`'s lookup table per image and channel, B×C×256 uint8 (magnitude: one per image)."""
    levels = _levels(images)
    if name == "identity":
        lut = levels
    elif name == "invert":
        lut = ops.invert(levels)
    elif name == "posterize":
        mask = (256 - (1 << (8 - magnitude.to(torch.int64)))).to(torch.uint8)
        lut = levels & mask.view(-1, 1, 1, 1)
    elif name == "solarize":
        lut = torch.where(levels.to(torch.float64) < magnitude.view(-1, 1, 1, 1), levels, 255 - levels)
    elif name == "brightness":
        lut = ops.blend(torch.zeros_like(levels), levels, magnitude)
    elif name == "contrast":
        luma = ops.luminance(images)
        total = luma.sum(dim=(1, 2, 3), dtype=torch.int64).to(torch.float64)
        mean = total / torch.full_like(total, luma[0].numel())
        grey = (mean + 0.5).floor().to(torch.uint8)
        lut = ops.blend(grey.view(-1, 1, 1, 1).expand_as(levels), levels, magnitude)
    elif name == "autocontrast":
        low = images.amin(dim=(2, 3), keepdim=True).to(torch.float64)
        high = images.amax(dim=(2, 3), keepdim=True).to(torch.float64)
        flat = high <= low
        spread = torch.where(flat, 1.0, high - low)
        scale = torch.full_like(spread, 255.0) / spread
        offset = -low * scale
        stretched = (levels.to(torch.float64) * scale + offset).trunc().clamp(0, 255).to(torch.uint8)
        lut = torch.where(flat, levels, stretched)
    elif name == "equalize":
        lut = ops.equalize_lut(images).to(torch.uint8).view(images.shape[0], images.shape[1], 1, 256)
    else:
        raise ValueError(f"{name} is not a point op")
    return lut.reshape(images.shape[0], images.shape[1], 256)


@functools.lru_cache(maxsize=64)
def _rotation_table(angles: tuple[float, ...], width: int, height: int,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted angles, their `Image.rotate` coefficients), computed on the host once (exactly as
    `ops.rotation_coefficients`) and kept on `device`."""
    ordered = torch.tensor(sorted(set(angles) | {0.0}), dtype=torch.float64)
    return ordered.to(device), ops.rotation_coefficients(ordered, width, height).to(device)


def rotation_lookup(degrees: torch.Tensor, angles: Sequence[float], width: int, height: int) -> torch.Tensor:
    """`ops.rotation_coefficients(degrees, width, height)` by table lookup on the device (no sync).

    Every value of `degrees` must be one of `angles` (the caller's finite set of possible angles)."""
    table_angles, table = _rotation_table(tuple(float(a) for a in angles), width, height, degrees.device)
    index = torch.searchsorted(table_angles, degrees.to(torch.float64).contiguous())
    return table.index_select(0, index.clamp(max=table.shape[0] - 1))


def geometric_coefficients(name: str, magnitude: torch.Tensor, width: int, height: int,
                           rotation_angles: Sequence[float] | None) -> torch.Tensor:
    """B×6 AFFINE data of a geometric op with one magnitude per image."""
    one, zero = torch.ones_like(magnitude), torch.zeros_like(magnitude)
    if name == "rotate":
        if rotation_angles is None:
            return ops.rotation_coefficients(magnitude, width, height)   # host path: one sync
        return rotation_lookup(magnitude, rotation_angles, width, height)
    columns = {"shear_x": (one, magnitude, zero, zero, one, zero), "shear_y": (one, zero, zero, magnitude, one, zero),
               "translate_x": (one, zero, magnitude, zero, one, zero),
               "translate_y": (one, zero, zero, zero, one, magnitude)}[name]
    return torch.stack(columns, dim=1)


def apply_per_image_fused(images: torch.Tensor, op_index: torch.Tensor, magnitude: torch.Tensor,
                          op_names: Sequence[str], resample: str = "nearest",
                          rotation_angles: Sequence[float] | None = None) -> torch.Tensor:
    """Same result as `ops.apply_per_image_grouped` (whose checks the caller has run), without a host sync
    when `rotation_angles` lists every angle a rotate may get (else one sync for the rotations)."""
    batch, channels, height, width = images.shape
    device = images.device
    out = images
    point = [(i, name) for i, name in enumerate(op_names) if name in POINT_OPS and name != "identity"]
    if point:
        lut = point_lut("identity", images, magnitude)
        for i, name in point:
            chosen = op_index == i
            value = torch.where(chosen, magnitude, torch.full_like(magnitude, NEUTRAL.get(name, 0.0)))
            lut = torch.where(chosen.view(-1, 1, 1), point_lut(name, images, value), lut)
        flat = images.reshape(batch, channels, height * width).long()
        out = lut.gather(2, flat).view(batch, channels, height, width)
    geometric = [(i, name) for i, name in enumerate(op_names) if name in ops.GEOMETRIC_OPS]
    if geometric:
        coefficients = torch.zeros(batch, 6, dtype=torch.float64, device=device)
        coefficients[:, 0] = 1.0   # the identity map (a = e = 1)
        coefficients[:, 4] = 1.0
        for i, name in geometric:
            chosen = op_index == i
            value = torch.where(chosen, magnitude, torch.zeros_like(magnitude))
            coefficients = torch.where(chosen[:, None],
                                       geometric_coefficients(name, value, width, height, rotation_angles), coefficients)
        out = ops.affine(out, coefficients, resample, sync_free=True)
    for i, name in enumerate(op_names):
        if name in PIXEL_OPS:
            chosen = op_index == i
            value = torch.where(chosen, magnitude, torch.ones_like(magnitude))
            out = torch.where(chosen.view(-1, 1, 1, 1), ops.MAGNITUDE_OPS[name](images, value), out)
    return out


def rotation_angles_for_integer_degrees(max_degrees: float) -> tuple[float, ...]:
    """Every whole angle in [−max, max] (AugMix's rotate draws ±int(level·30/10) degrees)."""
    top = int(math.floor(max_degrees))
    return tuple(float(a) for a in range(-top, top + 1))
