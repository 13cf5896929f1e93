"""Noise corruptions: gaussian, shot, impulse, speckle (spec A.1, A.2, A.3, A.16).

Each image gets its own draws from the explicit generator. The draws can be injected instead
(spec D.4); every draw tensor has the images' layout B×3×H×W, so `draws[b].permute(1, 2, 0)` is the
(S, S, 3) array the reference draws for image b.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from corrbench.corruptions.chunks import CPU_CHUNK_VALUES, map_chunks
from corrbench.corruptions.convert import divide, to_uint8, to_unit, working_dtype
from corrbench.corruptions.draws import poisson, standard_normal, take_draws
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
    return map_chunks(lambda u, z: to_uint8(to_unit(u).add_(z.to(working_dtype(u.device)).mul(sigma))), images, z)


SHOT_NOISE_RATE = {
    "cifar": (500, 250, 100, 75, 50),
    "tiny": (250, 100, 50, 30, 15),
    "imagenet": (60, 25, 12, 5, 3),
}


_BYTES = 256  # output values, and the alias bins per pixel value (a power of two: u·256 splits exactly)


def _alias_columns(probabilities: list[float]) -> tuple[list[float], list[int]]:
    """Walker's alias table (Vose's construction) of a distribution over len(p) bins: bin i is kept
    when the fraction of u·n is below threshold[i], else its alias is taken."""
    n = len(probabilities)
    scaled = [p * n for p in probabilities]
    threshold, alias = [1.0] * n, list(range(n))
    small = [i for i, q in enumerate(scaled) if q < 1.0]
    large = [i for i, q in enumerate(scaled) if q >= 1.0]
    while small and large:
        low, high = small.pop(), large[-1]
        threshold[low], alias[low] = scaled[low], high
        scaled[high] = (scaled[high] + scaled[low]) - 1.0
        if scaled[high] < 1.0:
            small.append(large.pop())
    return threshold, alias  # leftovers (rounding) keep threshold 1: always themselves


@functools.lru_cache(maxsize=32)
def shot_noise_tables(rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel value v, the exact law of the output byte trunc(255·clip(k/c, 0, 1)), k ~ Poisson(x·c),
    x = v/255, as an alias table over the 256 bytes: (threshold float64 256·256, alias uint8 256·256),
    flat with row v at v·256. The Poisson pmf is evaluated in float64 (k ≥ c all give 255)."""
    rates = to_unit(torch.arange(_BYTES, dtype=torch.uint8))[:, None] * rate   # x·c, as the corruption computes it
    # k = 0..2c+100 holds all the mass (λ ≤ c; beyond, pmf < 1e-40): k ≥ c is summed, not 1 − cdf
    counts = torch.arange(2 * rate + 101, dtype=torch.float64)[None, :]
    pmf = torch.exp(torch.xlogy(counts, rates) - rates - torch.lgamma(counts + 1))
    byte_of_count = to_uint8(divide(counts[0], rate)).long()               # k ≥ c all give 255
    law = torch.zeros(_BYTES, _BYTES, dtype=torch.float64).index_add_(1, byte_of_count, pmf)
    columns = [_alias_columns(row) for row in law.tolist()]  # one-off per rate (~30 ms on the CPU)
    threshold = torch.tensor([t for t, _ in columns], dtype=torch.float64).flatten()
    alias = torch.tensor([a for _, a in columns], dtype=torch.uint8).flatten()
    return threshold, alias


