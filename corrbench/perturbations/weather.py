"""Weather-like sequences: snow and spatter (spec B.2). One random layer per image, drawn once; the
frames move it (snow: the motion-blur angle sweeps; spatter: the drops drip down a row per frame).

Injected draws are the standard-normal layer z, float B×32×32 (the reference's
`np.random.normal(size=(32, 32), loc=μ, scale=σ)` is μ + σ·z).
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide, to_uint8, to_unit, working_dtype
from corrbench.corruptions.motion import motion_blur
from corrbench.corruptions.spatter import liquid_layer, spatter_water
from corrbench.corruptions.zoom import clipped_zoom
from corrbench.perturbations.registry import register_perturbation, take_frame_draws


def _layer_draws(images: torch.Tensor, generator: torch.Generator | None, draws: torch.Tensor | None,
                 name: str) -> torch.Tensor:
    dtype = working_dtype(images.device)
    shape = (images.shape[0], *images.shape[2:])
    if draws is not None:
        return take_frame_draws(draws, images, shape, dtype, name, "draws (the standard-normal layer)")
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(images.device)


# ---------------------------------------------------------------------------------------------------
# snow

SNOW_FRAMES = 31
SNOW_MEAN, SNOW_STD, SNOW_ZOOM, SNOW_THRESHOLD = 0.05, 0.3, 2.0, 0.5
SNOW_RADIUS, SNOW_SIGMA, SNOW_KEEP = 10.0, 2.0, 0.85


def snow_angle(t: int) -> int:
    return t * 4 - 150


def snow_layer(z: torch.Tensor) -> torch.Tensor:
    """The uint8 snow layer B×1×S×S from standard-normal draws z B×S×S: trunc(255·clip(L, 0, 1)) with
    L = clipped_zoom(N(0.05, 0.3), 2) and L < 0.5 set to 0 (spec B.2)."""
    layer = clipped_zoom((SNOW_MEAN + SNOW_STD * z).unsqueeze(1), SNOW_ZOOM)
    layer = torch.where(layer < SNOW_THRESHOLD, 0.0, layer)
    return to_uint8(layer)


def snow_base(images: torch.Tensor) -> torch.Tensor:
    """`0.85·x + (1 − 0.85)·max(x, 1.5·gray + 0.5)` with x = img/255 (float64) and gray the float32
    `cvtColor(float32(x), RGB2GRAY)` = (0.299R + 0.587G) + 0.114B in float32 (G15; OpenCV's scalar order —
    its SIMD builds may differ in the last float32 bit); the frame-independent part of every snow frame."""
    x = to_unit(images)
    x32 = x.to(torch.float32)
    gray = (x32[:, 0:1] * 0.299 + x32[:, 1:2] * 0.587) + x32[:, 2:3] * 0.114
    lifted = (gray * 1.5 + 0.5).to(x.dtype)
    return SNOW_KEEP * x + (1 - SNOW_KEEP) * torch.maximum(x, lifted)


def snow_frame(base: torch.Tensor, streaks: torch.Tensor) -> torch.Tensor:
    """One snow frame: trunc(255·clip(base + Ls + rot180(Ls), 0, 1)) with Ls = streaks/255, streaks the
    motion-blurred uint8 layer B×1×S×S."""
    light = divide(streaks.to(base.dtype), 255.0)
    return to_uint8(base + light + torch.flip(light, dims=(-2, -1)))


@register_perturbation("snow", frames=SNOW_FRAMES, stochastic=True, clean_first=False,
                       schedule="one snow layer per image; motion blur r=10, σ=2 at angle 4t − 150 (−150…−30)")
def snow(images: torch.Tensor, *, generator: torch.Generator | None, draws: torch.Tensor | None) -> torch.Tensor:
    """B.2: layer N(0.05, 0.3) → clipped_zoom 2 → < 0.5 = 0 → uint8; frame t blurs it with the G8 motion
    blur (r 10, σ 2, angle 4t − 150) and composites it twice (as is and rotated by 180°).

    draws: the standard-normal layer z, float B×32×32.
    """
    layer = snow_layer(_layer_draws(images, generator, draws, "snow"))   # grey, B×1×S×S, like the reference's PNG
    base = snow_base(images)
    videos = images.new_empty((images.shape[0], SNOW_FRAMES, *images.shape[1:]))
    for t in range(SNOW_FRAMES):
        angles = torch.full((images.shape[0],), float(snow_angle(t)), device=images.device,
                            dtype=working_dtype(images.device))
        streaks = motion_blur(layer, SNOW_RADIUS, SNOW_SIGMA, angles)
        videos[:, t] = snow_frame(base, streaks)
    return videos


# ---------------------------------------------------------------------------------------------------
# spatter

SPATTER_FRAMES = 31
SPATTER_MEAN, SPATTER_STD, SPATTER_BLUR, SPATTER_THRESHOLD, SPATTER_INTENSITY = 0.6, 0.265, 1.75, 0.7, 0.6
DRIP_KEEP, DRIP_FROM_ABOVE = 0.2, 0.8


def spatter_liquid(z: torch.Tensor) -> torch.Tensor:
    """The initial liquid layer B×S×S (float) from standard-normal draws z: gaussian(N(0.6, 0.265), σ=1.75)
    (G1, 'nearest', truncate 4) with values < 0.7 set to 0 (spec B.2) — A.18's layer with -P constants."""
    return liquid_layer(z, SPATTER_MEAN, SPATTER_STD, SPATTER_BLUR, SPATTER_THRESHOLD)


def drip(liquid: torch.Tensor) -> torch.Tensor:
    """One frame of dripping: per column, L′[r] = 0.2·L[r] + 0.8·L[r − 1] with row −1 = 0 — the reference's
    `np.convolve(column, [0.2, 0.8], 'same')` (spec B.2)."""
    moved = liquid * DRIP_KEEP
    moved[..., 1:, :] += liquid[..., :-1, :] * DRIP_FROM_ABOVE
    return moved


@register_perturbation("spatter", frames=SPATTER_FRAMES, stochastic=True, clean_first=False,
                       schedule="water spatter (A.18 water branch, intensity 0.6); the drops drip one row per frame")
def spatter(images: torch.Tensor, *, generator: torch.Generator | None, draws: torch.Tensor | None) -> torch.Tensor:
    """B.2: frame t is the A.18 water branch with intensity 0.6 on the liquid layer L_t, where L_0 is
    `spatter_liquid(z)` and L_{t+1} = drip(L_t).

    draws: the standard-normal layer z, float B×32×32.
    """
    liquid = spatter_liquid(_layer_draws(images, generator, draws, "spatter"))
    videos = images.new_empty((images.shape[0], SPATTER_FRAMES, *images.shape[1:]))
    for t in range(SPATTER_FRAMES):
        videos[:, t] = spatter_water(images, liquid, SPATTER_INTENSITY)
        liquid = drip(liquid)
    return videos
