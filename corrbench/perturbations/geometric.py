"""Geometric sequences: translate, rotate, scale, shear (spec B.2), through an exact emulation of
torchvision 0.2.x `affine` on PIL images, i.e. Pillow `Image.transform(size, AFFINE, matrix, resample)`.

The reference built these with torchvision 0.2.x (centre (w/2 + 0.5, h/2 + 0.5) and its shear matrix,
spec §0.6); newer torchvision versions give sub-pixel-shifted frames. Every frame's sampling grid is
shared by the whole batch, so a frame is four gathers and a few float64 operations.
"""
from __future__ import annotations

import math

import torch

from corrbench.corruptions.convert import working_dtype
from corrbench.perturbations.registry import FRAME_SIZE, register_perturbation

AffineCoefficients = tuple[float, float, float, float, float, float]


def torchvision02_inverse_affine(angle: float = 0.0, translate: tuple[float, float] = (0.0, 0.0),
                                 scale: float = 1.0, shear: float = 0.0,
                                 size: int = FRAME_SIZE) -> AffineCoefficients:
    """The inverse affine matrix (a0..a5) that torchvision 0.2.x `affine` hands to Pillow (spec B.2).

    Angles in degrees; centre (size/2 + 0.5, size/2 + 0.5); linear part (1/(k·d))·[[cos(a+s), sin(a+s)],
    [−sin a, cos a]] with d = cos(a+s)·cos a + sin(a+s)·sin a. Computed in torchvision's own operation
    order, so the doubles (and hence Pillow's samples) are the same bits.
    """
    centre = (size * 0.5 + 0.5, size * 0.5 + 0.5)
    angle, shear = math.radians(angle), math.radians(shear)
    inverse_scale = 1.0 / scale
    d = math.cos(angle + shear) * math.cos(angle) + math.sin(angle + shear) * math.sin(angle)
    m = [math.cos(angle + shear), math.sin(angle + shear), 0, -math.sin(angle), math.cos(angle), 0]
    m = [inverse_scale / d * v for v in m]
    m[2] += m[0] * (-centre[0] - translate[0]) + m[1] * (-centre[1] - translate[1])
    m[5] += m[3] * (-centre[0] - translate[0]) + m[4] * (-centre[1] - translate[1])
    m[2] += centre[0]
    m[5] += centre[1]
    return tuple(float(v) for v in m)  # type: ignore[return-value]


