"""Blur sequences: motion_blur, zoom_blur, gaussian_blur (spec B.2)."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide, to_uint8, to_unit, working_dtype
from corrbench.corruptions.filters import gaussian_filter_nearest
from corrbench.corruptions.motion import motion_blur as magick_motion_blur
from corrbench.perturbations.geometric import affine_bilinear, torchvision02_inverse_affine
from corrbench.perturbations.registry import register_perturbation

MOTION_BLUR_FRAMES = 21
MOTION_BLUR_RADIUS, MOTION_BLUR_SIGMA = 6.0, 1.8


def motion_blur_angle(t: int) -> int:
    return (t - 20) * 9


@register_perturbation("motion_blur", frames=MOTION_BLUR_FRAMES, stochastic=False, clean_first=False,
                       schedule="ImageMagick motion blur r=6, σ=1.8, angle 9·(t − 20) degrees (−180…0)")
def motion_blur(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t (0..20) is the G8 motion blur with radius 6, σ 1.8, angle 9·(t − 20); no clean frame."""
    videos = images.new_empty((images.shape[0], MOTION_BLUR_FRAMES, *images.shape[1:]))
    for t in range(MOTION_BLUR_FRAMES):
        angles = torch.full((images.shape[0],), float(motion_blur_angle(t)), device=images.device,
                            dtype=working_dtype(images.device))
        videos[:, t] = magick_motion_blur(images, MOTION_BLUR_RADIUS, MOTION_BLUR_SIGMA, angles)
    return videos


ZOOM_BLUR_FRAMES = 31


def zoom_coefficients(t: int) -> tuple[float, ...]:
    return torchvision02_inverse_affine(scale=1 + 0.004 * t)


@register_perturbation("zoom_blur", frames=ZOOM_BLUR_FRAMES, stochastic=False, clean_first=True,
                       schedule="running mean of the image zoomed by 1 + 0.004·j, j = 0..t (float32)")
def zoom_blur(images: torch.Tensor) -> torch.Tensor:
    """B.2: z₀ = img, z_j = torchvision 0.2.x `affine(scale=1 + 0.004·j, BILINEAR)`; frame t is
    `ToPILImage(Σ_{j≤t} ToTensor(z_j) / (t + 1))`, i.e. trunc(255·mean) with the running sum, the division
    and the ×255 in float32, as the reference's torch code."""
    videos = images.new_empty((images.shape[0], ZOOM_BLUR_FRAMES, *images.shape[1:]))
    videos[:, 0] = images
    running_sum = divide(images.float(), 255.0)
    for t in range(1, ZOOM_BLUR_FRAMES):
        zoomed = affine_bilinear(images, zoom_coefficients(t))
        running_sum += divide(zoomed.float(), 255.0)
        videos[:, t] = divide(running_sum, t + 1).mul_(255).floor_().to(torch.uint8)
    return videos


GAUSSIAN_BLUR_FRAMES = 31
GAUSSIAN_BLUR_TRUNCATE = 7.0


def gaussian_blur_sigma(t: int) -> float:
    return 0.3 + 0.015 * t


@register_perturbation("gaussian_blur", frames=GAUSSIAN_BLUR_FRAMES, stochastic=False, clean_first=False,
                       schedule="Gaussian blur σ = 0.3 + 0.015·t (0.30…0.75), truncate 7, 'nearest' border")
def gaussian_blur(images: torch.Tensor) -> torch.Tensor:
    """B.2: frame t is trunc(255·gaussian(img/255, σ_t, truncate=7)) (G1, bit-identical to scipy)."""
    x = to_unit(images)
    videos = images.new_empty((images.shape[0], GAUSSIAN_BLUR_FRAMES, *images.shape[1:]))
    for t in range(GAUSSIAN_BLUR_FRAMES):
        # The reference does not clip; the blur of [0, 1] values stays in [0, 1], so to_uint8's clip is inert.
        videos[:, t] = to_uint8(gaussian_filter_nearest(x, gaussian_blur_sigma(t), GAUSSIAN_BLUR_TRUNCATE))
    return videos
