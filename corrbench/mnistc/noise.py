"""MNIST-C shot_noise and impulse_noise (spec C rows 1–2: A.2 / A.3 at the ImageNet constants, severity 5 / 4)."""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide
from corrbench.corruptions.draws import poisson
from corrbench.mnistc.registry import check_draws, register_digit, round_to_uint8

SHOT_NOISE_RATE = 3        # severity 5 of [60, 25, 12, 5, 3]
IMPULSE_NOISE_AMOUNT = 0.17  # severity 4 of [.03, .06, .09, .17, .27]


@register_digit("shot_noise", stochastic=True, parameters="Poisson(3x)/3",
                draws="Poisson counts k, B×28×28")
def shot_noise(digits: torch.Tensor, *, generator: torch.Generator | None = None,
               draws: torch.Tensor | None = None) -> torch.Tensor:
    """round(255·clip(k/3, 0, 1)), k ~ Poisson(3·u/255) per pixel."""
    x = divide(digits.to(torch.float64), 255.0)
    if draws is None:
        counts = poisson((x * SHOT_NOISE_RATE).float(), generator).to(torch.float64)
    else:
        counts = check_draws(draws, digits.shape, "shot_noise", "the Poisson counts").to(x)
    return round_to_uint8(divide(counts, float(SHOT_NOISE_RATE)).clamp_(0.0, 1.0) * 255.0)


@register_digit("impulse_noise", stochastic=True, parameters="salt & pepper, amount 0.17",
                draws="(flip, salt): two U[0,1) tensors B×28×28; replaced where flip ≤ 0.17, by 255 where salt ≤ 0.5")
def impulse_noise(digits: torch.Tensor, *, generator: torch.Generator | None = None,
                  draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """scikit-image `random_noise(x, 's&p', amount=0.17)`: survivors come back unchanged (u/255·255 rounds to u)."""
    if draws is None:
        flip = torch.rand(digits.shape, generator=generator, device=generator.device).to(digits.device)
        salt = torch.rand(digits.shape, generator=generator, device=generator.device).to(digits.device)
    else:
        if not isinstance(draws, (tuple, list)) or len(draws) != 2:
            raise ValueError("impulse_noise: draws must be a pair (flip, salt) of U[0, 1) tensors B×28×28")
        flip = check_draws(draws[0], digits.shape, "impulse_noise", "flip uniforms").to(digits.device)
        salt = check_draws(draws[1], digits.shape, "impulse_noise", "salt uniforms").to(digits.device)
    replaced = (salt <= 0.5).to(torch.uint8) * 255
    return torch.where(flip <= IMPULSE_NOISE_AMOUNT, replaced, digits)