def affine_bilinear(images: torch.Tensor, coefficients: AffineCoefficients) -> torch.Tensor:
    """Pillow `transform(AFFINE, coefficients, BILINEAR)` of uint8 images B×3×S×S, zero fill.

    Output pixel (X, Y) samples the source at (xs, ys) = A·(X + 0.5, Y + 0.5) + b; outside [0, S)² it is
    0, otherwise bilinear around (xs − 0.5, ys − 0.5) with neighbour indices clamped to the image, in
    Pillow's order v = v₁ + (v₂ − v₁)·dy with vᵢ = p + (q − p)·dx, truncated (spec B.2; Pillow Geometry.c).
    """
    size = images.shape[-1]
    dtype = working_dtype(images.device)
    a0, a1, a2, a3, a4, a5 = coefficients
    centres = torch.arange(size, device=images.device, dtype=dtype) + 0.5
    x_in, y_in = centres.view(1, -1), centres.view(-1, 1)
    xs = a0 * x_in + a1 * y_in + a2
    ys = a3 * x_in + a4 * y_in + a5
    inside = (xs >= 0) & (xs < size) & (ys >= 0) & (ys < size)
    xs, ys = xs - 0.5, ys - 0.5
    x_floor, y_floor = torch.floor(xs), torch.floor(ys)
    dx, dy = xs - x_floor, ys - y_floor
    x0 = x_floor.long().clamp(0, size - 1)
    x1 = (x_floor.long() + 1).clamp(0, size - 1)
    y0 = y_floor.long().clamp(0, size - 1) * size
    y1 = (y_floor.long() + 1).clamp(0, size - 1) * size   # Pillow reuses the top row's value there: the same
    flat = images.reshape(*images.shape[:2], size * size)

    def pixels(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return flat.index_select(2, (rows + cols).view(-1)).to(dtype)

    top_left, top_right = pixels(y0, x0), pixels(y0, x1)
    bottom_left, bottom_right = pixels(y1, x0), pixels(y1, x1)
    top = top_left.add_((top_right - top_left).mul_(dx.view(-1)))
    bottom = bottom_left.add_((bottom_right - bottom_left).mul_(dx.view(-1)))
    value = top.add_((bottom - top).mul_(dy.view(-1))).floor_()
    return value.mul_(inside.view(-1)).to(torch.uint8).view(images.shape)


def translate_nearest(images: torch.Tensor, shift: int) -> torch.Tensor:
    """torchvision 0.2.x `affine(translate=(shift, 0))` with its default NEAREST resampling: the image moves
    `shift` px to the right, zero fill (`out[:, j] = img[:, j − shift]` where valid; spec B.2)."""
    moved = torch.zeros_like(images)
    size = images.shape[-1]
    if shift >= 0:
        moved[..., shift:] = images[..., :size - shift]
    else:
        moved[..., :size + shift] = images[..., -shift:]
    return moved


def _affine_videos(images: torch.Tensor, frames: list[AffineCoefficients]) -> torch.Tensor:
    videos = images.new_empty((images.shape[0], len(frames), *images.shape[1:]))
    for t, coefficients in enumerate(frames):
        videos[:, t] = affine_bilinear(images, coefficients)
    return videos


TRANSLATE_FRAMES = 16
ROTATE_FRAMES = SCALE_FRAMES = SHEAR_FRAMES = 31


def rotate_coefficients(t: int) -> AffineCoefficients:
    return torchvision02_inverse_affine(angle=t - 15, scale=1.0)


def scale_coefficients(t: int) -> AffineCoefficients:
    return torchvision02_inverse_affine(scale=(t * 2 + 70) / 100.0)


def shear_coefficients(t: int) -> AffineCoefficients:
    return torchvision02_inverse_affine(shear=t - 15, scale=1.0)


@register_perturbation("translate", frames=TRANSLATE_FRAMES, stochastic=False, clean_first=False,
                       schedule="horizontal shift by t − 7 px (−7…+8), NEAREST, zero fill")
def translate(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t shifts the image right by t − 7 px (frame 7 is the clean image)."""
    videos = images.new_empty((images.shape[0], TRANSLATE_FRAMES, *images.shape[1:]))
    for t in range(TRANSLATE_FRAMES):
        videos[:, t] = translate_nearest(images, t - 7)
    return videos


@register_perturbation("rotate", frames=ROTATE_FRAMES, stochastic=False, clean_first=False,
                       schedule="rotation by t − 15 degrees (−15…+15), bilinear, zero fill")
def rotate(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t is torchvision 0.2.x `affine(angle=t − 15, BILINEAR)` (frame 15 is the clean image)."""
    return _affine_videos(images, [rotate_coefficients(t) for t in range(ROTATE_FRAMES)])


@register_perturbation("scale", frames=SCALE_FRAMES, stochastic=False, clean_first=False,
                       schedule="zoom by (70 + 2t)/100 (0.70…1.30), bilinear, zero fill")
def scale(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t is `affine(scale=(2t + 70)/100, BILINEAR)` (frame 15 is the clean image); the
    reference's CenterCrop(32) is a no-op at 32 px."""
    return _affine_videos(images, [scale_coefficients(t) for t in range(SCALE_FRAMES)])


@register_perturbation("shear", frames=SHEAR_FRAMES, stochastic=False, clean_first=False,
                       schedule="shear by t − 15 degrees (−15…+15), bilinear, zero fill")
def shear(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t is torchvision 0.2.x `affine(shear=t − 15, BILINEAR)` (frame 15 is the clean image)."""
    return _affine_videos(images, [shear_coefficients(t) for t in range(SHEAR_FRAMES)])
