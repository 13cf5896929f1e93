"""Noise corruptions: gaussian, shot, impulse, speckle (spec A.1, A.2, A.3, A.16).

Each image gets its own draws from the explicit generator. The draws can be injected instead
(spec D.4); every draw tensor has the images' layout B×3×H×W, so `draws[b].permute(1, 2, 0)` is the
(S, S, 3) array the reference draws for image b.
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import to_unit, to_uint8
from corrbench.corruptions.draws import standard_normal, take_draws, uniform
from corrbench.corruptions.registry import register

GAUSSIAN_NOISE_SIGMA = {
    "cifar": (0.04, 0.06, 0.08, 0.09, 0.10),
    "tiny": (0.04, 0.08, 0.12, 0.15, 0.18),
    "imagenet": (0.08, 0.12, 0.18, 0.26, 0.38),
}


@register("gaussian_noise", stochastic=True, table=GAUSSIAN_NOISE_SIGMA,
          parameters="σ of the N(0, σ) noise added to x = u/255", spec="A.1")
def gaussian_noise(images: torch.Tensor, severity: int, *, scale: str,
                   generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.1: trunc(255·clip(x + σ·z, 0, 1)), z ~ N(0, 1) per pixel and channel.

    draws: z, float B×3×H×W (the reference's `np.random.normal(size=(S,S,3), scale=σ)` is σ·z).
    """
    sigma = GAUSSIAN_NOISE_SIGMA[scale][severity - 1]
    z = standard_normal(images, generator) if draws is None else take_draws(draws, images, "gaussian_noise", "draws")
    return to_uint8(to_unit(images) + sigma * z)


SHOT_NOISE_RATE = {
    "cifar": (500, 250, 100, 75, 50),
    "tiny": (250, 100, 50, 30, 15),
    "imagenet": (60, 25, 12, 5, 3),
}


@register("shot_noise", stochastic=True, table=SHOT_NOISE_RATE,
          parameters="photon count c: Poisson(x·c)/c", spec="A.2")
def shot_noise(images: torch.Tensor, severity: int, *, scale: str,
               generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.2: trunc(255·clip(k/c, 0, 1)), k ~ Poisson(x·c) per pixel and channel.

    draws: the Poisson counts k, B×3×H×W (the reference's `np.random.poisson(x·c)` per image).
    torch.poisson matches NumPy's Poisson in distribution only.
    """
    rate = SHOT_NOISE_RATE[scale][severity - 1]
    x = to_unit(images)
    # Counts are integers: sampling at float32 rates changes nothing but the speed (~3×).
    counts = (torch.poisson((x * rate).float(), generator=generator).to(x.dtype) if draws is None
              else take_draws(draws, images, "shot_noise", "draws"))
    return to_uint8(counts / rate)


IMPULSE_NOISE_AMOUNT = {
    "cifar": (0.01, 0.02, 0.03, 0.05, 0.07),
    "tiny": (0.01, 0.02, 0.05, 0.08, 0.14),
    "imagenet": (0.03, 0.06, 0.09, 0.17, 0.27),
}


@register("impulse_noise", stochastic=True, table=IMPULSE_NOISE_AMOUNT,
          parameters="salt-and-pepper amount (probability that a pixel channel is replaced)", spec="A.3")
def impulse_noise(images: torch.Tensor, severity: int, *, scale: str,
                  generator: torch.Generator | None = None,
                  draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Spec A.3: scikit-image `random_noise(x, 's&p', amount=c)`, independently per channel.

    draws: (flip, salt), two U[0, 1) tensors B×3×H×W in scikit-image's order: an element is replaced
    where flip ≤ c, by 255 where salt ≤ 0.5, else by 0.
    """
    amount = IMPULSE_NOISE_AMOUNT[scale][severity - 1]
    if draws is None:
        flip, salt = uniform(images, generator), uniform(images, generator)
    else:
        if not isinstance(draws, (tuple, list)) or len(draws) != 2:
            raise ValueError("impulse_noise: draws must be a pair (flip, salt) of U[0, 1) tensors")
        flip = take_draws(draws[0], images, "impulse_noise", "draws[0] (flip)")
        salt = take_draws(draws[1], images, "impulse_noise", "draws[1] (salt)")
    # Survivors come back unchanged: trunc(255·(v/255)) = v for every v (spec 0.1), so integers suffice.
    replaced = (salt <= 0.5).to(torch.uint8) * 255
    return torch.where(flip <= amount, replaced, images)


SPECKLE_NOISE_SIGMA = {
    "cifar": (0.06, 0.10, 0.12, 0.16, 0.20),
    "tiny": (0.15, 0.20, 0.25, 0.30, 0.35),
    "imagenet": (0.15, 0.20, 0.35, 0.45, 0.60),
}


@register("speckle_noise", stochastic=True, table=SPECKLE_NOISE_SIGMA,
          parameters="σ of the multiplicative noise: x + x·N(0, σ)", spec="A.16")
def speckle_noise(images: torch.Tensor, severity: int, *, scale: str,
                  generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.16: trunc(255·clip(x + x·(σ·z), 0, 1)), z ~ N(0, 1) per pixel and channel.

    draws: z, float B×3×H×W (the reference's `np.random.normal(size=(S,S,3), scale=σ)` is σ·z).
    """
    sigma = SPECKLE_NOISE_SIGMA[scale][severity - 1]
    z = standard_normal(images, generator) if draws is None else take_draws(draws, images, "speckle_noise", "draws")
    x = to_unit(images)
    return to_uint8(x + x * (sigma * z))

