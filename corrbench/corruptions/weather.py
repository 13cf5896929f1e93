"""Weather corruptions (spec A.8–A.11, A.18): brightness (deterministic), frost and fog (stochastic).

Frost and fog draw per image from an explicit generator, or take injected draws (spec D.4).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from corrbench.corruptions.chunks import map_chunks
from corrbench.corruptions.convert import to_unit, to_uint8, working_dtype
from corrbench.corruptions.frost_textures import USED_TEXTURES, texture_sizes, texture_stack
from corrbench.corruptions.hsv import hsv_to_rgb_parts, rgb_to_hsv_parts
from corrbench.corruptions.plasma import plasma_fractal, plasma_uniform_count
from corrbench.corruptions.registry import register

BRIGHTNESS_SHIFT = {
    "cifar": (0.05, 0.1, 0.15, 0.2, 0.3),
    "tiny": (0.1, 0.2, 0.3, 0.4, 0.5),
    "imagenet": (0.1, 0.2, 0.3, 0.4, 0.5),
}


@register("brightness", stochastic=False, table=BRIGHTNESS_SHIFT,
          parameters="c added to the HSV value V (clipped to [0, 1])", spec="A.11")
def brightness(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.11: rgb2hsv(x), V ← clip(V + c, 0, 1), hsv2rgb, clip, ×255, truncate (G10 op order)."""
    shift = BRIGHTNESS_SHIFT[scale][severity - 1]
    hue, saturation, value = rgb_to_hsv_parts(to_unit(images))
    return to_uint8(hsv_to_rgb_parts(hue, saturation, (value + shift).clamp_(0.0, 1.0)))


# ---- frost (spec A.9) -------------------------------------------------------------------------------

FROST_MIX = {
    "cifar": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "tiny": ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
    "imagenet": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
}


class FrostDraws(NamedTuple):
    """The draws of frost per image, in the reference's order (spec A.9 step 1 and 4).

    texture: B int64 in 0..4 (`randint(5)`: frost6 is never used); row: B, the crop's top in
    [0, H′ − H); col: B, the crop's left in [0, W′ − W), with H′×W′ the chosen texture's rescaled size
    and H×W the images' (S×S at the scale's own side). A texture no larger than the image offers one
    offset, 0, and is tiled (wraps around) under the crop.
    """

    texture: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor


def _crop_ranges(scale: str, height: int, width: int) -> tuple[list[int], list[int]]:
    sizes = texture_sizes(scale)
    return [max(1, h - height) for h, _ in sizes], [max(1, w - width) for _, w in sizes]


def draw_frost(images: torch.Tensor, scale: str, generator: torch.Generator) -> FrostDraws:
    """Independent frost draws for every image: a texture index, then the crop's row and column.

    An offset uniform on [0, n) for each image's own n is one draw on [0, L) with L the least
    common multiple of the five n, reduced mod n: exactly uniform, and one batched call.
    """
    batch, device = images.shape[0], generator.device
    row_ranges, col_ranges = _crop_ranges(scale, *images.shape[-2:])
    texture = torch.randint(0, USED_TEXTURES, (batch,), generator=generator, device=device)
    offsets = []
    for ranges in (row_ranges, col_ranges):
        wide = torch.randint(0, math.lcm(*ranges), (batch,), generator=generator, device=device)
        offsets.append(wide % torch.tensor(ranges, device=device)[texture])
    return FrostDraws(*(d.to(images.device) for d in (texture, *offsets)))


def _take_frost_draws(draws: object, images: torch.Tensor, scale: str) -> FrostDraws:
    batch = images.shape[0]
    if (not isinstance(draws, (tuple, list)) or len(draws) != 3
            or any(not isinstance(d, torch.Tensor) or tuple(d.shape) != (batch,) or d.is_floating_point()
                   for d in draws)):
        raise ValueError(f"frost: draws must be FrostDraws(texture, row, col), three integer tensors "
                         f"of shape ({batch},)")
    texture, row, col = (d.to(device=images.device, dtype=torch.int64) for d in draws)
    if bool(((texture < 0) | (texture >= USED_TEXTURES)).any()):
        raise ValueError(f"frost: texture indices must be in 0..{USED_TEXTURES - 1} "
                         f"(the reference's randint(5))")
    row_ranges, col_ranges = (torch.tensor(r, device=images.device) for r in _crop_ranges(scale, *images.shape[-2:]))
    if bool(((row < 0) | (row >= row_ranges[texture]) | (col < 0) | (col >= col_ranges[texture])).any()):
        raise ValueError(f"frost: crop offsets must satisfy 0 ≤ row < H′ − {images.shape[-2]} and "
                         f"0 ≤ col < W′ − {images.shape[-1]} for the chosen texture (sizes {texture_sizes(scale)})")
    return FrostDraws(texture, row, col)


@register("frost", stochastic=True, table=FROST_MIX,
          parameters="(c0, c1): c0·image + c1·frost texture crop, on the 0..255 scale", spec="A.9")
def frost(images: torch.Tensor, severity: int, *, scale: str,
          generator: torch.Generator | None = None, draws: FrostDraws | None = None) -> torch.Tensor:
    """Spec A.9: trunc(clip(c0·u + c1·F, 0, 255)), F an S×S (H×W) crop of one of the first five frost
    textures rescaled for the scale (×0.2 CIFAR, ×0.3 Tiny, none ImageNet), per image.

    draws: `FrostDraws(texture, row, col)` (see `draw_frost`).
    """
    image_weight, frost_weight = FROST_MIX[scale][severity - 1]
    draws = draw_frost(images, scale, generator) if draws is None else _take_frost_draws(draws, images, scale)
    blend = functools.partial(_frost_blend, scale=scale, weights=(image_weight, frost_weight))
    return map_chunks(blend, images, draws)


