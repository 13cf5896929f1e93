"""MNIST-C glass_blur and motion_blur (spec C rows 3–4)."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide
from corrbench.corruptions.filters import _correlate_symmetric_nearest, gaussian_taps
from corrbench.corruptions.motion import motion_blur as magick_motion_blur
from corrbench.corruptions.motion import motion_blur_angles, take_angles
from corrbench.mnistc.registry import SIDE, check_draws, register_digit, round_to_uint8

GLASS_SIGMA, GLASS_DELTA, GLASS_ITERATIONS = 0.7, 1, 2   # severity 1 of the ImageNet table
VISITED = SIDE - 2 * GLASS_DELTA                          # h, w scan 27 … 2: 26 positions each
MOTION_RADIUS, MOTION_SIGMA = 10, 3                       # severity 1: kernel width 21


def blur_rows(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage `gaussian(x, σ, multichannel=True)` on a 2-D image B×H×W: the last axis is taken for
    channels, so only axis 0 (rows) is blurred ('nearest' border, truncate 4) — spec G1's trap."""
    return _correlate_symmetric_nearest(x.unsqueeze(1), gaussian_taps(float(sigma)), 2).squeeze(1)


def draw_glass(digits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(coins bool B×2×26×26, offsets int64 B×2×26×26×2 as (dx, dy) in {−1, 0})."""
    b, device = digits.shape[0], generator.device  # drawn on the generator's device (CPU: same on all)
    coins = torch.rand((b, GLASS_ITERATIONS, VISITED, VISITED), generator=generator, device=device) < 0.5
    offsets = torch.randint(-GLASS_DELTA, GLASS_DELTA, (b, GLASS_ITERATIONS, VISITED, VISITED, 2),
                            generator=generator, device=device)
    return coins.to(digits.device), offsets.to(digits.device)


@register_digit("glass_blur", stochastic=True, parameters="(σ 0.7, δ 1, 2 passes), each visit swaps with p = 0.5",
                draws="(coins bool B×2×26×26, offsets int B×2×26×26×2 as (dx, dy) ∈ {−1,0}); index [b, pass, i, j] "
                      "is the visit of (h, w) = (27 − i, 27 − j); offsets are ignored where the coin is False")
def glass_blur(digits: torch.Tensor, *, generator: torch.Generator | None = None,
               draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """v = trunc(255·blur_rows(u/255)); then per pass, h and w descending 27 … 2, with probability ½
    swap v[h, w] ↔ v[h + dy, w + dx] (on a 2-D array the reference's tuple assignment is a true swap,
    unlike the 3-channel CIFAR version); finally round(255·clip(blur_rows(v/255), 0, 1))."""
    b = digits.shape[0]
    if draws is None:
        coins, offsets = draw_glass(digits, generator)
    else:
        if not isinstance(draws, (tuple, list)) or len(draws) != 2:
            raise ValueError("glass_blur: draws must be a pair (coins, offsets)")
        coins = check_draws(draws[0], (b, GLASS_ITERATIONS, VISITED, VISITED), "glass_blur", "coins").bool()
        offsets = check_draws(draws[1], (b, GLASS_ITERATIONS, VISITED, VISITED, 2), "glass_blur", "offsets").long()
    coins, offsets = coins.to(digits.device), offsets.to(digits.device)
    first = blur_rows(divide(digits.to(torch.float64), 255.0), GLASS_SIGMA).mul_(255.0).floor_().to(torch.uint8)
    v = first.reshape(b, SIDE * SIDE).clone()
    rows = torch.arange(b, device=digits.device)
    # The swaps are sequential within an image (a value can travel up-left across visits), so the
    # scan runs in Python over the 1,352 visits, each one batched over the images.
    for step in range(GLASS_ITERATIONS):
        source_flat = ((offsets[:, step, :, :, 1] + torch.arange(SIDE - 1, GLASS_DELTA, -1, device=digits.device)
                        .view(1, VISITED, 1)) * SIDE
                       + offsets[:, step, :, :, 0] + torch.arange(SIDE - 1, GLASS_DELTA, -1, device=digits.device)
                       .view(1, 1, VISITED)).reshape(b, -1)
        swap = coins[:, step].reshape(b, -1)
        for visit in range(VISITED * VISITED):
            target = (SIDE - 1 - visit // VISITED) * SIDE + (SIDE - 1 - visit % VISITED)
            source = source_flat[:, visit]
            here, there = v[:, target].clone(), v[rows, source]
            on = swap[:, visit]
            v[:, target] = torch.where(on, there, here)
            v[rows, source] = torch.where(on, here, v[rows, source])
    y = blur_rows(divide(v.view(b, SIDE, SIDE).to(torch.float64), 255.0), GLASS_SIGMA)
    return round_to_uint8(y.clamp_(0.0, 1.0) * 255.0)


@register_digit("motion_blur", stochastic=True, parameters="ImageMagick motion blur (radius 10, σ 3), θ ~ U(−45°, 45°)",
                draws="angles θ in degrees, float [B]")
def motion_blur(digits: torch.Tensor, *, generator: torch.Generator | None = None,
                draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec G8 on the grey layer (the reference's PNG round trip through ImageMagick); already uint8."""
    layers = digits.unsqueeze(1)
    angles = (motion_blur_angles(layers, generator, -45.0, 45.0) if draws is None
              else take_angles(draws, layers, "motion_blur"))
    return magick_motion_blur(layers, MOTION_RADIUS, MOTION_SIGMA, angles).squeeze(1)
