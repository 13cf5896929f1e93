"""Blur corruptions: defocus_blur, gaussian_blur, glass_blur (spec A.4, A.17, A.5)."""
from __future__ import annotations

import math

import torch

from corrbench.corruptions.convert import to_unit, to_uint8
from corrbench.corruptions.filters import correlate_reflect101, disk_kernel, gaussian_filter_nearest
from corrbench.corruptions.registry import register

DEFOCUS_BLUR_DISK = {
    "cifar": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "tiny": ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
    "imagenet": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
}


@register("defocus_blur", stochastic=False, table=DEFOCUS_BLUR_DISK,
          parameters="(disk radius, anti-aliasing σ) of the disk kernel", spec="A.4")
def defocus_blur(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.4: each channel of x = u/255 correlated with `disk(r, α)` (G6: float64-built, float32
    kernel, not renormalised) with a REFLECT_101 border (G3), then clip, ×255, truncate."""
    radius, alias_blur = DEFOCUS_BLUR_DISK[scale][severity - 1]
    return to_uint8(correlate_reflect101(to_unit(images), disk_kernel(radius, alias_blur)))


GAUSSIAN_BLUR_SIGMA = {
    "cifar": (0.4, 0.6, 0.7, 0.8, 1),
    "tiny": (0.5, 0.75, 1, 1.25, 1.5),
    "imagenet": (1, 2, 3, 4, 6),
}


@register("gaussian_blur", stochastic=False, table=GAUSSIAN_BLUR_SIGMA,
          parameters="σ of the Gaussian blur in pixels", spec="A.17")
def gaussian_blur(images: torch.Tensor, severity: int, *, scale: str) -> torch.Tensor:
    """Spec A.17: scikit-image `gaussian(x, σ, multichannel)` (G1: 'nearest' border, truncate 4, rows
    then columns, bit-identical to scipy in float64), then clip, ×255, truncate."""
    sigma = GAUSSIAN_BLUR_SIGMA[scale][severity - 1]
    return to_uint8(gaussian_filter_nearest(to_unit(images), sigma))


_ELEMENTS_PER_CHUNK = 1 << 18  # CPU working set per chunk of images (stays in cache)
_RANDOM_BITS = 30              # of the 31 uniform bits of an int32 `random_()`, as whole fields

GLASS_BLUR_SIGMA_DELTA_ITERATIONS = {
    "cifar": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "tiny": ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
    "imagenet": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
}


def shuffle_offsets(images: torch.Tensor, generator: torch.Generator, max_delta: int, iterations: int) -> torch.Tensor:
    """Glass blur's draws for every image: int8 B×iterations×(H−2d)×(W−2d)×2, each (dx, dy) uniform
    on {−d, …, d−1} (NumPy's `randint(-d, d)` excludes d), in the reference's scan order (spec A.5).
    int8 keeps them small: 224-px images need 2·216² pairs per pass."""
    shape = (images.shape[0], iterations, images.shape[-2] - 2 * max_delta, images.shape[-1] - 2 * max_delta, 2)
    span = 2 * max_delta
    if span & (span - 1):  # d = 3: not a power of two, one draw per value
        return torch.randint(-max_delta, max_delta, shape, generator=generator, device=generator.device,
                             dtype=torch.int8).to(images.device)
    # d = 1, 2, 4: cut log₂(2d)-bit fields from 30-bit random words, ~3× faster than one draw per value
    bits = span.bit_length() - 1
    per_word = _RANDOM_BITS // bits
    count = math.prod(shape)
    words = torch.empty(-(-count // per_word), dtype=torch.int32, device=generator.device).random_(generator=generator)
    words = words.to(images.device)
    shifts = torch.arange(per_word, dtype=torch.int32, device=images.device) * bits
    fields = (words.unsqueeze(1) >> shifts) & (span - 1)
    return (fields.reshape(-1)[:count].to(torch.int8) - max_delta).reshape(shape)


def _pass_sources(offsets: torch.Tensor, height: int, width: int, max_delta: int) -> torch.Tensor:
    """Flat source index (into H·W) of every visited pixel after one sequential pass, B×(n_h·n_w).

    The reference visits h = S−d … d+1 (rows, descending), and within a row w = S−d … d+1, and copies
    v[h, w] ← v[h+dy, w+dx] (its tuple 'swap' assigns through NumPy views, so it is a copy). Each pixel
    is written once per pass, at its turn k, so it ends up with the pass-start value of the first source
    along src(p) → src(src(p)) → … that was not written before p's turn. Those chains only go to earlier
    turns, so pointer jumping (log₂ n² gathers) resolves them exactly; with d = 1 no source is ever
    written earlier (offsets ≤ 0 point up or left, which are visited later) and the pass is one gather.
    """
    batch, n_h, n_w = offsets.shape[0], height - 2 * max_delta, width - 2 * max_delta
    device = offsets.device
    offsets = offsets.to(torch.int64)
    turn_row = torch.arange(n_h, device=device).view(n_h, 1)      # i-th visited row: h = H − d − i
    turn_col = torch.arange(n_w, device=device).view(1, n_w)      # j-th visited column: w = W − d − j
    source_h = (height - max_delta - turn_row) + offsets[..., 1]  # B×n_h×n_w
    source_w = (width - max_delta - turn_col) + offsets[..., 0]
    source = (source_h * width + source_w).reshape(batch, n_h * n_w)
    if max_delta == 1:
        return source
    source_row_turn = height - max_delta - source_h               # the source's own turn coordinates
    source_col_turn = width - max_delta - source_w
    visited = (source_row_turn >= 0) & (source_row_turn < n_h) & (source_col_turn >= 0) & (source_col_turn < n_w)
    turn = (turn_row * n_w + turn_col).expand(batch, n_h, n_w)
    source_turn = source_row_turn * n_w + source_col_turn
    written_before = visited & (source_turn < turn)
    link = torch.where(written_before, source_turn, turn).reshape(batch, n_h * n_w)
    while True:  # pointer jumping: terminal turns point to themselves
        jumped = link.gather(1, link)
        if torch.equal(jumped, link):
            break
        link = jumped
    return source.gather(1, link)


def local_shuffle(images: torch.Tensor, offsets: torch.Tensor, max_delta: int) -> torch.Tensor:
    """Spec A.5 step 2: the reference's sequential pixel shuffle of uint8 images B×C×H×W, exactly, with
    the per-image draws `offsets` B×iterations×(H−2d)×(W−2d)×2 ((dx, dy) in scan order)."""
    batch, channels, height, width = images.shape
    rows = torch.arange(max_delta + 1, height - max_delta + 1, device=images.device).flip(0)  # scan order
    cols = torch.arange(max_delta + 1, width - max_delta + 1, device=images.device).flip(0)
    visited = (rows.view(-1, 1) * width + cols.view(1, -1)).reshape(1, -1)
    identity = torch.arange(height * width, device=images.device).expand(batch, height * width)
    pixels = images.reshape(batch, channels, height * width)
    for iteration in range(offsets.shape[1]):
        sources = identity.scatter(1, visited.expand(batch, -1),
                                   _pass_sources(offsets[:, iteration], height, width, max_delta))
        pixels = pixels.gather(2, sources.unsqueeze(1).expand(batch, channels, height * width))
    return pixels.reshape(images.shape)


def _take_offsets(draws: object, images: torch.Tensor, max_delta: int, iterations: int) -> torch.Tensor:
    shape = (images.shape[0], iterations, images.shape[-2] - 2 * max_delta, images.shape[-1] - 2 * max_delta, 2)
    if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != shape or draws.is_floating_point():
        got = f"{draws.dtype} {tuple(draws.shape)}" if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"glass_blur: draws must be an integer tensor B×iterations×n×n×2 = {shape} "
                         f"(n×n = (H−2d)×(W−2d)) "
                         f"of (dx, dy) in scan order, got {got}")
    if bool(((draws < -max_delta) | (draws >= max_delta)).any()):
        raise ValueError(f"glass_blur: every offset must lie in [{-max_delta}, {max_delta - 1}]")
    return draws.to(device=images.device, dtype=torch.int8)


@register("glass_blur", stochastic=True, table=GLASS_BLUR_SIGMA_DELTA_ITERATIONS,
          parameters="(σ of the two Gaussian blurs, max pixel offset d, shuffle passes)", spec="A.5")
def glass_blur(images: torch.Tensor, severity: int, *, scale: str,
               generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.5: v = trunc(255·gaussian(u/255, σ)); `iterations` sequential local shuffles of v (each
    visited pixel copies a neighbour at offset (dx, dy) ∈ {−d … d−1}²); trunc(255·clip(gaussian(v/255, σ))).

    draws: the offsets, int B×iterations×(H−2d)×(W−2d)×2; [b, it, i, j] = (dx, dy) drawn at row
    h = H−d−i, column w = W−d−j (the reference's `np.random.randint(-d, d, size=2)` calls, in its order).
    """
    sigma, max_delta, iterations = GLASS_BLUR_SIGMA_DELTA_ITERATIONS[scale][severity - 1]
    offsets = (shuffle_offsets(images, generator, max_delta, iterations) if draws is None
               else _take_offsets(draws, images, max_delta, iterations))
    step = (max(1, _ELEMENTS_PER_CHUNK // images[0].numel()) if images.device.type == "cpu"
            else images.shape[0])
    outputs = []
    for start in range(0, images.shape[0], step):  # chunks keep the float64 blurs in cache
        blurred = to_uint8(gaussian_filter_nearest(to_unit(images[start:start + step]), sigma))
        shuffled = local_shuffle(blurred, offsets[start:start + step], max_delta)
        outputs.append(to_uint8(gaussian_filter_nearest(to_unit(shuffled), sigma)))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
