"""Noise sequences: gaussian_noise, shot_noise, speckle_noise (spec B.2). Frame 0 is the clean image;
frames 1..30 carry fresh noise each. The difficulty (1, 2, 3) picks the noise strength.

Injected draws have the layout B×30×3×32×32: `draws[b, t - 1]` is frame t's per-pixel draw for image b.
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide, to_uint8, to_unit, working_dtype
from corrbench.corruptions.draws import poisson
from corrbench.perturbations.registry import register_perturbation, take_frame_draws

NOISE_FRAMES = 31
GAUSSIAN_NOISE_SIGMA = (0.02, 0.04, 0.06)    # by difficulty 1, 2, 3
SHOT_NOISE_RATE = (700, 400, 200)
SPECKLE_NOISE_SIGMA = (0.05, 0.07, 0.10)


def _draw_shape(images: torch.Tensor) -> tuple[int, ...]:
    return (images.shape[0], NOISE_FRAMES - 1, *images.shape[1:])


def _videos_from_clean(images: torch.Tensor) -> torch.Tensor:
    videos = images.new_empty((images.shape[0], NOISE_FRAMES, *images.shape[1:]))
    videos[:, 0] = images
    return videos


@register_perturbation("gaussian_noise", frames=NOISE_FRAMES, stochastic=True, clean_first=True,
                       schedule="t≥1: trunc(255·clamp(x + σ·ε_t, 0, 1)) in float32, σ = 0.02/0.04/0.06")
def gaussian_noise(images: torch.Tensor, *, generator: torch.Generator | None, draws: torch.Tensor | None,
                   difficulty: int) -> torch.Tensor:
    """B.2: x = ToTensor(img) (float32); frame t ≥ 1 is `to_numpy(clamp(x + σ·randn_like(x), 0, 1))`,
    i.e. trunc(float32 ·255), all in float32 as the reference's torch code.

    draws: ε, float32 B×30×3×32×32 standard normal.
    """
    sigma = GAUSSIAN_NOISE_SIGMA[difficulty - 1]
    if draws is not None:
        draws = take_frame_draws(draws, images, _draw_shape(images), torch.float32, "gaussian_noise", "draws")
    x = divide(images.float(), 255.0)
    videos = _videos_from_clean(images)
    for t in range(1, NOISE_FRAMES):
        eps = (torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32).to(x.device)
               if draws is None else draws[:, t - 1])
        noisy = torch.clamp(x + sigma * eps, 0, 1)
        videos[:, t] = noisy.mul_(255).floor_().to(torch.uint8)
    return videos


@register_perturbation("shot_noise", frames=NOISE_FRAMES, stochastic=True, clean_first=True,
                       schedule="t≥1: trunc(255·clip(Poisson(c·x)/c, 0, 1)), c = 700/400/200")
def shot_noise(images: torch.Tensor, *, generator: torch.Generator | None, draws: torch.Tensor | None,
               difficulty: int) -> torch.Tensor:
    """B.2: x = img/255 (float64); frame t ≥ 1 is trunc(255·clip(k_t/c, 0, 1)), k_t ~ Poisson(c·x).

    draws: the Poisson counts k, B×30×3×32×32. torch.poisson matches NumPy's in distribution only.
    """
    rate = SHOT_NOISE_RATE[difficulty - 1]
    dtype = working_dtype(images.device)
    if draws is not None:
        draws = take_frame_draws(draws, images, _draw_shape(images), dtype, "shot_noise", "draws")
    mean = to_unit(images) * rate
    videos = _videos_from_clean(images)
    for t in range(1, NOISE_FRAMES):
        counts = poisson(mean, generator) if draws is None else draws[:, t - 1]
        videos[:, t] = to_uint8(divide(counts, rate))
    return videos


@register_perturbation("speckle_noise", frames=NOISE_FRAMES, stochastic=True, clean_first=True,
                       schedule="t≥1: trunc(255·clip(x + x·σ·z_t, 0, 1)), σ = 0.05/0.07/0.10")
def speckle_noise(images: torch.Tensor, *, generator: torch.Generator | None, draws: torch.Tensor | None,
                  difficulty: int) -> torch.Tensor:
    """B.2: x = img/255 (float64); frame t ≥ 1 is trunc(255·clip(x + x·N(0, σ), 0, 1)).

    draws: z, float B×30×3×32×32 standard normal (the reference's `normal(scale=σ)` is σ·z).
    """
    sigma = SPECKLE_NOISE_SIGMA[difficulty - 1]
    dtype = working_dtype(images.device)
    if draws is not None:
        draws = take_frame_draws(draws, images, _draw_shape(images), dtype, "speckle_noise", "draws")
    x = to_unit(images)
    videos = _videos_from_clean(images)
    for t in range(1, NOISE_FRAMES):
        z = (torch.randn(x.shape, generator=generator, device=generator.device, dtype=dtype).to(x.device)
             if draws is None else draws[:, t - 1])
        videos[:, t] = to_uint8(x + x * (sigma * z))
    return videos
