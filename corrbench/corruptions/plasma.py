"""The diamond-square plasma fractal of fog (spec G7), batched: one independent map per image.

Each map consumes `mapsize² − 1` uniforms U[0, 1) in the reference's order: per level (n = 1, 2, 4,
…, mapsize/2 cells per side), n² for the squares, n² for the horizontal diamonds, n² for the
vertical diamonds, each block row-major. The reference draws `np.random.uniform(−w, w, (n, n))`,
which NumPy computes as `−w + 2w·r` from such a uniform r; the arithmetic below is the reference's,
step for step, so the same uniforms give the same float64 bits.
"""
from __future__ import annotations

import torch


def plasma_uniform_count(mapsize: int) -> int:
    """Uniforms one map consumes: 3·(1 + 4 + … + (mapsize/2)²) = mapsize² − 1."""
    return mapsize * mapsize - 1


def check_mapsize(mapsize: int) -> int:
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma mapsize must be a power of two ≥ 2, got {mapsize}")
    return mapsize


def plasma_fractal(uniforms: torch.Tensor, mapsize: int, wibbledecay: float) -> torch.Tensor:
    """G7: B maps mapsize×mapsize with values in [0, 1], from `uniforms` B×(mapsize² − 1) U[0, 1).

    Toroidal diamond-square with amplitude w·U(−w, w) (w = 100, divided by `wibbledecay` per level),
    then `(m − min m) / max(m − min m)` per map. Works in the uniforms' dtype and device.
    """
    check_mapsize(mapsize)
    batch = uniforms.shape[0]
    if uniforms.ndim != 2 or uniforms.shape[1] != plasma_uniform_count(mapsize):
        raise ValueError(f"plasma_fractal: uniforms must be B×{plasma_uniform_count(mapsize)} "
                         f"for mapsize {mapsize}, got {tuple(uniforms.shape)}")
    maps = uniforms.new_zeros(batch, mapsize, mapsize)
    step, wibble, used = mapsize, 100.0, 0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        # array / 4 + wibble * uniform(−wibble, wibble), with uniform = −w + (w − (−w))·r
        nonlocal used
        cells = total.shape[1] * total.shape[2]
        r = uniforms[:, used:used + cells].reshape(total.shape)
        used += cells
        return total / 4 + wibble * (-wibble + (wibble - -wibble) * r)

    while step >= 2:
        half = step // 2
        # squares: the centre of each square gets the mean of its four corners (wrap-around)
        corners = maps[:, 0::step, 0::step]
        square_sum = corners + torch.roll(corners, -1, dims=1)
        square_sum = square_sum + torch.roll(square_sum, -1, dims=2)
        maps[:, half::step, half::step] = wibbled_mean(square_sum)
        # diamonds: the edge midpoints get the mean of their two centres and two corners
        centres = maps[:, half::step, half::step]
        corners = maps[:, 0::step, 0::step]
        horizontal = (centres + torch.roll(centres, 1, dims=1)) + (corners + torch.roll(corners, -1, dims=2))
        maps[:, 0::step, half::step] = wibbled_mean(horizontal)
        vertical = (centres + torch.roll(centres, 1, dims=2)) + (corners + torch.roll(corners, -1, dims=1))
        maps[:, half::step, 0::step] = wibbled_mean(vertical)
        step //= 2
        wibble /= wibbledecay

    maps = maps - maps.amin(dim=(1, 2), keepdim=True)
    return maps / maps.amax(dim=(1, 2), keepdim=True)
