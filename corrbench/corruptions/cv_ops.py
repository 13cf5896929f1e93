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
            if out is None:
                out = tap.clone() if weight == 1 else tap * weight
            else:
                out.add_(tap, alpha=weight)  # integer maps: exact, and no temporary
    return out if out is not None else torch.zeros_like(padded[:, 1:-1, 1:-1])


# ---- G15: box blurs, filter2D, equalizeHist ------------------------------------------------------


def box_sum3(x: torch.Tensor) -> torch.Tensor:
    """Sum over each pixel's 3×3 neighbourhood with a REFLECT_101 border, in x's dtype (rows, then columns)."""
    p = pad_reflect101(x, 1)
    rows = torch.add(p[:, :-2], p[:, 1:-1]).add_(p[:, 2:])  # in place: the same sums, fewer temporaries
    return torch.add(rows[:, :, :-2], rows[:, :, 1:-1]).add_(rows[:, :, 2:])


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
            return (x * magic).bitwise_right_shift_(shift)
    return torch.div(x, divisor, rounding_mode="floor")


def blur3_uint8(x: torch.Tensor) -> torch.Tensor:
    """`cv2.blur(x, (3, 3))` on uint8 maps: round(sum/9) = floor((2·sum + 9) / 18); a sum of nine
    integers never ties."""
    total = box_sum3(x.to(torch.int32))
    return floor_divide(total.mul_(2).add_(9), 18, 2 * 9 * 255 + 9).to(torch.uint8)


