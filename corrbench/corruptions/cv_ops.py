"""Batched torch emulations of the OpenCV primitives that spatter uses (spec G13, G14, G15).

Every function takes a stack of single-channel maps B×H×W on any device and reproduces OpenCV's
integer arithmetic exactly (checked against cv2 in tests/test_cv_ops.py), so the results do not
depend on the device. REFLECT_101 is OpenCV's default border `…c b | a b c…`: the edge is not repeated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ---- borders --------------------------------------------------------------------------------------


def pad_reflect101(x: torch.Tensor, radius: int) -> torch.Tensor:
    """B×H×W padded by `radius` on every side with REFLECT_101 (any dtype; needs H, W > radius)."""
    if radius == 0:
        return x
    rows = torch.cat([x[:, 1:radius + 1].flip(1), x, x[:, -radius - 1:-1].flip(1)], dim=1)
    return torch.cat([rows[:, :, 1:radius + 1].flip(2), rows, rows[:, :, -radius - 1:-1].flip(2)], dim=2)


def pad_replicate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """B×H×W padded by `radius` on every side with copies of the edge pixels (any dtype)."""
    rows = torch.cat([x[:, :1].expand(-1, radius, -1), x, x[:, -1:].expand(-1, radius, -1)], dim=1)
    return torch.cat([rows[:, :, :1].expand(-1, -1, radius), rows, rows[:, :, -1:].expand(-1, -1, radius)], dim=2)


def correlate3x3_padded(padded: torch.Tensor, kernel: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """2-D correlation (kernel not flipped) of an already padded B×(H+2)×(W+2) map with a 3×3 kernel,
    summed in the map's dtype; zero taps are skipped."""
    h, w = padded.shape[1] - 2, padded.shape[2] - 2
    out = None
    for dy, row in enumerate(kernel):
        for dx, weight in enumerate(row):
            if weight == 0:
                continue
            tap = padded[:, dy:dy + h, dx:dx + w]
            term = tap if weight == 1 else tap * weight
            out = term.clone() if out is None else out.add_(term)
    return out if out is not None else torch.zeros_like(padded[:, 1:-1, 1:-1])


# ---- G15: box blurs, filter2D, equalizeHist ------------------------------------------------------


def box_sum3(x: torch.Tensor) -> torch.Tensor:
    """Sum over each pixel's 3×3 neighbourhood with a REFLECT_101 border, in x's dtype (rows, then columns)."""
    p = pad_reflect101(x, 1)
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    return rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]


def blur3_float32(x: torch.Tensor) -> torch.Tensor:
    """`cv2.blur(x, (3, 3))` on float32 maps: the 3×3 sum in float64 times 1/9 (a float64 constant),
    rounded to float32, as OpenCV's generic box filter does. Needs float64 on the device."""
    return (box_sum3(x.to(torch.float64)) * (1.0 / 9.0)).to(torch.float32)


