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
from typing import NamedTuple

import torch
import torch.nn.functional as F

from corrbench.corruptions.chunks import map_chunks
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


def warp_affine_opencv4(x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """G11, OpenCV ≤ 4.x: `warpAffine(float32, M, INTER_LINEAR, BORDER_REFLECT_101)` of B×3×S×S.

    `inverse` is the destination → source map (B×2×3 float64). Source positions are fixed point:
    X = (rint(A00·x·1024) + rint((A01·y + b0)·1024) + 16) >> 5, integer part X >> 5, fraction
    (X & 31)/32; the bilinear weights are float32 products from OpenCV's 32×32 table and the sum is
    `((p00·w00 + p01·w01) + p10·w10) + p11·w11` in float32 (remapBilinear).
    """
    cols = torch.arange(x.shape[-1], device=x.device, dtype=inverse.dtype)
    rows = torch.arange(x.shape[-2], device=x.device, dtype=inverse.dtype)
    a = [v[:, None] for v in inverse.reshape(-1, 6).unbind(1)]
    scale, delta = float(1 << _AB_BITS), 1 << (_AB_BITS - _INTER_BITS - 1)
    shift, mask = _AB_BITS - _INTER_BITS, (1 << _INTER_BITS) - 1
    x_steps = torch.round(a[0] * cols * scale).long()                       # adelta[x]
    y_steps = torch.round(a[3] * cols * scale).long()                       # bdelta[x]
    x_rows = torch.round((a[1] * rows + a[2]) * scale).long() + delta       # X0[y]
    y_rows = torch.round((a[4] * rows + a[5]) * scale).long() + delta       # Y0[y]
    fixed_x = (x_rows[:, :, None] + x_steps[:, None, :]) >> shift           # B×y×x, in 1/32 px
    fixed_y = (y_rows[:, :, None] + y_steps[:, None, :]) >> shift
    fx = (fixed_x & mask).to(torch.float32).div_(1 << _INTER_BITS)[:, None]
    fy = (fixed_y & mask).to(torch.float32).div_(1 << _INTER_BITS)[:, None]
    extended, corner, width = _reflect101_corners(x, fixed_x >> _INTER_BITS, fixed_y >> _INTER_BITS)
    gx, gy = 1 - fx, 1 - fy
    total = _gather_pixels(extended, corner) * (gy * gx)
    total += _gather_pixels(extended, corner, 1) * (gy * fx)
    total += _gather_pixels(extended, corner, width) * (fy * gx)
    total += _gather_pixels(extended, corner, width + 1) * (fy * fx)
    return total


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


def _map_reflect(c: torch.Tensor, size: int) -> torch.Tensor:
    """scipy's `map_coordinate(c, len, NI_EXTEND_REFLECT)`: folds coordinates into [−1, S − 1].

    c < 0: c ← 2S·trunc(−c/2S) + c if c < −2S; then c + 2S if c < −S, else (−c or 1e−15 if
    c > −1e−15) − 1. c > S − 1: c ← c − 2S·trunc(c/2S); then 2S − c − 1 if c ≥ S.
    """
    period = 2.0 * size
    low, high = torch.aminmax(c)
    if low >= 0 and high <= size - 1:  # the usual case: nothing to fold
        return c
    if low >= -size and high < period:  # within one reflection: the branches reduce to these
        below = torch.where(c > -1e-15, 1e-15, -c) - 1
        return torch.where(c < 0, below, torch.where(c >= size, (period - c) - 1, c))
    below = torch.where(c < -period, period * torch.trunc(divide(-c, period)) + c, c)
    below = torch.where(below < -size, below + period, torch.where(below > -1e-15, 1e-15, -below) - 1)
    above = c - period * torch.trunc(divide(c, period))
    above = torch.where(above >= size, (period - above) - 1, above)
    return torch.where(c < 0, below, torch.where(c > size - 1, above, c))


def map_coordinates_reflect(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """G12: `map_coordinates(img_hwc, (rows, cols, c), order=1, mode='reflect')` per channel.

    x: float32 B×C×S×S; rows, cols: float64 B×S×S source positions. scipy folds each coordinate
    into range, takes start = floor, weights w0 = 1 − f and w1 = 1 − w0, neighbours −1 → 0 and
    S → S − 1, and sums ((v·wy)·wx) over the corners in row-major order in double, then casts to
    the image dtype.
    """
    height, size, dtype = x.shape[-2], x.shape[-1], rows.dtype
    cy, cx = _map_reflect(rows, height), _map_reflect(cols, size)
    y0, x0 = torch.floor(cy), torch.floor(cx)
    wy0, wx0 = 1.0 - (cy - y0), 1.0 - (cx - x0)
    wy1, wx1 = (1.0 - wy0)[:, None], (1.0 - wx0)[:, None]
    wy0, wx0 = wy0[:, None], wx0[:, None]
    # Positions are in [−1, S − 1]: neighbours −1 → 0 and S → S − 1 are an edge-replicating 1-px pad.
    width = size + 2
    corner = (y0.long() + 1) * width + (x0.long() + 1)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate").to(dtype)
    total = _gather_pixels(padded, corner).mul_(wy0).mul_(wx0)
    total += _gather_pixels(padded, corner, 1).mul_(wy0).mul_(wx1)
    total += _gather_pixels(padded, corner, width).mul_(wy1).mul_(wx0)
    total += _gather_pixels(padded, corner, width + 1).mul_(wy1).mul_(wx1)
    return total.to(x.dtype)


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
    kernel = functools.partial(_elastic, alpha=alpha, sigma=sigma, jitter=jitter, warp=warp)
    return map_chunks(kernel, images, draws)


def _elastic(images: torch.Tensor, draws: ElasticDraws, *, alpha: float, sigma: float, jitter: float,
             warp: str) -> torch.Tensor:
    height, width, device = images.shape[-2], images.shape[-1], images.device
    size = height if height == width else (height, width)
    field_dtype = working_dtype(device)
    x = divide(images.to(torch.float32), 255.0)  # np.array(img, float32) / 255. stays float32
    # pts2 = pts1 + float32(uniform(−A, A)), added in float32
    sources = torch.tensor(source_points(size), device=device, dtype=torch.float32)
    offsets = (-jitter + (jitter - -jitter) * draws.affine).to(torch.float32)
    inverse = invert_affine(get_affine_transform(size, (sources + offsets).to(field_dtype)))
    x = warp_affine_opencv4(x, inverse) if warp == "opencv4" else warp_affine_opencv5(x, inverse)
    if alpha == 0:  # no displacement: scipy's bilinear at integral positions returns each pixel (v·1·1 + 0)
        return to_uint8(x)
    # Both fields in one batch: float32(gaussian(uniform(−1, 1), σ) · α)
    fields = -1.0 + (1.0 - -1.0) * torch.cat((draws.dx, draws.dy))
    fields = (smooth_field(fields, sigma) * alpha).to(torch.float32).to(field_dtype)
    dx, dy = fields.split(images.shape[0])
    rows = torch.arange(height, device=device, dtype=field_dtype)
    cols = torch.arange(width, device=device, dtype=field_dtype)
    return to_uint8(map_coordinates_reflect(x, rows[:, None] + dy, cols[None, :] + dx))