def _frost_blend(images: torch.Tensor, draws: FrostDraws, *, scale: str,
                 weights: tuple[float, float]) -> torch.Tensor:
    textures = texture_stack(scale, images.device)
    _, _, height, width = textures.shape
    image_h, image_w = images.shape[-2:]
    sizes = texture_sizes(scale)
    if all(h > image_h and w > image_w for h, w in sizes):  # the crop lies inside every texture
        start = (draws.texture * 3 * height + draws.row) * width + draws.col  # flat index of each crop's corner
        offsets = _crop_offsets(image_h, image_w, height, width, images.device)
        crops = torch.take(textures, start[:, None, None, None] + offsets)
    else:  # an image larger than some texture: that texture tiles the crop (rows, columns wrap)
        texture_h, texture_w = (torch.tensor(s, device=images.device)[draws.texture] for s in zip(*sizes))
        rows = (draws.row[:, None] + torch.arange(image_h, device=images.device)) % texture_h[:, None]
        cols = (draws.col[:, None] + torch.arange(image_w, device=images.device)) % texture_w[:, None]
        channel = torch.arange(3, device=images.device)[None, :, None, None]
        index = (((draws.texture[:, None, None, None] * 3 + channel) * height + rows[:, None, :, None]) * width
                 + cols[:, None, None, :])
        crops = torch.take(textures, index)
    # y depends only on the pair (u, F): look it up in the 256×256 table of the reference's float64 result
    table = _frost_table(*weights, images.device)
    return torch.take(table, (images.to(torch.int64) << 8) | crops.to(torch.int64))


@functools.lru_cache(maxsize=None)
def _crop_offsets(crop_h: int, crop_w: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Flat offsets (3×h×w) of an h×w crop in a 3×H×W texture, relative to its top-left corner."""
    offsets = (torch.arange(3)[:, None, None] * height * width + torch.arange(crop_h)[:, None] * width
               + torch.arange(crop_w)[None, :])
    return offsets.to(device)


@functools.lru_cache(maxsize=None)
def _frost_table(image_weight: float, frost_weight: float, device: torch.device) -> torch.Tensor:
    """uint8 table of 65536: entry 256·u + F is trunc(clip(c0·u + c1·F, 0, 255)) in float64."""
    values = torch.arange(256, dtype=torch.float64)
    mixed = image_weight * values[:, None] + frost_weight * values[None, :]
    return mixed.clamp_(0.0, 255.0).floor_().to(torch.uint8).reshape(-1).to(device)


# ---- fog (spec A.10) ----------------------------------------------------------------------------------

FOG_STRENGTH_DECAY = {
    "cifar": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "tiny": ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
    "imagenet": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
}

PLASMA_MAPSIZE = {"cifar": 32, "tiny": 64, "imagenet": 256}
"""Side of the plasma map per scale; ImageNet's 256 map is cropped to 224 (spec A.10)."""


def fog_mapsize(scale: str, height: int, width: int) -> int:
    """The scale's plasma map side, or the next power of two covering a longer image side (as
    imagecorruptions does for images of any size); the map is cropped to H×W."""
    mapsize = PLASMA_MAPSIZE[scale]
    while mapsize < max(height, width):
        mapsize *= 2
    return mapsize


def draw_fog(images: torch.Tensor, scale: str, generator: torch.Generator) -> torch.Tensor:
    """The plasma uniforms of every image: B×(mapsize² − 1) U[0, 1) in the working dtype."""
    count = plasma_uniform_count(fog_mapsize(scale, *images.shape[-2:]))
    return torch.rand(images.shape[0], count, generator=generator, device=generator.device,
                      dtype=working_dtype(images.device)).to(images.device)


@register("fog", stochastic=True, table=FOG_STRENGTH_DECAY,
          parameters="(a, decay): fog strength and the plasma fractal's wibble decay", spec="A.10")
def fog(images: torch.Tensor, severity: int, *, scale: str,
        generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.10: x = u/255, M = max x per image; x += a·P (the same plasma P on all channels);
    trunc(255·clip(x·M/(M + a), 0, 1)). Each image has its own plasma map (G7).

    draws: the plasma uniforms, B×(mapsize² − 1) U[0, 1) in the order `plasma.py` documents.
    """
    strength, decay = FOG_STRENGTH_DECAY[scale][severity - 1]
    mapsize = fog_mapsize(scale, *images.shape[-2:])
    if draws is None:
        uniforms = draw_fog(images, scale, generator)
    else:
        expected = (images.shape[0], plasma_uniform_count(mapsize))
        if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != expected:
            raise ValueError(f"fog: draws must be the plasma uniforms, a tensor of shape {expected}")
        uniforms = draws.to(device=images.device, dtype=working_dtype(images.device))
    return map_chunks(functools.partial(_fog, strength=strength, decay=decay, mapsize=mapsize), images, uniforms)


def _fog(images: torch.Tensor, uniforms: torch.Tensor, *, strength: float, decay: float,
         mapsize: int) -> torch.Tensor:
    plasma = plasma_fractal(uniforms, mapsize, decay)[:, None, :images.shape[-2], :images.shape[-1]]
    x = to_unit(images)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    x += strength * plasma
    return to_uint8(x.mul_(peak).div_(peak + strength))