def filter2d_uint8(x: torch.Tensor, kernel: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """`cv2.filter2D(x, cv2.CV_8U, K)` for uint8 maps and an integer 3×3 K: correlation with a
    REFLECT_101 border, the integer sum clipped to 0..255 (summed in int16 where it cannot overflow:
    half the memory traffic of int32)."""
    exact16 = 255 * sum(abs(k) for row in kernel for k in row) < 2 ** 15
    total = correlate3x3_padded(pad_reflect101(x.to(torch.int16 if exact16 else torch.int32), 1), kernel)
    return total.clamp_(0, 255).to(torch.uint8)


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """`cv2.equalizeHist` on each uint8 map of B×H×W (G15).

    With hist the 256-bin histogram and i0 its first non-empty bin: a constant map becomes i0
    everywhere; otherwise lut[i] = rhe(float32(Σ_{i0<j≤i} hist[j]) · float32(255/(N − hist[i0]))).
    """
    b = x.shape[0]
    # Every pixel's bin in one histogram of all the maps (b·256 bins): one bincount, and int32
    # indices where a scatter_add_ and a gather would need int64 ones.
    offsets = torch.arange(0, 256 * b, 256, dtype=torch.int32, device=x.device).view(b, 1)
    bins = x.reshape(b, -1).to(torch.int32).add_(offsets)
    n = bins.shape[1]
    hist = torch.bincount(bins.view(-1), minlength=256 * b).view(b, 256)
    first = (hist > 0).to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    first_count = hist.gather(1, first)
    cumulative = hist.cumsum(dim=1)
    above_first = cumulative - cumulative.gather(1, first)  # Σ hist[i0+1..i]; only bins ≥ i0 are looked up
    rest = (n - first_count).clamp_(min=1).to(torch.float32)
    scale = torch.full_like(rest, 255.0) / rest  # float32, as OpenCV's `255.f / (total - hist[i0])`
    lut = (above_first.to(torch.float32) * scale).round_().clamp_(0, 255)  # round() is half-to-even
    lut = torch.where(first_count == n, first.to(torch.float32), lut).to(torch.uint8)
    return lut.view(-1).index_select(0, bins.view(-1)).view(x.shape)


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

    def empty_flat(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """An uninitialised tensor shaped like `flat`'s, with its margin zeroed."""
        out = torch.empty(self.size + 2 * self.margin, dtype=dtype, device=device)
        out[:self.margin] = 0
        out[-self.margin:] = 0
        return out

    def interior_padded(self, flat: torch.Tensor) -> torch.Tensor:
        """The padded maps B×(H+2)×(W+2) of a tensor shaped like `flat`'s, as a view."""
        return flat[self.margin:self.margin + self.size].view(self.b, self.h + 2, self.w + 2)

    def zero_padding(self, values: torch.Tensor) -> None:
        """Zero the padding positions of flat values (size B·(H+2)·(W+2)), in place."""
        maps = values.view(self.b, self.h + 2, self.w + 2)
        maps[:, [0, -1]] = 0
        maps[:, :, [0, -1]] = 0

    def at(self, flat: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        """The values at offset (dy, dx) from every position, from a tensor made by `flat`."""
        start = self.margin + dy * self.stride + dx
        return flat[start:start + self.size]

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
    # `grid.dilate8` unrolled into two margin-padded buffers used in turn and one for the row ORs
    # (fresh allocations are costly on the CPU: first-touch page faults).
    n, pad, two = edges.numel(), grid.stride + 1, 2 * grid.stride
    padded = torch.zeros((2, n + 2 * pad), dtype=torch.bool, device=edges.device)
    padded[0, pad:pad + n] = edges
    rows = torch.empty(n + two, dtype=torch.bool, device=edges.device)  # 1×3 ORs, as in `dilate8`
    current = 0
    while True:
        ext = padded[current]
        torch.bitwise_or(ext[:-2], ext[1:-1], out=rows).bitwise_or_(ext[2:])
        grown = padded[1 - current, pad:pad + n]
        torch.bitwise_or(rows[:-two], rows[grid.stride:-grid.stride], out=grown).bitwise_or_(rows[two:])
        grown.logical_and_(candidates)
        if torch.equal(grown, ext[pad:pad + n]):
            return grown
        current = 1 - current


def _above(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-ones (−1) where a > b, else 0, for int16 tensors whose difference fits int16.
    Sign-bit arithmetic: several times faster than a comparison plus `where` on CPU."""
    return torch.sub(b, a).bitwise_right_shift_(15)


def _at_least(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All-ones (−1) where a ≥ b, else 0 (int16, as `_above`)."""
    return torch.sub(a, b).bitwise_right_shift_(15).bitwise_not_()


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
    # Buffers are filled in place (fresh allocations are costly on the CPU: first-touch page faults).
    pixels = grid.empty_flat(torch.int16, x.device)
    padded = grid.interior_padded(pixels)
    padded[:, 1:-1, 1:-1] = x
    padded[:, 0, 1:-1], padded[:, -1, 1:-1] = padded[:, 1, 1:-1], padded[:, -2, 1:-1]
    padded[:, :, 0], padded[:, :, -1] = padded[:, :, 1], padded[:, :, -2]
    smooth_x = torch.empty_like(pixels)  # aligned with `pixels`
    smooth_x[[0, -1]] = 0
    torch.add(pixels[:-2], pixels[2:], out=smooth_x[1:-1]).add_(pixels[1:-1]).add_(pixels[1:-1])
    smooth_y = torch.empty(grid.size + 2, dtype=torch.int16, device=x.device)  # position k sits at index k + 1
    smooth_y[[0, -1]] = 0
    torch.add(grid.at(pixels, -1, 0), grid.at(pixels, 1, 0), out=smooth_y[1:-1])
    smooth_y[1:-1].add_(grid.at(pixels, 0, 0)).add_(grid.at(pixels, 0, 0))
    gx = smooth_y[2:] - smooth_y[:-2]
    gy = grid.at(smooth_x, 1, 0) - grid.at(smooth_x, -1, 0)
    ax, ay = gx.abs(), gy.abs()
    magnitudes = grid.empty_flat(torch.int16, x.device)
    mag = grid.at(magnitudes, 0, 0)
    torch.add(ax, ay, out=mag)
    grid.zero_padding(mag)

    def nb(dy: int, dx: int) -> torch.Tensor:
        return grid.at(magnitudes, dy, dx)

    # OpenCV: horizontal if |gy|·2^15 < |gx|·TG22, vertical if |gy|·2^15 > |gx|·(TG22 + 2^16).
    # The masks are combined in place (fresh allocations are costly on the CPU: first-touch page faults).
    ax32, ay32 = ax.to(torch.int32), ay.to(torch.int32).mul_(1 << 15)
    tg22 = ax32 * _TG22
    horizontal = torch.sub(ay32, tg22).bitwise_right_shift_(31).to(torch.int16)
    vertical = tg22.add_(ax32.mul_(1 << 16)).sub_(ay32).bitwise_right_shift_(31).to(torch.int16)
    # OpenCV's s = +1 (same signs); only used where gx and gy are both non-zero
    same_sign = torch.bitwise_xor(gx, gy).bitwise_right_shift_(15).bitwise_not_()
    keep_horizontal = _above(mag, nb(0, -1)).bitwise_and_(_at_least(mag, nb(0, 1)))
    keep_vertical = _above(mag, nb(-1, 0)).bitwise_and_(_at_least(mag, nb(1, 0)))
    keep_diagonal = _above(mag, nb(-1, -1)).bitwise_and_(_above(mag, nb(1, 1))).bitwise_and_(same_sign)
    other_diagonal = _above(mag, nb(-1, 1)).bitwise_and_(_above(mag, nb(1, -1))).bitwise_and_(same_sign.bitwise_not_())
    keep_diagonal.bitwise_or_(other_diagonal)
    # keep = (horizontal & keep_h) | (~horizontal & ((vertical & keep_v) | (~vertical & keep_d)))
    keep_vertical.bitwise_and_(vertical).bitwise_or_(keep_diagonal.bitwise_and_(vertical.bitwise_not_()))
    keep = keep_horizontal.bitwise_and_(horizontal).bitwise_or_(keep_vertical.bitwise_and_(horizontal.bitwise_not_()))
    # mag > low; mag is 0 on the padding, so no padding qualifies
    candidates = keep.bitwise_and_(torch.sub(low, mag).bitwise_right_shift_(15))
    strong = torch.sub(high, mag).bitwise_right_shift_(15).bitwise_and_(candidates)
    edges = _flood(grid, candidates.to(torch.bool), strong.to(torch.bool))
    return grid.interior(edges).contiguous()


# ---- G14: distanceTransform(DIST_L2, 5) ----------------------------------------------------------

CHAMFER_SHIFT = 16
CHAMFER_STEP, CHAMFER_DIAGONAL, CHAMFER_KNIGHT = 65536, 91750, 143976  # 1, 1.4, 2.1969 in 16.16 fixed point
CHAMFER_MAX = (2 ** 31 - 1) >> 2  # OpenCV caps every distance at INT_MAX >> 2 (8192 px)
_FAR = 1 << 30  # stands for OpenCV's INT_MAX "no source yet"; any value ≥ CHAMFER_MAX ends capped anyway
_NONE = 2 ** 31 - 1  # "not a source": above every cost, less the ramp, that a pass can reach


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

    def constant(value: int) -> torch.Tensor:  # 0-d operands: cheaper per op than Python scalars
        return torch.tensor(value, dtype=torch.int32, device=device)

    # Rows first, so that each row of the whole batch is one contiguous block; rows padded by 2 on
    # every side with "no source yet".
    grid = torch.full((h + 4, b, w + 4), _FAR, dtype=torch.int32, device=device)
    ramp = torch.arange(w, dtype=torch.int32, device=device) * CHAMFER_STEP
    step_less_ramp = CHAMFER_STEP - ramp
    # A source pixel costs 0, i.e. −ramp once the ramp is taken off; the others get a value above
    # every move's cost less the ramp (≤ _FAR + 2 knight moves), so the moves decide there.
    not_source = (~sources).transpose(0, 1).to(torch.int32)
    sources_less_ramp = not_source.mul_(constant(_NONE)).sub_(ramp)
    source_rows = sources_less_ramp.unbind(0)
    # Per-op overhead dominates these small row ops: every view is made once, up front (shifted[r][k]
    # is grid row r at columns j + k − 2, j < w), and every row op writes into a preallocated buffer.
    # pair[r % 3] = min(row r at columns j ± 1) is reused: for the row below it is the diagonal
    # move's source, for the row two below the knight move's (three rolling rows). Integer sums and
    # minima are exact in any order: min(k + KNIGHT, d + DIAGONAL, s + STEP) =
    # min(min(k + KNIGHT − DIAGONAL, d) + DIAGONAL − STEP, s) + STEP.
    shifted = [row.unbind(0) for row in grid.unfold(2, w, 1).permute(0, 2, 1, 3).unbind(0)]
    pair = torch.full((3, b, w), _FAR, dtype=torch.int32, device=device).unbind(0)  # rows 0, 1: padding
    best, running = torch.empty((2, b, w), dtype=torch.int32, device=device)
    indices = torch.empty((b, w), dtype=torch.int64, device=device)
    knight_less_diagonal = constant(CHAMFER_KNIGHT - CHAMFER_DIAGONAL)
    diagonal_less_step = constant(CHAMFER_DIAGONAL - CHAMFER_STEP)
    # Values only grow by at most one knight move per row from _FAR: clamp per row only where int32
    # could otherwise overflow (capping once at the end is exact, as every cost is non-negative).
    clamp_rows = h * CHAMFER_KNIGHT >= 2 ** 30

    def moves(above: int, two_above: int, fresh_pair: bool) -> None:
        """best = the cheapest of the 7 moves into a row from grid rows `above` and `two_above`,
        less the ramp; updates pair[above % 3] first unless it is still the all-_FAR padding."""
        left2, left1, middle, right1, right2 = shifted[above]
        if fresh_pair:
            torch.minimum(left1, right1, out=pair[above % 3])
        torch.minimum(left2, right2, out=best)
        torch.minimum(best, pair[two_above % 3], out=best)
        torch.minimum(best.add_(knight_less_diagonal), pair[above % 3], out=best)
        torch.minimum(best.add_(diagonal_less_step), middle, out=best)
        best.add_(step_less_ramp)

    def finish(i: int) -> None:
        """Running minimum along the row, back into grid row i + 2."""
        torch.cummin(best, dim=1, out=(running, indices))
        target = shifted[i + 2][2]
        torch.add(running, ramp, out=target)
        if clamp_rows:
            target.clamp_(max=_FAR)

    for i in range(h):  # forward, from the top: moves (−2,±1), (−1,±2), (−1,±1), (−1,0), then (0,−1)
        moves(i + 1, i, i > 0)
        torch.minimum(best, source_rows[i], out=best)
        finish(i)
    # Backward, from the bottom: the mirrored moves, then (0,+1). The row moves are symmetric, so on
    # the grid mirrored left–right the right-to-left scan becomes a left-to-right one. Mirrored in
    # place, so that the views stay valid. Rows h + 2, h + 3 are the padding below.
    grid.copy_(grid.flip(2))
    pair[(h + 2) % 3].fill_(_FAR)
    pair[(h + 3) % 3].fill_(_FAR)
    # forward values less the ramp, in the buffer of sources_less_ramp (no longer needed)
    forward_less_ramp = torch.sub(grid[2:h + 2, :, 2:w + 2], ramp, out=sources_less_ramp).unbind(0)
    for i in range(h - 1, -1, -1):
        moves(i + 3, i + 4, i < h - 1)
        torch.minimum(best, forward_less_ramp[i], out=best)
        finish(i)
    out = torch.empty((b, h, w), dtype=torch.int32, device=device)
    return torch.clamp(grid.flip(2)[2:h + 2, :, 2:w + 2].transpose(0, 1), max=limit, out=out)


def distance_transform_l2_mask5(x: torch.Tensor) -> torch.Tensor:
    """`cv2.distanceTransform(x, cv2.DIST_L2, 5)` of OpenCV ≤ 4.x for uint8 maps B×H×W: the chamfer
    distance of every pixel to the nearest zero pixel, float32 (fixed point → float32, × 2^-16).

    OpenCV 5.0 adds float32 costs (1, 1.4f, 2.1969f) instead, which differs by up to ~3e-5 relative.
    A map without any zero pixel gives 8192 here (OpenCV's value for it varies between versions).
    """
    fixed = chamfer_distance_fixed(x == 0)
    return fixed.to(torch.float32) * (2.0 ** -CHAMFER_SHIFT)
