"""elastic_transform (spec A.13): a random affine warp, then a smoothed random displacement field.

Reference (make_*_c.py), per image: `img = float32(u)/255`; pts2 = pts1 + float32(U(−A, A)) (3×2);
`M = cv2.getAffineTransform(pts1, pts2)`; `cv2.warpAffine(img, M, (S, S), INTER_LINEAR,
BORDER_REFLECT_101)` (G11); dx, dy = float32(gaussian(U(−1, 1) S×S, σ, 'reflect', truncate=3)·α);
`map_coordinates(img, (y + dy, x + dx, c), order=1, mode='reflect')` (G12); clip, ×255, truncate.

The warp depends on the OpenCV version (spec 0.6). The released CIFAR-10-C / ImageNet-C files were
made with OpenCV ≤ 4.x, whose warpAffine quantises source positions to 1/32 px (fixed point), so
`warp='opencv4'` — an emulation of that integer arithmetic — is the default. OpenCV 5.0 (the one
installed next to corrbench's tests) uses float coordinates; `warp='opencv5'` reproduces it and is
checked byte for byte against `cv2.warpAffine`. Every step runs batched on the images' device.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from corrbench.corruptions.convert import divide, to_uint8, working_dtype
from corrbench.corruptions.filters import gaussian_taps
from corrbench.corruptions.registry import register

_CIFAR = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))
_TINY = ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02))
_IMAGENET = ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02))

ELASTIC_ALPHA_SIGMA_JITTER = {
    "cifar": tuple((32 * a, 32 * s, 32 * j) for a, s, j in _CIFAR),
    "tiny": tuple((64 * a, 64 * s, 64 * j) for a, s, j in _TINY),
    # ImageNet keeps the reference's 244 (a typo for 224), spec A.13.
    "imagenet": tuple((244 * a, 244 * s, 244 * j) for a, s, j in _IMAGENET),
}
"""(α, σ, A) per severity: field scale, field smoothing σ, affine jitter; the products are computed
as the reference computes them."""

WARPS: tuple[str, ...] = ("opencv4", "opencv5")
"""`opencv4`: 1/32-px fixed-point warpAffine of OpenCV ≤ 4.x (the released files, the default);
`opencv5`: float coordinates (OpenCV 5.0)."""

FIELD_TRUNCATE = 3.0  # the reference's gaussian(..., truncate=3)
_AB_BITS, _INTER_BITS = 10, 5  # OpenCV 4.x warpAffine: coordinates in 1/1024, sub-pixel table 1/32


class ElasticDraws(NamedTuple):
    """The uniforms U[0, 1) of elastic_transform, per image, in the reference's draw order.

    affine: B×3×2, the jitter of the three control points (reference: `uniform(−A, A, (3, 2))`).
    dx, dy: B×S×S, the two displacement fields before smoothing (reference: `uniform(−1, 1, (S, S))`).
    NumPy computes `uniform(lo, hi)` as `lo + (hi − lo)·r` from such an r.
    """

    affine: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor


def draw_elastic(images: torch.Tensor, generator: torch.Generator) -> ElasticDraws:
    """Independent elastic draws for every image of `images`, in the working dtype on their device."""
    batch, height, width = images.shape[0], *images.shape[-2:]
    options = dict(generator=generator, device=generator.device, dtype=working_dtype(images.device))
    affine = torch.rand(batch, 3, 2, **options)
    draws = (affine, torch.rand(batch, height, width, **options), torch.rand(batch, height, width, **options))
    return ElasticDraws(*(d.to(images.device) for d in draws))


def _take_draws(draws: object, images: torch.Tensor) -> ElasticDraws:
    batch, height, width = images.shape[0], *images.shape[-2:]
    shapes = ((batch, 3, 2), (batch, height, width), (batch, height, width))
    if not isinstance(draws, (tuple, list)) or len(draws) != 3 or any(
            not isinstance(d, torch.Tensor) or tuple(d.shape) != s for d, s in zip(draws, shapes)):
        raise ValueError(f"elastic_transform: draws must be ElasticDraws(affine {shapes[0]}, dx {shapes[1]}, "
                         f"dy {shapes[2]}) of U[0, 1) values")
    dtype = working_dtype(images.device)
    return ElasticDraws(*(d.to(device=images.device, dtype=dtype) for d in draws))


# ---- the affine step (G11) ------------------------------------------------------------------------

def source_points(size: int | tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """pts1: (cs+ss, cs+ss), (cs+ss, cs−ss), (cs−ss, cs−ss) with cs = S//2, ss = S//3, as (x, y).
    H×W images (`size` = (H, W)): centre (W//2, H//2), ss = min(H, W)//3."""
    height, width = (size, size) if isinstance(size, int) else size
    cx, cy, half = float(width // 2), float(height // 2), min(height, width) // 3
    return ((cx + half, cy + half), (cx + half, cy - half), (cx - half, cy - half))


@functools.lru_cache(maxsize=None)
def _affine_solver(size: int | tuple[int, int]) -> tuple[tuple, tuple]:
    """OpenCV's `getAffineTransform` solves a 6×6 system by LU with partial pivoting (hal::LU64f,
    3.x–5.0: b_j += α·b_i, then b_i = (b_i − Σ a_ik·b_k) / a_ii). Its matrix depends only on pts1,
    so the elimination is run once here, in the same double arithmetic, and recorded as the
    operations it applies to the right-hand side."""
    rows = []
    for x, y in source_points(size):
        rows += [[x, y, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, x, y, 1.0]]
    forward = []
    for i in range(6):
        pivot = max(range(i, 6), key=lambda j: (abs(rows[j][i]), -j))  # first largest, as LUImpl
        if pivot != i:
            rows[i][i:], rows[pivot][i:] = rows[pivot][i:], rows[i][i:]
            forward.append(("swap", i, pivot, 0.0))
        d = -1.0 / rows[i][i]
        for j in range(i + 1, 6):
            alpha = rows[j][i] * d
            for k in range(i + 1, 6):
                rows[j][k] += alpha * rows[i][k]
            if alpha != 0.0:  # adding 0·b changes nothing
                forward.append(("axpy", j, i, alpha))
    backward = tuple((i, tuple((k, rows[i][k]) for k in range(i + 1, 6) if rows[i][k] != 0.0), rows[i][i])
                     for i in range(5, -1, -1))
    return tuple(forward), backward


def get_affine_transform(size: int | tuple[int, int], targets: torch.Tensor) -> torch.Tensor:
    """`cv2.getAffineTransform(pts1, pts2)` for every image: B×2×3 from pts2 (B×3×2, (x, y)), in
    the dtype of `targets` (float64 as OpenCV, except on MPS)."""
    forward, backward = _affine_solver(size)
    b = [targets[:, i // 2, i % 2] for i in range(6)]  # (x0', y0', x1', y1', x2', y2')
    for op, j, i, alpha in forward:
        if op == "swap":
            b[j], b[i] = b[i], b[j]
        else:
            b[j] = b[j] + alpha * b[i]
    for i, terms, pivot in backward:
        s = b[i]
        for k, a in terms:
            s = s - a * b[k]
        b[i] = divide(s, pivot)  # not s·(1/pivot), which CUDA computes for a Python-scalar divisor
    return torch.stack(b, dim=1).reshape(-1, 2, 3)


def invert_affine(matrices: torch.Tensor) -> torch.Tensor:
    """warpAffine's inversion of M (source → destination), in its double arithmetic: B×2×3."""
    m0, m1, m2, m3, m4, m5 = matrices.reshape(-1, 6).unbind(1)
    det = m0 * m4 - m1 * m3
    det = torch.where(det != 0, 1.0 / det, torch.zeros_like(det))
    a0, a1, a3, a4 = m4 * det, m1 * -det, m3 * -det, m0 * det
    b0 = -a0 * m2 - a1 * m5
    b1 = -a3 * m2 - a4 * m5
    return torch.stack((a0, a1, b0, a3, a4, b1), dim=1).reshape(-1, 2, 3)


def _unfold_reflect101(x: torch.Tensor) -> torch.Tensor:
    """B×C×(2H−1)×(2W−1): x extended by OpenCV's REFLECT_101 (`gfedcb|abcdefgh|gfedcba`, which is
    torch's 'reflect' pad), one whole period 2S − 2 plus one, so that every position p folded
    into the period, and p + 1, index it directly."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, width - 1, 0, height - 1), mode="reflect")


def _fold(index: torch.Tensor, period: int) -> torch.Tensor:
    """index mod period, skipped when every index is already in [0, period)."""
    low, high = torch.aminmax(index)
    return index if low >= 0 and high < period else torch.remainder(index, period)


def _gather_pixels(x: torch.Tensor, flat_index: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """x[b, c].flatten()[flat_index[b] + offset] for every channel: B×C×… from B×… flat indices."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    if offset:
        flat = flat[:, :, offset:]
    index = flat_index.reshape(b, 1, -1).expand(b, c, -1)
    return torch.gather(flat, 2, index).reshape(b, c, *flat_index.shape[1:])


def _corner_indices(x: torch.Tensor, col: torch.Tensor, row: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Flat index of (row, col) in the REFLECT_101 extension of x, and the stride of one row."""
    height, size = x.shape[-2:]
    width = 2 * size - 1
    return _fold(row, 2 * height - 2) * width + _fold(col, 2 * size - 2), width


def _reflect101_corners(x: torch.Tensor, col: torch.Tensor,
                        row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(extended x, flat index of (row, col) in it, row stride) for gathering (row, col) and its +1
    neighbours under REFLECT_101. Usually the positions stray only a few pixels outside the image:
    then x is padded just that far (same values, a fraction of the whole-period extension)."""
    height, size = x.shape[-2:]
    top, bottom = max(0, -row.min().item()), max(0, row.max().item() + 1 - (height - 1))   # +1: the neighbour
    left, right = max(0, -col.min().item()), max(0, col.max().item() + 1 - (size - 1))
    if max(top, bottom) > height - 1 or max(left, right) > size - 1:  # reflect pad covers one reflection
        corner, width = _corner_indices(x, col, row)
        return _unfold_reflect101(x), corner, width
    width = size + left + right
    extended = F.pad(x, (left, right, top, bottom), mode="reflect") if top or bottom or left or right else x
    return extended, (row + top) * width + (col + left), width


def _reflect101_pads(height: int, width: int, bounds: list) -> tuple[int, int, int, int] | None:
    """(left, right, top, bottom): the REFLECT_101 pad that reaches every integer position within
    `bounds` ((col min, row min), (col max, row max)) and its +1 neighbours; None when they reach
    beyond one reflection (then the whole-period extension, `_unfold_reflect101`)."""
    (col_min, row_min), (col_max, row_max) = bounds
    top, bottom = max(0, -row_min), max(0, row_max + 1 - (height - 1))   # +1: the neighbour
    left, right = max(0, -col_min), max(0, col_max + 1 - (width - 1))
    if max(top, bottom) > height - 1 or max(left, right) > width - 1:  # reflect pad covers one reflection
        return None
    return left, right, top, bottom


@functools.lru_cache(maxsize=32)
def _plane_offsets(batch: int, channels: int, plane: int, offsets: tuple[int, ...], device: str) -> torch.Tensor:
    """B×C×K×1 flat offsets (b·C + c)·plane + offsets[k] into a flattened B×C×… image: int32
    where its flat index fits (index_select takes it, and it costs less than int64)."""
    dtype = torch.int32 if batch * channels * plane < 2**31 else torch.int64
    planes = torch.arange(batch * channels, dtype=torch.int64).view(batch, channels, 1, 1) * plane
    return (planes + torch.tensor(offsets).view(1, 1, -1, 1)).to(device=device, dtype=dtype)


class _PairGather:
    """The horizontal neighbour pairs (p[i], p[i + 1]) of every channel of a B×C×… image at B×… flat
    positions i (+ shift, + a per-call offset), as B×C×2×N: one index_select on the flattened image
    per pair of rows (a flat int32 index costs less than gather's int64 index expanded over channels,
    and a pair per call halves the calls)."""

    def __init__(self, x: torch.Tensor, flat_index: torch.Tensor, shift: int) -> None:
        batch, channels = x.shape[:2]
        self.flat = x.reshape(-1)
        plane = self.flat.numel() // max(1, batch * channels)
        planes = _plane_offsets(batch, channels, plane, (shift, shift + 1), str(x.device))
        self.index = torch.add(flat_index.reshape(batch, 1, 1, -1), planes).view(-1)
        self.shape = (batch, channels, 2, -1)
        self.buffer: torch.Tensor | None = None

    def __call__(self, offset: int) -> torch.Tensor:
        """The pairs at position + offset, written over the previous call's result."""
        source = self.flat[offset:] if offset else self.flat
        self.buffer = torch.index_select(source, 0, self.index, out=self.buffer)
        return self.buffer.view(self.shape)


def _fixed_point_terms(inverse: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV 4.x warpAffine's source positions in 1/1024 px as a per-row and a per-column term:
    starts B×2×H×1 (X0[y] = rint((A01·y + b0)·1024) + 16, Y0[y] likewise) and steps B×2×1×W
    (adelta[x] = rint(A00·x·1024), bdelta[x]); X = (X0[y] + adelta[x]) >> 5 is in 1/32 px.
    int32 as OpenCV (saturate_cast<int>); the positions of any image stay far inside its range."""
    a = inverse.reshape(-1, 2, 3)                                            # (A00, A01, b0), (A10, A11, b1)
    cols = torch.arange(width, device=inverse.device, dtype=inverse.dtype)
    rows = torch.arange(height, device=inverse.device, dtype=inverse.dtype)
    scale, delta = float(1 << _AB_BITS), 1 << (_AB_BITS - _INTER_BITS - 1)
    steps = torch.round(a[:, :, 0:1] * cols * scale).int()
    starts = torch.round((a[:, :, 1:2] * rows + a[:, :, 2:3]) * scale).int() + delta
    return starts[:, :, :, None], steps[:, :, None, :]


def _fixed_point_bounds(starts: torch.Tensor, steps: torch.Tensor) -> list:
    """((min col, min row), (max col, max row)) of the integer source pixels over the batch: the
    extremes of a row term plus a column term, and >> is monotonic, so no pass over the grid."""
    low = (starts.amin((2, 3)) + steps.amin((2, 3))) >> _AB_BITS
    high = (starts.amax((2, 3)) + steps.amax((2, 3))) >> _AB_BITS
    return torch.stack((low.amin(0), high.amax(0))).tolist()


def _warp_fixed_point(x: torch.Tensor, starts: torch.Tensor, steps: torch.Tensor,
                      pads: tuple[int, int, int, int] | None) -> torch.Tensor:
    """`warp_affine_opencv4` from `_fixed_point_terms`, with x REFLECT_101-padded by `pads` (None:
    the whole-period extension), which must reach all the positions."""
    batch, channels, height, size = x.shape
    fixed = (starts + steps) >> (_AB_BITS - _INTER_BITS)                     # B×(X, Y)×y×x, in 1/32 px
    # OpenCV's weight table entries: f = (X & 31)/32, taps (1 − f, f) per axis, products in float32
    fraction = (fixed & ((1 << _INTER_BITS) - 1)).to(torch.float32).div_(1 << _INTER_BITS).view(batch, 2, 1, -1)
    x_taps, y_taps = torch.cat((1 - fraction, fraction), 2).unbind(1)        # B×(1 − f, f)×N each
    weights = y_taps.view(batch, 2, 1, 1, -1) * x_taps.view(batch, 1, 1, 2, -1)  # [b, i, 1, j]: y tap i · x tap j
    del fraction, x_taps, y_taps
    fixed >>= _INTER_BITS                                                    # the integer (col, row)
    if pads is None:  # far outside: the whole-period extension
        corner, width = _corner_indices(x, fixed[:, 0], fixed[:, 1])
        extended, shift = _unfold_reflect101(x), 0
    else:
        left, right, top, bottom = pads
        extended = F.pad(x, pads, mode="reflect") if any(pads) else x
        width, shift = size + left + right, top * (size + left + right) + left
        corner = torch.add(fixed[:, 0], fixed[:, 1], alpha=width)
    del fixed
    pairs = _PairGather(extended, corner, shift)
    del corner
    top_weights, bottom_weights = weights.unbind(1)                          # B×1×2×N, broadcast over channels
    total = torch.add(*pairs(0).mul_(top_weights).unbind(2))                 # p00·w00 + p01·w01
    bottom_left, bottom_right = pairs(width).mul_(bottom_weights).unbind(2)  # p10·w10, p11·w11
    return total.add_(bottom_left).add_(bottom_right).view(batch, channels, height, size)


def warp_affine_opencv4(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """G11, OpenCV ≤ 4.x: `warpAffine(float32, M, INTER_LINEAR, BORDER_REFLECT_101)` of B×3×S×S.

    `inverse` is the destination → source map (B×2×3 float64). Source positions are fixed point:
    X = (rint(A00·x·1024) + rint((A01·y + b0)·1024) + 16) >> 5, integer part X >> 5, fraction
    (X & 31)/32; the bilinear weights are float32 products from OpenCV's 32×32 table and the sum is
    `((p00·w00 + p01·w01) + p10·w10) + p11·w11` in float32 (remapBilinear).
    """
    height, width = x.shape[-2:]
    starts, steps = _fixed_point_terms(inverse, height, width)
    return _warp_fixed_point(x, starts, steps, _reflect101_pads(height, width, _fixed_point_bounds(starts, steps)))


def fused_multiply_add(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """fma(a, b, c) of float32 tensors with one rounding, as the FMA instruction.

    a·b is exact in float64; the float64 sum is rounded to odd (TwoSum gives its error), and a
    round-to-odd at 53 bits followed by rounding to 24 bits is the correctly rounded result.
    MPS has no float64: there it is a·b + c with two roundings.
    """
    if a.device.type == "mps":
        return a * b + c
    product = a.to(torch.float64) * b.to(torch.float64)
    addend = c.to(torch.float64)
    total = product + addend
    back = total - product
    error = (product - (total - back)) + (addend - back)
    even = (total.view(torch.int64) & 1) == 0
    toward = torch.where(error > 0, torch.full_like(total, float("inf")), torch.full_like(total, float("-inf")))
    total = torch.where((error != 0) & even, torch.nextafter(total, toward), total)
    return total.to(torch.float32)


def warp_affine_opencv5(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """G11, OpenCV 5.0: the same warp with float32 coordinates (its SIMD warp kernels).

    The inverse map is cast to float32 first (m = float(A)); per destination row y,
    r = y·m01 + m02 in float32 (two roundings); src_x = fma(m00, x, r), likewise src_y. With α, β
    their fractions, v0 = fma(α, p01 − p00, p00), v1 = fma(α, p11 − p10, p10) and
    out = fma(β, v1 − v0, v0), all float32.
    """
    height, size = x.shape[-2:]
    grid = torch.arange(height, device=x.device, dtype=torch.float32)
    m = [v.to(torch.float32)[:, None] for v in inverse.reshape(-1, 6).unbind(1)]
    x_rows = (grid * m[1] + m[2])[:, :, None]                               # per destination row y
    y_rows = (grid * m[4] + m[5])[:, :, None]
    columns = torch.arange(size, device=x.device, dtype=torch.float32)[None, None, :]
    src_x = fused_multiply_add(m[0][:, :, None].expand(-1, height, size), columns.expand(len(x), height, size),
                               x_rows.expand(-1, -1, size))
    src_y = fused_multiply_add(m[3][:, :, None].expand(-1, height, size), columns.expand(len(x), height, size),
                               y_rows.expand(-1, -1, size))
    col, row = torch.floor(src_x), torch.floor(src_y)
    alpha, beta = (src_x - col)[:, None], (src_y - row)[:, None]
    extended, corner, width = _reflect101_corners(x, col.long(), row.long())
    p00, p01 = _gather_pixels(extended, corner), _gather_pixels(extended, corner, 1)
    p10, p11 = _gather_pixels(extended, corner, width), _gather_pixels(extended, corner, width + 1)
    top = fused_multiply_add(alpha.expand_as(p00), p01 - p00, p00)
    bottom = fused_multiply_add(alpha.expand_as(p10), p11 - p10, p10)
    return fused_multiply_add(beta.expand_as(top), bottom - top, top)


# ---- the displacement fields (G1 with 'reflect') and the resampling (G12) --------------------------

@functools.lru_cache(maxsize=64)
def _smoothing_matrix(sigma: float, size: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """K (S×S) with (K @ v)_i = Σ_t w_|t|·v[reflect(i + t)]: scipy's 1-D Gaussian (G1 taps,
    truncate 3) with the 'reflect' border (`dcba|abcd|dcba`, period 2S) folded in, any radius."""
    taps = gaussian_taps(float(sigma), FIELD_TRUNCATE)
    radius = len(taps) - 1
    offsets = torch.arange(-radius, radius + 1, dtype=torch.int64)
    weights = torch.tensor([taps[abs(int(t))] for t in offsets], dtype=torch.float64)
    source = torch.remainder(torch.arange(size)[:, None] + offsets[None, :], 2 * size)
    source = torch.minimum(source, 2 * size - 1 - source)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights.expand(size, -1).contiguous())
    return matrix.to(device=device, dtype=dtype)


def smooth_field(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """`gaussian(field, σ, mode='reflect', truncate=3)` of B×S×S fields (G1 with 'reflect').

    Applied as two matrix products with the border folded into the kernel matrix. scipy sums the
    same products in another order, so values can differ in the last float64 bits (≤ 1e-15
    relative); the reference casts α·field to float32 right after, where such a difference shows
    with probability ~1e-8 per value. σ ≤ 1e-15 is the identity, as in scipy.
    """
    if sigma <= 1e-15:
        return field
    rows = _smoothing_matrix(float(sigma), field.shape[-2], str(field.device), field.dtype)
    cols = _smoothing_matrix(float(sigma), field.shape[-1], str(field.device), field.dtype)
    return rows @ field @ cols.T


def _map_reflect(c: torch.Tensor, size: int, *, in_place: bool = False) -> torch.Tensor:
    """scipy's `map_coordinate(c, len, NI_EXTEND_REFLECT)`: folds coordinates into [−1, S − 1].

    c < 0: c ← 2S·trunc(−c/2S) + c if c < −2S; then c + 2S if c < −S, else (−c or 1e−15 if
    c > −1e−15) − 1. c > S − 1: c ← c − 2S·trunc(c/2S); then 2S − c − 1 if c ≥ S.
    Coordinates in [0, S) are kept, so only the few outside are picked out and folded; `in_place`
    folds them in c itself (contiguous), else a folded copy is returned when any are outside.
    """
    flat = c.view(-1) if in_place else c.reshape(-1)
    # c − clamp(c, 0, S⁻) is nonzero exactly outside [0, S) (two arithmetic passes, cheaper than
    # comparisons on this path); S⁻ is the value of c's dtype just below S
    outside = torch.clamp(flat, 0.0, _just_below(size, c.dtype)).sub_(flat).nonzero().squeeze(1)
    if outside.numel() == 0:  # the usual case for whole images: nothing to fold
        return c
    folded = _reflect_outside(flat.index_select(0, outside), size)
    if in_place:
        flat.index_copy_(0, outside, folded)
        return c
    return flat.index_copy(0, outside, folded).view(c.shape)


@functools.lru_cache(maxsize=32)
def _just_below(size: int, dtype: torch.dtype) -> float:
    """The largest `dtype` value below `size` (a Python float, which holds it exactly)."""
    return torch.nextafter(torch.tensor(float(size), dtype=dtype), torch.tensor(0.0, dtype=dtype)).item()


def _reflect_outside(c: torch.Tensor, size: int) -> torch.Tensor:
    """`_map_reflect`'s folding of coordinates outside [0, S), elementwise."""
    period = 2.0 * size
    low, high = (v.item() for v in torch.aminmax(c))
    if low >= -size and high < period:  # within one reflection: the branches reduce to these
        below = (-c).clamp_min_(1e-15).sub_(1)  # max(−c, 1e−15) is "−c, or 1e−15 if c > −1e−15"
        return torch.where(c < 0, below, (period - c).sub_(1))  # the others are ≥ S
    below = torch.where(c < -period, period * torch.trunc(divide(-c, period)) + c, c)
    below = torch.where(below < -size, below + period, torch.where(below > -1e-15, 1e-15, -below) - 1)
    above = c - period * torch.trunc(divide(c, period))
    above = torch.where(above >= size, (period - above) - 1, above)
    return torch.where(c < 0, below, torch.where(c > size - 1, above, c))


def _sample_folded(padded: torch.Tensor, folded: torch.Tensor) -> torch.Tensor:
    """The bilinear step of `map_coordinates_reflect`: `padded` is the B×C×(H+2)×(W+2) image with
    its 1-px edge-replicating border, in the field dtype; `folded` the 2×B×H×W (column; row)
    positions folded into [−1, S − 1], overwritten with weights. B×C×H×W in the field dtype.

    Memory is kept to a few image-sized tensors (per corner, not all four at once): the chunk's
    temporaries then stay in the allocator's heap."""
    batch, channels = padded.shape[:2]
    height, width = padded.shape[-2] - 2, padded.shape[-1]
    start = torch.floor(folded)
    # Neighbours −1 → 0 and S → S − 1 are the border: (row + 1, column + 1) in the padded image.
    position = start.to(torch.int32)
    index = torch.add(position[0], position[1], alpha=width).view(batch, 1, 1, -1)
    index = torch.add(index, _plane_offsets(batch, channels, padded[0, 0].numel(), (width + 1,), str(padded.device)))
    del position
    w0 = folded.sub_(start).neg_().add_(1.0)                                 # 1 − (c − floor c), both axes
    del start
    w1 = 1.0 - w0
    wx0, wy0, wx1, wy1 = (w.view(batch, 1, -1) for w in (*w0, *w1))
    flat, index = padded.reshape(-1), index.view(-1)
    total = flat.index_select(0, index).view(batch, channels, -1).mul_(wy0).mul_(wx0)
    corner = None
    for offset, wy, wx in ((1, wy0, wx1), (width, wy1, wx0), (width + 1, wy1, wx1)):  # row-major, as scipy
        corner = torch.index_select(flat[offset:], 0, index, out=corner)
        total.add_(corner.view(batch, channels, -1).mul_(wy).mul_(wx))
    return total.view(batch, channels, height, -1)


def map_coordinates_reflect(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """G12: `map_coordinates(img_hwc, (rows, cols, c), order=1, mode='reflect')` per channel.

    x: float32 B×C×S×S; rows, cols: float64 B×S×S source positions. scipy folds each coordinate
    into range, takes start = floor, weights w0 = 1 − f and w1 = 1 − w0, neighbours −1 → 0 and
    S → S − 1, and sums ((v·wy)·wx) over the corners in row-major order in double, then casts to
    the image dtype.
    """
    folded = torch.stack((_map_reflect(cols, x.shape[-1]), _map_reflect(rows, x.shape[-2])))
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate").to(rows.dtype)
    return _sample_folded(padded, folded).to(x.dtype)


@functools.lru_cache(maxsize=16)
def _pixel_grid(height: int, width: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """2×1×H×W: each pixel's column, then its row (cached; never written to)."""
    cols = torch.arange(width, dtype=dtype).expand(height, width)
    rows = torch.arange(height, dtype=dtype)[:, None].expand(height, width)
    return torch.stack((cols, rows))[:, None].to(device)


def _displaced_positions(dx: torch.Tensor, dy: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """2×B×H×W (column + dx; row + dy), folded into [−1, S − 1] by scipy's 'reflect', with
    dx = float32(gaussian(uniform(−1, 1), σ)·α) from the U[0, 1) draws, widened exactly to their dtype."""
    batch, height, width = dx.shape
    # Both fields in one batch; the product is cast straight to float32, as the reference casts it
    fields = smooth_field(torch.cat((dx, dy)).mul_(2.0).add_(-1.0), sigma)  # −1 + 2u: uniform(−1, 1)
    fields = torch.mul(fields, alpha, out=torch.empty_like(fields, dtype=torch.float32))
    positions = torch.add(_pixel_grid(height, width, str(dx.device), dx.dtype), fields.view(2, batch, height, width))
    if height == width:  # one fold for both axes
        return _map_reflect(positions, width, in_place=True)
    _map_reflect(positions[0], width, in_place=True)
    _map_reflect(positions[1], height, in_place=True)
    return positions


CPU_CHUNK_VALUES = 3 << 15
"""Pixel values (B·C·H·W) per chunk on the CPU (32 CIFAR images): as chunks.py's, but smaller, so
that a chunk's temporaries (about 120 KB per CIFAR image at the peak) stay in cache and in the
allocator's heap, which the next chunk reuses — freshly mapped pages cost more than the work done
on them. The draws are sliced with the images, and the smoothing products give the same bits for
any batch, so the bytes do not depend on it."""


# ---- the corruption ---------------------------------------------------------------------------------

@register("elastic_transform", stochastic=True, table=ELASTIC_ALPHA_SIGMA_JITTER,
          parameters="(α, σ, A): displacement scale, its Gaussian σ, affine jitter of the control points",
          spec="A.13")
def elastic_transform(images: torch.Tensor, severity: int, *, scale: str,
                      generator: torch.Generator | None = None, draws: ElasticDraws | None = None,
                      warp: str = "opencv4") -> torch.Tensor:
    """Spec A.13 on uint8 B×3×S×S: random affine warp (G11), then displacement by smoothed uniform
    fields (G12); every image has its own draws.

    draws: `ElasticDraws(affine B×3×2, dx B×S×S, dy B×S×S)` of U[0, 1) (see `draw_elastic`).
    warp: 'opencv4' (1/32-px fixed point, as the released files were made; default) or 'opencv5'
    (float coordinates, as OpenCV 5.0).
    """
    if warp not in WARPS:
        raise ValueError(f"elastic_transform: warp must be one of {WARPS}, got {warp!r}")
    alpha, sigma, jitter = ELASTIC_ALPHA_SIGMA_JITTER[scale][severity - 1]
    draws = draw_elastic(images, generator) if draws is None else _take_draws(draws, images)
    batch, height, width, device = images.shape[0], images.shape[-2], images.shape[-1], images.device
    size = height if height == width else (height, width)
    # The affine maps are per image but tiny: the whole batch at once, before the chunks.
    # pts2 = pts1 + float32(uniform(−A, A)), added in float32
    sources = torch.tensor(source_points(size), device=device, dtype=torch.float32)
    offsets = (-jitter + (jitter - -jitter) * draws.affine).to(torch.float32)
    inverse = invert_affine(get_affine_transform(size, (sources + offsets).to(working_dtype(device))))
    if warp == "opencv4":
        terms = _fixed_point_terms(inverse, height, width)
        warp_kernel = functools.partial(_warp_fixed_point,
                                        pads=_reflect101_pads(height, width, _fixed_point_bounds(*terms)))
    else:
        terms, warp_kernel = (inverse,), warp_affine_opencv5
    # np.array(img, float32) / 255. stays float32: a float32 0-dim divisor on the images' device
    # promotes the bytes to float32 and divides in IEEE arithmetic there (see convert.divide)
    unit = torch.tensor(255.0, dtype=torch.float32, device=device)
    kernel = functools.partial(_elastic, unit=unit, warp=warp_kernel, alpha=alpha, sigma=sigma)
    per_image = (draws.dx, draws.dy, *terms)
    step = batch if device.type != "cpu" else max(1, CPU_CHUNK_VALUES // max(1, images.numel() // max(1, batch)))
    if step >= batch:
        return kernel(images, *per_image)
    return torch.cat([kernel(images[i:i + step], *(p[i:i + step] for p in per_image)) for i in range(0, batch, step)])


def _elastic(images: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, *terms: torch.Tensor, unit: torch.Tensor,
             warp: Callable[..., torch.Tensor], alpha: float, sigma: float) -> torch.Tensor:
    """One chunk: uint8 images, their field draws and the per-image warp terms (`warp`'s arguments)."""
    warped = warp(torch.div(images, unit), *terms)
    if alpha == 0:  # no displacement: scipy's bilinear at integral positions returns each pixel (v·1·1 + 0)
        return to_uint8(warped)
    positions = _displaced_positions(dx, dy, alpha, sigma)
    # G12 on the warped image with its 1-px edge border, in the field dtype (see map_coordinates_reflect)
    padded = F.pad(warped, (1, 1, 1, 1), mode="replicate").to(positions.dtype)
    del warped  # the chunk's memory peaks below: let it go
    return to_uint8(_sample_folded(padded, positions).to(torch.float32))
