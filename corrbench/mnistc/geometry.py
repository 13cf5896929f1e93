"""MNIST-C shear, scale, rotate and translate (spec C rows 5–7, 9 and note (a)).

Each is scikit-image `warp(x, inverse_map=P)`: output pixel (col, row) samples the input at
P·(col, row, 1), bilinearly (skimage's `bilinear_interpolation`: ceil/floor neighbours, constant 0
outside), then clipped to the input's range. P is an `AffineTransform` plus the translation that keeps
(13.5, 13.5) fixed. The matrices are those of the scikit-image the dataset was made with (2019, ≤ 0.19):
shear s → [[1, −sin s], [0, cos s]] (0.26 would give [[1, −tan s], [0, 1]]; spec §0.6).
"""
from __future__ import annotations

import math

import torch

from corrbench.corruptions.convert import divide
from corrbench.mnistc.registry import SIDE, check_draws, register_digit, round_to_uint8

SHEAR = 0.4           # severity 2 of [0.2, 0.4, 0.6, 0.8, 1.]
ROTATION = 0.4        # severity 2, radians
SCALE = 1 / .7        # severity 3 of [1/.9, 1/.8, 1/.7, 1/.6, 1/.5]
TRANSLATION = 3       # severity 3 of [1, 2, 3, 4, 5], pixels
CENTRE = 13.5


def centred(a1: float, a2: float, b1: float, b2: float) -> tuple[float, ...]:
    """(a1, a2, a3, b1, b2, b3) with a3 = 13.5·(1 − a1 − a2), b3 = 13.5·(1 − b1 − b2): (13.5, 13.5) stays put."""
    return (a1, a2, CENTRE * (1 - a1 - a2), b1, b2, CENTRE * (1 - b1 - b2))


def shear_matrix(signed_shear: float) -> tuple[float, ...]:
    return centred(1 * math.cos(0.0), -1 * math.sin(0.0 + signed_shear), 1 * math.sin(0.0),
                   1 * math.cos(0.0 + signed_shear))


def rotation_matrix(signed_angle: float) -> tuple[float, ...]:
    return centred(1 * math.cos(signed_angle), -1 * math.sin(signed_angle + 0.0), 1 * math.sin(signed_angle),
                   1 * math.cos(signed_angle + 0.0))


def scale_matrix(factor: float) -> tuple[float, ...]:
    return centred(factor * math.cos(0.0), -factor * math.sin(0.0), factor * math.sin(0.0), factor * math.cos(0.0))


def warp_affine(digits: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """skimage `warp(u/255, inverse_map=P)` (order 1, constant 0, clip) for per-image P = `matrices` B×6
    (a1, a2, a3, b1, b2, b3), then round(255·clip(·, 0, 1)). uint8 B×28×28 → uint8 B×28×28."""
    b, device = digits.shape[0], digits.device
    x = divide(digits.to(torch.float64), 255.0)
    m = matrices.to(device=device, dtype=torch.float64).view(b, 6, 1, 1)
    grid = torch.arange(SIDE, device=device, dtype=torch.float64)
    col, row = grid.view(1, 1, SIDE), grid.view(1, SIDE, 1)
    src_c = m[:, 0] * col + m[:, 1] * row + m[:, 2]
    src_r = m[:, 3] * col + m[:, 4] * row + m[:, 5]
    min_r, min_c = src_r.floor(), src_c.floor()
    max_r, max_c = src_r.ceil(), src_c.ceil()
    dr, dc = src_r - min_r, src_c - min_c
    flat = x.reshape(b, -1)

    def pixel(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        inside = (r >= 0) & (r <= SIDE - 1) & (c >= 0) & (c <= SIDE - 1)
        index = (r.clamp(0, SIDE - 1) * SIDE + c.clamp(0, SIDE - 1)).long().reshape(b, -1)
        return torch.where(inside, flat.gather(1, index).view_as(r), torch.zeros((), dtype=x.dtype, device=device))

    top = (1 - dc) * pixel(min_r, min_c) + dc * pixel(min_r, max_c)
    bottom = (1 - dc) * pixel(max_r, min_c) + dc * pixel(max_r, max_c)
    out = (1 - dr) * top + dr * bottom
    # skimage clips the output to the range of the input and the constant (0)
    low = x.amin(dim=(1, 2), keepdim=True).clamp(max=0.0)
    high = x.amax(dim=(1, 2), keepdim=True).clamp(min=0.0)
    out = torch.maximum(torch.minimum(out, high), low)
    return round_to_uint8(out.clamp_(0.0, 1.0) * 255.0)


def draw_signs(digits: torch.Tensor, generator: torch.Generator, count: int) -> torch.Tensor:
    """`np.random.choice([−1, 1], count)` per image: int64 B×count of ±1."""
    signs = torch.randint(0, 2, (digits.shape[0], count), generator=generator, device=generator.device) * 2 - 1
    return signs.to(digits.device)


def _signs(digits: torch.Tensor, generator, draws, count: int, name: str) -> list[list[int]]:
    shape = (digits.shape[0],) if count == 1 else (digits.shape[0], count)
    signs = draw_signs(digits, generator, count) if draws is None else check_draws(draws, shape, name, "signs ±1")
    signs = signs.reshape(digits.shape[0], count).tolist()
    if any(s not in (-1, 1) for row in signs for s in row):
        raise ValueError(f"{name}: the signs must be −1 or +1")
    return signs


@register_digit("shear", stochastic=True, parameters="shear 0.4 rad about (13.5, 13.5), random sign",
                draws="signs ±1, int [B]")
def shear(digits: torch.Tensor, *, generator: torch.Generator | None = None,
          draws: torch.Tensor | None = None) -> torch.Tensor:
    signs = _signs(digits, generator, draws, 1, "shear")
    return warp_affine(digits, torch.tensor([shear_matrix(SHEAR * s) for (s,) in signs], dtype=torch.float64))


@register_digit("rotate", stochastic=True, parameters="rotation 0.4 rad about (13.5, 13.5), random sign",
                draws="signs ±1, int [B]")
def rotate(digits: torch.Tensor, *, generator: torch.Generator | None = None,
           draws: torch.Tensor | None = None) -> torch.Tensor:
    signs = _signs(digits, generator, draws, 1, "rotate")
    return warp_affine(digits, torch.tensor([rotation_matrix(ROTATION * s) for (s,) in signs], dtype=torch.float64))


@register_digit("scale", stochastic=False, parameters="inverse map ×(1/0.7) about (13.5, 13.5): the digit shrinks to 70%")
def scale(digits: torch.Tensor) -> torch.Tensor:
    return warp_affine(digits, torch.tensor([scale_matrix(SCALE)], dtype=torch.float64).expand(digits.shape[0], 6))


@register_digit("translate", stochastic=True, parameters="(dx, dy) = (±3, ±3) px, independent random signs",
                draws="signs ±1, int B×2 as (dx sign, dy sign)")
def translate(digits: torch.Tensor, *, generator: torch.Generator | None = None,
              draws: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse map (c + dx, r + dy): the content moves by (−dx, −dy) with zero fill."""
    signs = _signs(digits, generator, draws, 2, "translate")
    matrices = [(1.0, 0.0, float(TRANSLATION * sx), 0.0, 1.0, float(TRANSLATION * sy)) for sx, sy in signs]
    return warp_affine(digits, torch.tensor(matrices, dtype=torch.float64))