def floor_divide(x: torch.Tensor, divisor: int, largest: int) -> torch.Tensor:
    """floor(x / divisor) for int32 x in [0, largest], as a multiply and a shift (integer division
    is not vectorised on CPU): with m = ceil(2^k / d), floor(x·m / 2^k) = floor(x / d) whenever
    largest·(m·d − 2^k) < 2^k, and x·m must fit int32."""
    for shift in range(1, 31):
        magic = -(-(1 << shift) // divisor)
        if largest * (magic * divisor - (1 << shift)) < (1 << shift) and largest * magic < 2 ** 31:
            return (x * magic) >> shift
    return torch.div(x, divisor, rounding_mode="floor")


def blur3_uint8(x: torch.Tensor) -> torch.Tensor:
    """`cv2.blur(x, (3, 3))` on uint8 maps: round(sum/9) = floor((2·sum + 9) / 18); a sum of nine
    integers never ties."""
    total = box_sum3(x.to(torch.int32))
    return floor_divide(total.mul_(2).add_(9), 18, 2 * 9 * 255 + 9).to(torch.uint8)


def filter2d_uint8(x: torch.Tensor, kernel: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """`cv2.filter2D(x, cv2.CV_8U, K)` for uint8 maps and an integer 3×3 K: correlation with a
    REFLECT_101 border, the integer sum clipped to 0..255."""
    total = correlate3x3_padded(pad_reflect101(x.to(torch.int32), 1), kernel)
    return total.clamp_(0, 255).to(torch.uint8)


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """`cv2.equalizeHist` on each uint8 map of B×H×W (G15).

    With hist the 256-bin histogram and i0 its first non-empty bin: a constant map becomes i0
    everywhere; otherwise lut[i] = rhe(float32(Σ_{i0<j≤i} hist[j]) · float32(255/(N − hist[i0]))).
    """
    b = x.shape[0]
    flat = x.reshape(b, -1).to(torch.int64)
    n = flat.shape[1]
    hist = torch.zeros(b, 256, dtype=torch.int64, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    first_count = hist.gather(1, first)
    cumulative = hist.cumsum(dim=1)
    above_first = cumulative - cumulative.gather(1, first)  # Σ hist[i0+1..i]; only bins ≥ i0 are looked up
    rest = (n - first_count).clamp_(min=1).to(torch.float32)
    scale = torch.full_like(rest, 255.0) / rest  # float32, as OpenCV's `255.f / (total - hist[i0])`
    lut = (above_first.to(torch.float32) * scale).round_().clamp_(0, 255)  # round() is half-to-even
    lut = torch.where(first_count == n, first.to(torch.float32), lut).to(torch.uint8)
    return lut.gather(1, flat).reshape(x.shape)


# ---- G13: Canny ----------------------------------------------------------------------------------

_TG22 = 13573  # round(tan(22.5°) · 2^15), OpenCV's integer direction test


class _FlatGrid:
    """B maps H×W, each padded by one pixel, laid end to end in one 1-D tensor with a margin, so that
    the neighbour at (dy, dx) of every position is one contiguous slice (offset dy·(W+2) + dx): whole-
    batch stencils then run at full vector speed. Values computed on padding positions are garbage
    that callers mask or drop."""

    def __init__(self, b: int, h: int, w: int) -> None:
        self.b, self.h, self.w = b, h, w
        self.stride = w + 2
        self.size = b * (h + 2) * (w + 2)
        self.margin = self.stride + 1

    def flat(self, values: torch.Tensor) -> torch.Tensor:
        """Padded maps B×(H+2)×(W+2), or their flat form, as a 1-D tensor with a zero margin."""
        return F.pad(values.reshape(-1), (self.margin, self.margin))

    def at(self, flat: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        """The values at offset (dy, dx) from every position, from a tensor made by `flat`."""
        start = self.margin + dy * self.stride + dx
        return flat[start:start + self.size]

    def inside(self, device: torch.device) -> torch.Tensor:
        """bool mask of the positions that are image pixels (not padding)."""
        mask = torch.zeros((self.b, self.h + 2, self.w + 2), dtype=torch.bool, device=device)
        mask[:, 1:-1, 1:-1] = True
        return mask.reshape(-1)

    def interior(self, values: torch.Tensor) -> torch.Tensor:
        """Flat values back to B×H×W (the image pixels only)."""
        return values.view(self.b, self.h + 2, self.w + 2)[:, 1:-1, 1:-1]

    def dilate8(self, mask: torch.Tensor) -> torch.Tensor:
        """Boolean 3×3 dilation of a flat mask that is unset on the padding."""
        ext = F.pad(mask, (self.stride + 1, self.stride + 1))
        rows = ext[:-2] | ext[1:-1] | ext[2:]  # position k holds the 1×3 OR centred at k − stride
        two = 2 * self.stride
        return rows[:-two] | rows[self.stride:-self.stride] | rows[two:]


def dilate8(mask: torch.Tensor) -> torch.Tensor:
    """Boolean 3×3 dilation of B×H×W masks (a pixel is set if it or any of its 8 neighbours is)."""
    b, h, w = mask.shape
    grid = _FlatGrid(b, h, w)
    return grid.interior(grid.dilate8(F.pad(mask, (1, 1, 1, 1)).reshape(-1))).contiguous()


def hysteresis(candidates: torch.Tensor, strong: torch.Tensor) -> torch.Tensor:
    """Candidates 8-connected (through candidates) to a strong pixel, for B×H×W bool masks: a flood
    from the strong pixels that stops as soon as a step adds nothing."""
    b, h, w = candidates.shape
    grid = _FlatGrid(b, h, w)
    flat = F.pad(candidates, (1, 1, 1, 1)).reshape(-1)
    seeds = F.pad(strong & candidates, (1, 1, 1, 1)).reshape(-1)
    return grid.interior(_flood(grid, flat, seeds)).contiguous()


def _flood(grid: _FlatGrid, candidates: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Grow `edges` inside `candidates` (flat masks, unset on the padding) until nothing changes."""
    if torch.equal(edges, candidates):  # no weak candidate anywhere: nothing to flood
        return edges
    while True:
        grown = grid.dilate8(edges).logical_and_(candidates)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def _above(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-ones (−1) where a > b, else 0, for int16 tensors whose difference fits int16.
    Sign-bit arithmetic: several times faster than a comparison plus `where` on CPU."""
    return (b - a) >> 15


def _at_least(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-ones (−1) where a ≥ b, else 0 (int16, as `_above`)."""
    return ~((a - b) >> 15)


def canny_l1(x: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """`cv2.Canny(x, low, high) == 255` for uint8 maps B×H×W: aperture 3, L1 gradient (spec G13).

    Sobel with a replicated border; mag = |gx| + |gy| (0 outside the image); non-maximum suppression
    along the gradient direction quantised by OpenCV's integer tangent tests; candidates have
    mag > low, strong ones mag > high; edges are the candidates 8-connected to a strong pixel.
    `low` and `high` are ints (OpenCV floors them). Returns a bool mask B×H×W. Masks are computed as
    int16 0/−1 words (see `_above`).
    """
    b, h, w = x.shape
    grid = _FlatGrid(b, h, w)
    # 3×3 Sobel (replicated border), separably: smooth by (1, 2, 1) across the derivative, then take
    # the central difference; |gx|, |gy| ≤ 1020 and mag ≤ 2040 fit int16.
    pixels = grid.flat(pad_replicate(x.to(torch.int16), 1))
    smooth_x = F.pad(pixels[:-2] + pixels[2:] + 2 * pixels[1:-1], (1, 1))  # aligned with `pixels`
    smooth_y = (grid.at(pixels, -1, 0) + grid.at(pixels, 1, 0)).add_(2 * grid.at(pixels, 0, 0))
    smooth_y = F.pad(smooth_y, (1, 1))  # position k sits at index k + 1
    gx = smooth_y[2:] - smooth_y[:-2]
    gy = grid.at(smooth_x, 1, 0) - grid.at(smooth_x, -1, 0)
    ax, ay = gx.abs(), gy.abs()
    mag = (ax + ay).mul_(grid.inside(x.device))
    magnitudes = grid.flat(mag)

    def nb(dy: int, dx: int) -> torch.Tensor:
        return grid.at(magnitudes, dy, dx)

    # OpenCV: horizontal if |gy|·2^15 < |gx|·TG22, vertical if |gy|·2^15 > |gx|·(TG22 + 2^16).
    ax32, ay32 = ax.to(torch.int32), ay.to(torch.int32).mul_(1 << 15)
    tg22 = ax32 * _TG22
    horizontal = ((ay32 - tg22) >> 31).to(torch.int16)
    vertical = ((tg22.add_(ax32.mul_(1 << 16)) - ay32) >> 31).to(torch.int16)
    same_sign = ~((gx ^ gy) >> 15)  # OpenCV's s = +1; only used where gx and gy are both non-zero
    keep_horizontal = _above(mag, nb(0, -1)) & _at_least(mag, nb(0, 1))
    keep_vertical = _above(mag, nb(-1, 0)) & _at_least(mag, nb(1, 0))
    keep_diagonal = ((same_sign & _above(mag, nb(-1, -1)) & _above(mag, nb(1, 1)))
                     | (~same_sign & _above(mag, nb(-1, 1)) & _above(mag, nb(1, -1))))
    keep = (horizontal & keep_horizontal) | (~horizontal & ((vertical & keep_vertical) | (~vertical & keep_diagonal)))
    candidates = keep & (low - mag) >> 15  # mag > low; mag is 0 on the padding, so no padding qualifies
    strong = candidates & (high - mag) >> 15
    edges = _flood(grid, candidates.to(torch.bool), strong.to(torch.bool))
    return grid.interior(edges).contiguous()


# ---- G14: distanceTransform(DIST_L2, 5) ----------------------------------------------------------

CHAMFER_SHIFT = 16
CHAMFER_STEP, CHAMFER_DIAGONAL, CHAMFER_KNIGHT = 65536, 91750, 143976  # 1, 1.4, 2.1969 in 16.16 fixed point
CHAMFER_MAX = (2 ** 31 - 1) >> 2  # OpenCV caps every distance at INT_MAX >> 2 (8192 px)
_FAR = 1 << 30  # stands for OpenCV's INT_MAX "no source yet"; any value ≥ CHAMFER_MAX ends capped anyway


def _chamfer_row(above: torch.Tensor, two_above: torch.Tensor) -> torch.Tensor:
    """The best cost over the 7 moves that reach a row from the two rows before it in a pass
    (knights, diagonals, the straight step); rows are B×(W+4), padded by 2 columns on each side."""
    w = above.shape[1] - 4
    knight = torch.minimum(torch.minimum(two_above[:, 1:w + 1], two_above[:, 3:w + 3]),
                           torch.minimum(above[:, 0:w], above[:, 4:w + 4])).add_(CHAMFER_KNIGHT)
    diagonal = torch.minimum(above[:, 1:w + 1], above[:, 3:w + 3]).add_(CHAMFER_DIAGONAL)
    return torch.minimum(torch.minimum(knight, diagonal), above[:, 2:w + 2] + CHAMFER_STEP)


def chamfer_distance_fixed(sources: torch.Tensor, cap: int | None = None) -> torch.Tensor:
    """OpenCV's 5×5 chamfer distance (DIST_L2, mask 5) to the nearest source, in 16.16 fixed point.

    sources: bool B×H×W. Returns int32 B×H×W, capped at CHAMFER_MAX (no source at all: every pixel
    is CHAMFER_MAX), or at `cap` if given (min(distance, cap) is exact: costs are non-negative).
    The two raster passes of OpenCV ≤ 4.x (spec G14), run one row at a time over the whole batch;
    the dependence on the left (right) neighbour within a row is a running minimum,
    t[j] = min_k≤j (p[k] + a·(j − k)) = a·j + cummin(p − a·j).
    """
    b, h, w = sources.shape
    if w * CHAMFER_STEP >= 2 ** 30:
        raise ValueError(f"chamfer_distance_fixed: maps up to 16383 px wide fit its int32 arithmetic, got {w}")
    limit = CHAMFER_MAX if cap is None else min(int(cap), CHAMFER_MAX)
    device = sources.device
    # Rows first, so that each row of the whole batch is one contiguous block.
    not_source = (~sources).transpose(0, 1).to(torch.int32).contiguous()
    grid = torch.full((h + 4, b, w + 4), _FAR, dtype=torch.int32, device=device)
    ramp = torch.arange(w, dtype=torch.int32, device=device) * CHAMFER_STEP
    # Values only grow by at most one knight move per row from _FAR: clamp per row only where int32
    # could otherwise overflow (capping once at the end is exact, as every cost is non-negative).
    clamp_rows = h * CHAMFER_KNIGHT >= 2 ** 30
    for i in range(h):  # forward, from the top: moves (−2,±1), (−1,±2), (−1,±1), (−1,0), then (0,−1)
        best = _chamfer_row(grid[i + 1], grid[i]).mul_(not_source[i]).sub_(ramp)
        best = torch.cummin(best, dim=1).values.add_(ramp)
        grid[i + 2, :, 2:w + 2] = best.clamp_(max=_FAR) if clamp_rows else best
    # Backward, from the bottom: the mirrored moves, then (0,+1). The row moves are symmetric, so on
    # the grid mirrored left–right the right-to-left scan becomes a left-to-right one.
    grid = grid.flip(2)
    for i in range(h - 1, -1, -1):
        best = torch.minimum(grid[i + 2, :, 2:w + 2], _chamfer_row(grid[i + 3], grid[i + 4])).sub_(ramp)
        best = torch.cummin(best, dim=1).values.add_(ramp)
        grid[i + 2, :, 2:w + 2] = best.clamp_(max=_FAR) if clamp_rows else best
    return grid[2:h + 2, :, 2:w + 2].flip(2).clamp(max=limit).transpose(0, 1).contiguous()


def distance_transform_l2_mask5(x: torch.Tensor) -> torch.Tensor:
    """`cv2.distanceTransform(x, cv2.DIST_L2, 5)` of OpenCV ≤ 4.x for uint8 maps B×H×W: the chamfer
    distance of every pixel to the nearest zero pixel, float32 (fixed point → float32, × 2^-16).

    OpenCV 5.0 adds float32 costs (1, 1.4f, 2.1969f) instead, which differs by up to ~3e-5 relative.
    A map without any zero pixel gives 8192 here (OpenCV's value for it varies between versions).
    """
    fixed = chamfer_distance_fixed(x == 0)
    return fixed.to(torch.float32) * (2.0 ** -CHAMFER_SHIFT)