def sample_shot_noise(images: torch.Tensor, rate: int, generator: torch.Generator | None) -> torch.Tensor:
    """trunc(255·clip(k/c, 0, 1)) with k ~ Poisson(x·c), drawn exactly in law from the alias tables with
    one float64 uniform per value (bin ⌊256·u⌋ and fraction 256·u − bin, both exact). About 4× faster
    than torch.poisson on the CPU; every byte has the reference's distribution given its pixel."""
    threshold, alias = (t.to(images.device) for t in shot_noise_tables(rate))
    uniforms = torch.rand(images.numel(), generator=generator, device=generator.device,
                          dtype=torch.float64).to(images.device)
    values = images.reshape(-1)
    out = torch.empty_like(values)
    step = CPU_CHUNK_VALUES if images.device.type == "cpu" else max(1, values.numel())  # CPU: stay in cache
    for start in range(0, values.numel(), step):
        scaled = uniforms[start:start + step].mul_(_BYTES)
        bins = torch.floor(scaled)
        fraction = scaled.sub_(bins)
        bins = bins.to(torch.int32)
        rows = values[start:start + step].to(torch.int32).mul_(_BYTES).add_(bins)
        kept = (fraction < threshold.index_select(0, rows)).view(torch.uint8)
        # the bin where kept, else its alias, as uint8 arithmetic mod 256 (torch.where is several
        # times slower on the CPU): alias + kept·(bin − alias)
        other = alias.index_select(0, rows)
        torch.add(other, kept * (bins.to(torch.uint8) - other), out=out[start:start + step])
    return out.reshape(images.shape)


@register("shot_noise", stochastic=True, table=SHOT_NOISE_RATE,
          parameters="photon count c: Poisson(x·c)/c", spec="A.2")
def shot_noise(images: torch.Tensor, severity: int, *, scale: str,
               generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.2: trunc(255·clip(k/c, 0, 1)), k ~ Poisson(x·c) per pixel and channel.

    draws: the Poisson counts k, B×3×H×W (the reference's `np.random.poisson(x·c)` per image).
    Without draws, each output byte is sampled from its exact law given the pixel (`sample_shot_noise`;
    NumPy's Poisson is matched in distribution only). MPS (no float64) uses torch.poisson.
    """
    rate = SHOT_NOISE_RATE[scale][severity - 1]
    if draws is None and working_dtype(images.device) == torch.float64:
        for scale_rate in SHOT_NOISE_RATE[scale]:  # all five tables at first use (~0.15 s)
            shot_noise_tables(scale_rate)
        return sample_shot_noise(images, rate, generator)
    x = to_unit(images)
    # Counts are integers: sampling at float32 rates changes nothing but the speed (~3×).
    counts = (poisson((x * rate).float(), generator).to(x.dtype) if draws is None
              else take_draws(draws, images, "shot_noise", "draws"))
    return to_uint8(divide(counts, rate))


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
    if draws is None:  # float32 uniforms compared in float32 against exact float32 thresholds
        flip, salt = (torch.rand(images.shape, generator=generator, device=generator.device).to(images.device)
                      for _ in range(2))
        amount = at_most_float32(amount)
    else:
        if not isinstance(draws, (tuple, list)) or len(draws) != 2:
            raise ValueError("impulse_noise: draws must be a pair (flip, salt) of U[0, 1) tensors")
        flip = take_draws(draws[0], images, "impulse_noise", "draws[0] (flip)")
        salt = take_draws(draws[1], images, "impulse_noise", "draws[1] (salt)")
    # Survivors come back unchanged: trunc(255·(v/255)) = v for every v (spec 0.1), so integers suffice.
    replaced = (salt <= 0.5).view(torch.uint8) * 255
    flipped = (flip <= amount).view(torch.uint8)
    # where flipped the replacement, else the pixel, as uint8 arithmetic mod 256 (torch.where is several
    # times slower on the CPU): v + flipped·(replacement − v)
    return images + flipped * (replaced - images)


def at_most_float32(value: float) -> float:
    """The largest float32 t ≤ value: for any float32 u, u ≤ t exactly when u ≤ value, so comparing
    float32 draws against t gives what comparing them widened to float64 against value gives."""
    t = np.float32(value)
    if float(t) > value:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


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

    def speckle(u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = to_unit(u)
        return to_uint8(x + x * (sigma * z.to(x.dtype)))
    return map_chunks(speckle, images, z)

