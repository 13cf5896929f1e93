"""Batched, exact torch emulation of the JPEG round trip Pillow performs for `jpeg_compression` (A.15).

Pillow's `Image.save(buf, "JPEG", quality=q)` then `Image.open(buf).convert("RGB")` runs libjpeg-turbo
(its x86-64 SIMD build) with Pillow's defaults: baseline tables (`jpeg_set_quality(cinfo, q, TRUE)`),
YCbCr with 4:2:0 chroma subsampling, the islow integer DCT, and on decoding the islow IDCT with
"fancy" (triangle) chroma upsampling. Huffman coding is lossless, so the decoded pixels are fixed by
these steps, which this module computes for a whole B×3×H×W batch with a few dozen large tensor ops:

    rgb_ycc_convert (jccolor.c) → h2v2_downsample (jcsample.c) → jpeg_fdct_islow (jfdctint.c) →
    quantize (jcdctmgr.c) → DEQUANTIZE + jpeg_idct_islow (jidctint.c) → h2v2_fancy_upsample
    (jdsample.c) → ycc_rgb_convert (jdcolor.c)

Exactness, on every device. Colour conversion and chroma sampling run in int32 with libjpeg's own
constants and shifts. Each DCT pass of libjpeg is an exact integer linear map (its butterflies only
add, subtract and multiply by integer constants) followed by one rounding shift per output, `(x +
2^(n-1)) >> n`; here it is one float64 matrix product whose integer matrix rows are pre-scaled by
2^-n (exact in binary), plus 1/2, then `floor`. All values are integers or multiples of 2^-18 whose
every product and partial sum stays far below 2^52 (asserted by `_check_exact` when the tables are
built), so no floating-point operation ever rounds: the result cannot depend on how a BLAS (MKL, or
cuBLAS, which never uses TF32 for float64) orders or fuses its sums. float64 because integer matrix
products are unavailable on CUDA and slow on the CPU. Quantization, ((|c| + corr)·recip) >> r in
libjpeg-turbo, equals c/d rounded half away from zero for every reachable c (checked exhaustively in
`_host_tables`) and is computed with `torch.round` on c·(1 + 2^-30)/d (see there why that is exact).

libjpeg-turbo's SIMD code is designed to give its C code's bytes; the one documented difference is
followed here: the IDCT output saturates to 0..255, where the C code's `range_limit[x & RANGE_MASK]`
table would wrap for centred outputs beyond ±512 (none of the test images gets near: their extremes
are about −270 and +211). Only images whose height and width are multiples of 16 are handled
(whole 4:2:0 MCUs, so libjpeg's edge padding never applies); see `supports`.

Speed. One CPU thread on 300 CIFAR images: about 2.3× torchvision's codec (`digital.
_torchvision_round_trip`), about even at 64 px, and slower at 224 px, where the codec's fixed cost per
image no longer dominates. See `_round_trip_chunk` for the layout choices.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["jpeg_round_trip", "supports", "quant_tables"]

# jfdctint.c / jidctint.c (8-bit samples): CONST_BITS 13, PASS1_BITS 2, FIX_* constants.
CONST_BITS = 13
PASS1_BITS = 2
FIX_0_298631336 = 2446
FIX_0_390180644 = 3196
FIX_0_541196100 = 4433
FIX_0_765366865 = 6270
FIX_0_899976223 = 7373
FIX_1_175875602 = 9633
FIX_1_501321110 = 12299
FIX_1_847759065 = 15137
FIX_1_961570560 = 16069
FIX_2_053119869 = 16819
FIX_2_562915447 = 20995
FIX_3_072711026 = 25172

# jcparam.c: Annex K tables, natural (row-major) order.
STD_LUMINANCE_QUANT_TBL = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
STD_CHROMINANCE_QUANT_TBL = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)

SCALEBITS = 16                     # jccolor.c / jdcolor.c
ONE_HALF = 1 << (SCALEBITS - 1)
CBCR_OFFSET = 128 << SCALEBITS
EXACT_LIMIT = 2.0 ** 52            # float64 integers below this are exact (with margin)


def fix16(x: float) -> int:
    """jccolor.c / jdcolor.c `FIX(x)`: (JLONG)(x * 2^16 + 0.5)."""
    return int(x * (1 << SCALEBITS) + 0.5)


def supports(height: int, width: int) -> bool:
    """Whether `jpeg_round_trip` handles H×W images: both positive multiples of 16 (whole 4:2:0 MCUs)."""
    return height > 0 and width > 0 and height % 16 == 0 and width % 16 == 0


# ---- quantization tables (jcparam.c, jcdctmgr.c) --------------------------------------------------

def jpeg_quality_scaling(quality: int) -> int:
    """jcparam.c `jpeg_quality_scaling`: quality 1..100 → percentage scale of the Annex K tables."""
    quality = min(max(quality, 1), 100)
    return 5000 // quality if quality < 50 else 200 - quality * 2


def quant_tables(quality: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(luminance, chrominance) quantval tables in natural order, as `jpeg_set_quality(cinfo, quality,
    TRUE)` (force_baseline, which Pillow passes) builds them with jcparam.c `jpeg_add_quant_table`."""
    scale = jpeg_quality_scaling(quality)

    def add_quant_table(basic: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(min(max((v * scale + 50) // 100, 1), 32767, 255) for v in basic)

    return add_quant_table(STD_LUMINANCE_QUANT_TBL), add_quant_table(STD_CHROMINANCE_QUANT_TBL)


def compute_reciprocal(divisor: int) -> tuple[int, int, int]:
    """jcdctmgr.c `compute_reciprocal` for 16-bit DCTELEM (the SIMD build): (reciprocal, correction,
    shift r) such that quantize gives ((|x| + correction) · reciprocal) >> r. `divisor` is quantval·8
    (≥ 8), so the `divisor <= 1` identity case never arises."""
    b = divisor.bit_length() - 1     # flss(divisor) - 1
    r = 16 + b
    fq, fr = divmod(1 << r, divisor)
    c = divisor // 2
    if fr == 0:                      # power of two: fq would need 17 bits
        fq >>= 1
        r -= 1
    elif fr <= divisor // 2:
        c += 1
    else:
        fq += 1
    return fq, c, r


# ---- the integer butterflies as linear forms -----------------------------------------------------
# Each helper replays libjpeg's butterfly line by line on "linear forms": int64 vectors of the
# coefficients of the 8 inputs. An output `DESCALE(form, n)` is returned as (form, n) and an output
# `LEFT_SHIFT(form, n)` as (form << n, 0) (exact, no rounding). Reordering additions or merging
# constant multiplies (as the SIMD versions do) cannot change such forms, which is why the SIMD and C
# code agree and why one matrix row per output reproduces them.

Form = np.ndarray
Output = tuple[Form, int]


def _odd_part(t4: Form, t5: Form, t6: Form, t7: Form) -> tuple[Form, Form, Form, Form]:
    """The shared odd part (LL&M figure 8) of jfdctint.c / jidctint.c; returns the four sums that
    precede the final DESCALE: (tmp4 + z1 + z3, tmp5 + z2 + z4, tmp6 + z2 + z3, tmp7 + z1 + z4) in
    jfdctint.c's naming (jidctint.c's tmp0..tmp3 = the same with inputs (y7, y5, y3, y1))."""
    z1 = t4 + t7
    z2 = t5 + t6
    z3 = t4 + t6
    z4 = t5 + t7
    z5 = (z3 + z4) * FIX_1_175875602
    t4 = t4 * FIX_0_298631336
    t5 = t5 * FIX_2_053119869
    t6 = t6 * FIX_3_072711026
    t7 = t7 * FIX_1_501321110
    z1 = z1 * -FIX_0_899976223
    z2 = z2 * -FIX_2_562915447
    z3 = z3 * -FIX_1_961570560 + z5
    z4 = z4 * -FIX_0_390180644 + z5
    return t4 + z1 + z3, t5 + z2 + z4, t6 + z2 + z3, t7 + z1 + z4


def fdct_islow_pass(first: bool) -> list[Output]:
    """jfdctint.c `jpeg_fdct_islow`, pass 1 (rows, `first`) or pass 2 (columns): outputs 0..7."""
    d = list(np.eye(8, dtype=np.int64))
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    shift = CONST_BITS - PASS1_BITS if first else CONST_BITS + PASS1_BITS
    out: list[Output] = [None] * 8  # type: ignore[list-item]
    if first:   # dataptr[0], [4] = LEFT_SHIFT(..., PASS1_BITS)
        out[0] = ((tmp10 + tmp11) << PASS1_BITS, 0)
        out[4] = ((tmp10 - tmp11) << PASS1_BITS, 0)
    else:       # DESCALE(..., PASS1_BITS)
        out[0] = (tmp10 + tmp11, PASS1_BITS)
        out[4] = (tmp10 - tmp11, PASS1_BITS)
    z1 = (tmp12 + tmp13) * FIX_0_541196100
    out[2] = (z1 + tmp13 * FIX_0_765366865, shift)
    out[6] = (z1 + tmp12 * -FIX_1_847759065, shift)
    o7, o5, o3, o1 = _odd_part(tmp4, tmp5, tmp6, tmp7)
    out[7], out[5], out[3], out[1] = (o7, shift), (o5, shift), (o3, shift), (o1, shift)
    return out


def idct_islow_pass(first: bool) -> list[Output]:
    """jidctint.c `jpeg_idct_islow`, pass 1 (columns of dequantized coefficients, `first`) or pass 2
    (rows of the workspace): outputs 0..7. The all-zero-AC shortcuts of both passes give the same
    values as the full formulas (dc << PASS1_BITS, and DESCALE(w0, PASS1_BITS + 3)), so they need no
    special case."""
    d = list(np.eye(8, dtype=np.int64))
    z1 = (d[2] + d[6]) * FIX_0_541196100
    tmp2 = z1 + d[6] * -FIX_1_847759065
    tmp3 = z1 + d[2] * FIX_0_765366865
    tmp0 = (d[0] + d[4]) << CONST_BITS
    tmp1 = (d[0] - d[4]) << CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    o0, o1, o2, o3 = _odd_part(d[7], d[5], d[3], d[1])     # tmp0..tmp3 after "tmp0 += z1 + z3" etc.
    shift = CONST_BITS - PASS1_BITS if first else CONST_BITS + PASS1_BITS + 3
    forms = [tmp10 + o3, tmp11 + o2, tmp12 + o1, tmp13 + o0,
             tmp13 - o0, tmp12 - o1, tmp11 - o2, tmp10 - o3]
    return [(form, shift) for form in forms]


def scaled_matrix(outputs: list[Output]) -> tuple[np.ndarray, np.ndarray]:
    """(M, bias) with output_k = floor(M[k] · x + bias[k]) ≡ DESCALE(form_k · x, n_k): rows divided
    by 2^n_k (exact), bias 1/2 for a rounding shift and 0 for an exact left shift."""
    matrix = np.stack([form / float(1 << n) for form, n in outputs])
    bias = np.array([0.5 if n else 0.0 for _, n in outputs])
    return matrix, bias


# ---- per-quality constants ------------------------------------------------------------------------

# jccolor.c rgb_ycc_start: Y = (R·FIX(.299) + G·FIX(.587) + B·FIX(.114) + ONE_HALF) >> 16 and Cb, Cr
# with CBCR_OFFSET + ONE_HALF − 1 ("0.5 − epsilon" rounding); rows Y, Cb, Cr, then the constant.
RGB_TO_YCC = (
    (fix16(0.29900), fix16(0.58700), fix16(0.11400), ONE_HALF),
    (-fix16(0.16874), -fix16(0.33126), fix16(0.50000), CBCR_OFFSET + ONE_HALF - 1),
    (fix16(0.50000), -fix16(0.41869), -fix16(0.08131), CBCR_OFFSET + ONE_HALF - 1),
)
# jdcolor.c build_ycc_rgb_table / ycc_rgb_convert: R = y + Cr_r_tab[cr], Cr_r_tab[i] = (FIX(1.402)·(i −
# 128) + ONE_HALF) >> 16; G = y + ((Cb_g_tab[cb] + Cr_g_tab[cr]) >> 16), Cb_g_tab[i] = −FIX(0.34414)·(i
# − 128) + ONE_HALF, Cr_g_tab[i] = −FIX(0.71414)·(i − 128); B = y + Cb_b_tab[cb] like R. Rows R, G, B:
# (factor of cb − 128, factor of cr − 128); each adds ONE_HALF, shifts right by 16, adds y and clamps.
YCC_TO_RGB = (
    (0, fix16(1.40200)),
    (-fix16(0.34414), -fix16(0.71414)),
    (fix16(1.77200), 0),
)


# jidctint.c adds CENTERJSAMPLE (through IDCT_range_limit) and pass 2's DESCALE rounding 2^17 to
# every output. Every pass-2 output contains +w0·2^13 (w0 the DC column of the workspace) and every
# pass-1 output of the DC column contains +dc·2^13 / 2^11 = 4·dc exactly, so adding 128·2^18/2^13 / 4 =
# 1024 (centring) + 2^17/2^13 / 4 = 4 (rounding) to each block's dequantized DC coefficient adds both
# exactly, and pass 2 becomes a bare matrix product + floor.
IDCT_DC_OFFSET = ((128 << (CONST_BITS + PASS1_BITS + 3)) + (1 << (CONST_BITS + PASS1_BITS + 2))) \
    // (1 << CONST_BITS) // (1 << PASS1_BITS)


@dataclass(frozen=True)
class Tables:
    """Per-quality constants on one device (see `_host_tables`)."""
    fdct1: torch.Tensor          # 8×8 float64, pass 1 of jpeg_fdct_islow, rows scaled by 2^-shift
    fdct1_bias: torch.Tensor     # 8×1, DESCALE's 1/2 and convsamp's −CENTERJSAMPLE level shift
    fdct2: torch.Tensor          # 8×8 float64, pass 2
    fdct2_bias: torch.Tensor     # 8×1, DESCALE's 1/2
    quant_scale: torch.Tensor    # 8×8×3×1, [v, u, group]: (1 + 2^-30) / (8·quantval), see _host_tables
    quantval: torch.Tensor       # 8×8×3×1: the decoder's DEQUANTIZE multiplier
    idct1: torch.Tensor          # 8×8, pass 1 of jpeg_idct_islow (its 1/2 rides on the v = 0 row)
    idct2: torch.Tensor          # 8×8, pass 2 (its constants ride on the DC coefficient)
    ycc_constants: torch.Tensor  # int32 3×1: RGB_TO_YCC's constants
    upsample_bias: torch.Tensor  # int32 2×1: h2v2_fancy_upsample's rounding, 8 (even column), 7 (odd),
    #                              minus 16·128 (the colour conversion takes centred chroma)


def _check_exact(matrix: np.ndarray, bias: np.ndarray, in_low: float, in_high: float,
                 limit: float = EXACT_LIMIT) -> tuple[float, float]:
    """Asserts that `floor(matrix · x + bias)` over integer inputs in [in_low, in_high] is exact in
    binary floating point with `limit` = 2^(mantissa bits), in any summation order: every product
    and partial sum of row k is a multiple of 2^-n_k (n_k the fraction bits of the row's constants)
    below limit · 2^-n_k. Returns the range of the outputs."""
    for row, constant in zip(matrix, bias):
        n = next(n for n in range(64) if np.all(np.mod(np.append(row, constant) * 2.0 ** n, 1) == 0))
        assert (np.abs(row).sum() * max(abs(in_low), abs(in_high)) + abs(constant)) * 2.0 ** n < limit
    positive, negative = np.clip(matrix, 0, None), np.clip(matrix, None, 0)
    high = positive.sum(1) * in_high + negative.sum(1) * in_low + bias
    low = positive.sum(1) * in_low + negative.sum(1) * in_high + bias
    return float(np.floor(low.min())), float(np.floor(high.max()))


@functools.lru_cache(maxsize=None)
def _host_tables(quality: int) -> dict[str, np.ndarray]:
    """The float constants, with the bounds that make every floating-point step exact."""
    luma, chroma = quant_tables(quality)
    fdct1, fdct1_bias = scaled_matrix(fdct_islow_pass(first=True))
    # convsamp: samples − CENTERJSAMPLE; folded in as −128 · (row sum) since pass 1 is linear.
    fdct1_bias = fdct1_bias - 128.0 * fdct1.sum(1)
    low, high = _check_exact(fdct1, fdct1_bias, 0, 255)
    fdct2, fdct2_bias = scaled_matrix(fdct_islow_pass(first=False))
    coef_low, coef_high = _check_exact(fdct2, fdct2_bias, low, high)
    coef_max = int(max(-coef_low, coef_high))
    # The SIMD code keeps DCT values in 16 bits: pass-1 values, and |coef| + correction (unsigned).
    assert max(-low, high) < 1 << 15 and coef_max + 255 * 4 + 1 < 1 << 16

    # quantize: ((|c| + corr) · recip) >> r equals floor((|c| + d/2) / d) for every reachable |c|
    # (checked here for this table; true for all baseline tables), i.e. c/d rounded half away from
    # zero. torch.round rounds half to even, so c is scaled by (1 + 2^-30)/d: a tie k + 1/2 then lands
    # strictly beyond it (away from zero), while any other c/d, at least 1/(2d) > 2^-12 from a tie,
    # moves by at most |c/d| · 2^-30 ≤ 2^12 · 2^-30 = 2^-18 (plus float64 rounding, ~2^-40).
    magnitudes = np.arange(coef_max + 1, dtype=np.int64)
    scales, quantvals = [], []
    for table in (luma, chroma):
        for q in set(table):
            d = q << 3                                    # start_pass_fdctmgr: divisor quantval << 3
            fq, corr, r = compute_reciprocal(d)
            assert np.array_equal(((magnitudes + corr) * fq) >> r, (magnitudes + d // 2) // d)
        scales.append(np.array([(1.0 + 2.0 ** -30) / (q << 3) for q in table]).reshape(8, 8, 1))  # [v, u]
        quantvals.append(np.array(table, np.float64).reshape(8, 8, 1))
    assert coef_max < 1 << 15

    idct1, idct1_bias = scaled_matrix(idct_islow_pass(first=True))
    assert np.all(idct1_bias == 0.5) and np.all(idct1[:, 0] == 4.0)               # see IDCT_DC_OFFSET
    # |round(c/d)·quantval| ≤ |c|/8 + quantval/2, plus IDCT_DC_OFFSET and the 1/8 carrying pass 1's
    # rounding (that input column's weight is exactly 4, so its products stay multiples of 1/2, and
    # the row's 1/2 checked below stands for it)
    max_dequant = coef_max / 8 + 128 + IDCT_DC_OFFSET + 1
    ws_low, ws_high = _check_exact(idct1, idct1_bias, -max_dequant, max_dequant)
    idct2, idct2_bias = scaled_matrix(idct_islow_pass(first=False))
    assert np.all(idct2_bias == 0.5) and np.all(idct2[:, 0] == 2.0 ** -(PASS1_BITS + 3))
    out_low, out_high = _check_exact(idct2, np.zeros(8), ws_low, ws_high)
    assert max(-out_low, out_high) < 1 << 31                   # the int32 conversion after the IDCT
    return {
        "fdct1": fdct1, "fdct1_bias": fdct1_bias[:, None], "fdct2": fdct2, "fdct2_bias": fdct2_bias[:, None],
        # [v, u, group]: the coefficient blocks come as two equal luma groups then one chroma group
        "quant_scale": np.stack([scales[0], scales[0], scales[1]], axis=2),
        "quantval": np.stack([quantvals[0], quantvals[0], quantvals[1]], axis=2),
        "idct1": idct1, "idct2": idct2,
    }


@functools.lru_cache(maxsize=64)
def _tables(quality: int, device: torch.device) -> Tables:
    host = {name: torch.as_tensor(value, dtype=torch.float64, device=device)
            for name, value in _host_tables(quality).items()}
    constants = torch.tensor([[row[3]] for row in RGB_TO_YCC], dtype=torch.int32, device=device)
    return Tables(**host, ycc_constants=constants,
                  upsample_bias=torch.tensor([[8 - 16 * 128], [7 - 16 * 128]], dtype=torch.int32, device=device))


class _Workspace(threading.local):
    """One reusable scratch arena for the CPU path, per thread. Fresh multi-megabyte CPU allocations
    come back from the OS unmapped, and faulting their pages in costs about as much as the arithmetic
    here; CUDA's caching allocator already avoids that. Bounded by CHUNK_PIXELS."""

    def __init__(self) -> None:
        self.arena: torch.Tensor | None = None

    def get(self, nbytes: int, device: torch.device) -> torch.Tensor:
        if device.type != "cpu":
            return torch.empty(nbytes, dtype=torch.uint8, device=device)
        if self.arena is None or self.arena.numel() < nbytes:
            self.arena = torch.empty(nbytes, dtype=torch.uint8)
        return self.arena[:nbytes]


_WORKSPACE = _Workspace()
CHUNK_PIXELS = 1 << 19      # pixels per channel per chunk: bounds the arena to 12·3·2^19 bytes (19 MB)


# ---- the round trip -------------------------------------------------------------------------------
# Layouts. The encoder works on the images' own B×H×W planes and writes the DCT input block-major,
# [R, y, x] (R = block, numbered luma first (block row, block column, image), then chroma (Cb/Cr,
# block row, block column, image): images innermost). Each DCT pass is then one matrix product over
# the innermost or outermost 8, writing its 8 outputs outermost, with no copies in between: [R, y, x]
# → [u, R, y] → [v, u, R] (coefficients) → [y, u, R] → [y, x, R]. The decoder continues images
# innermost (H×W×B planes), so that its neighbour and colour ops run over long contiguous stretches
# (a row of a 32-pixel image alone makes a short loop), and one 2-D transpose gives B×3×H×W back.


def jpeg_round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Pillow's JPEG save at `quality` then decode to RGB, bit-exact, for a B×3×H×W uint8 batch with
    H and W multiples of 16 (`supports`); returns uint8 B×3×H×W on the same device."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 B×3×H×W images, got {images.dtype} {tuple(images.shape)}")
    b, _, h, w = images.shape
    if not supports(h, w):
        raise ValueError(f"jpeg_round_trip needs H and W multiples of 16, got {h}×{w}")
    tables = _tables(int(quality), images.device)
    out = torch.empty_like(images, memory_format=torch.contiguous_format)
    step = max(1, CHUNK_PIXELS // (h * w))
    for start in range(0, b, step):
        _round_trip_chunk(images[start:start + step], tables, out[start:start + step])
    return out


def _round_trip_chunk(images: torch.Tensor, t: Tables, out: torch.Tensor) -> None:
    """`jpeg_round_trip` of B images into `out` (contiguous).

    Speed notes (torch on one CPU thread is memory-bound here): ops run over long contiguous or
    single-stride stretches where possible (torch loops a 2-D view row by row, and short rows are
    slow); each op keeps one dtype (mixed-dtype arithmetic takes a slow casting path, so conversions
    are separate copies); and all scratch lives in one arena of 12 bytes per sample whose regions
    are reused from stage to stage (see `region`), so that few distinct bytes cycle through the
    caches. These choices change no value: every step is the exact integer arithmetic above."""
    b, _, h, w = images.shape
    device = images.device
    f64, i32 = torch.float64, torch.int32
    ch, cw = h // 2, w // 2
    n = b * 3 * h * w                                       # samples; n/3 luma, n/6 per chroma plane
    n_luma, n_chroma = n // 192, n // 384                   # 8×8 blocks
    n_blocks = n_luma + n_chroma
    arena = _WORKSPACE.get(12 * n, device)

    def region(start: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        """`shape` elements of `dtype` from byte `start` of the arena: regions P = [0, 4n), Q = [4n,
        8n), S = [8n, 12n); the comments on the right say what each holds from then on."""
        size = math.prod(shape) * dtype.itemsize
        return arena[start:start + size].view(dtype).view(shape)

    P, Q, S = 0, 4 * n, 8 * n

    # ---- jccolor.c rgb_ycc_convert: (k_r·R + k_g·G + k_b·B + constant) >> 16, int32 (|sums| < 2^25)
    rgb = region(P, i32, (b, 3, h, w))                                    # P: rgb
    rgb.copy_(images)
    r, g, bl = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    blocks = region(Q, f64, (n_blocks, 8, 8))                             # Q: blocks (DCT input)
    acc = region(S, i32, (b, h, w))                                       # S: luma, then chroma
    kr, kg, kb, _ = RGB_TO_YCC[0]
    torch.add(t.ycc_constants[0], r, alpha=kr, out=acc).add_(g, alpha=kg).add_(bl, alpha=kb)
    acc.bitwise_right_shift_(SCALEBITS)
    # into the block-major float64 layout (rows of 8 samples)
    blocks[:n_luma].view(h // 8, w // 8, b, 8, 8).copy_(acc.view(b, h // 8, 8, w // 8, 8).permute(1, 3, 0, 2, 4))
    chroma = region(S + 4 * n // 3, i32, (b, 2, h, w))
    for channel in (1, 2):
        kr, kg, kb, _ = RGB_TO_YCC[channel]
        acc = torch.add(t.ycc_constants[channel], r, alpha=kr, out=chroma[:, channel - 1])
        acc.add_(g, alpha=kg).add_(bl, alpha=kb)
    chroma.bitwise_right_shift_(SCALEBITS)

    # ---- jcsample.c h2v2_downsample: (sum of each 2×2 + bias) >> 2, bias 1, 2, 1, 2, … along rows
    rows = chroma.view(2 * b * ch, 2, w)
    pairs = torch.add(rows[:, 0], rows[:, 1], out=region(P, i32, (2 * b * ch, w))).view(-1)   # P: pairs
    down = region(P + 4 * n // 3, i32, (n // 6,))                                            # P: down
    torch.add(pairs[0::4], pairs[1::4], out=down[0::2]).add_(1)
    torch.add(pairs[2::4], pairs[3::4], out=down[1::2]).add_(2)
    blocks[n_luma:].view(2, ch // 8, cw // 8, b, 8, 8).copy_(
        down.bitwise_right_shift_(2).view(b, 2, ch // 8, 8, cw // 8, 8).permute(1, 2, 4, 0, 3, 5))

    # ---- jfdctint.c jpeg_fdct_islow. Pass 1 (rows): for each block row y, the 8 columns x → u.
    spare = region(P, f64, (8, n_blocks * 8))                             # P: the other DCT buffer
    coef = torch.addmm(t.fdct1_bias, t.fdct1, blocks.view(-1, 8).t(), out=spare).floor_()       # [u, R, y]
    # Pass 2 (columns): for each u, the 8 rows y → v.
    coef = torch.addmm(t.fdct2_bias, t.fdct2, coef.view(-1, 8).t(), out=blocks.view(8, -1)).floor_()
    coef = coef.view(8, 8, 3, n_chroma)                                   # [v, u, group, ·], see Tables

    # ---- jcdctmgr.c quantize (c/d rounded half away from zero, see _host_tables) and the decoder's
    # DEQUANTIZE (× quantval) straight away. Then the IDCT's constants: + 1/8 on the v = 0 row gives
    # pass 1's DESCALE rounding (+1/2 on every output) and IDCT_DC_OFFSET pass 2's.
    level = coef.mul_(t.quant_scale).round_().mul_(t.quantval)
    level[0].add_(0.125)
    level[0, 0].add_(IDCT_DC_OFFSET)

    # ---- jidctint.c jpeg_idct_islow. Pass 1 (columns): for each u, the 8 frequencies v → rows y.
    pixels = torch.mm(t.idct1, level.view(8, -1), out=spare).floor_()
    # Pass 2 (rows): for each y, the 8 frequencies u → columns x, already centred and rounded.
    pixels = torch.matmul(t.idct2, pixels.view(8, 8, n_blocks), out=blocks.view(8, 8, n_blocks))  # [y, x, R]

    # ---- [y, x, R] → int32 H×W×B planes (truncation; after the clamp to 0..255 that equals the
    # floor), clamped as the SIMD code saturates
    luma = region(S, i32, (h, w, b))                                      # S: luma, c, three, wide
    luma.view(h // 8, 8, w // 8, 8, b).copy_(
        pixels[:, :, :n_luma].view(8, 8, h // 8, w // 8, b).permute(2, 0, 3, 1, 4))
    luma.clamp_(0, 255)
    c = region(S + 4 * n // 3, i32, (2, ch, cw, b))
    c.view(2, ch // 8, 8, cw // 8, 8, b).copy_(
        pixels[:, :, n_luma:].view(8, 8, 2, ch // 8, cw // 8, b).permute(2, 3, 0, 4, 1, 5))
    c.clamp_(0, 255)

    # ---- jdsample.c h2v2_fancy_upsample, centred (− 128) for the colour conversion. libjpeg sums
    # columns first (3·nearest row + next nearest row: above for even output rows, below for odd),
    # then out[2j] = (3·s[j] + s[j−1] + 8) >> 4 and out[2j+1] = (3·s[j] + s[j+1] + 7) >> 4; both steps
    # are exact integer sums, so the horizontal one is done first here. At the image edges the
    # missing neighbour is the sample itself (jdmainct.c's context rows replicate the first and last
    # rows; the first and last columns use 4·s).
    three = torch.mul(c, 3, out=region(S + 2 * n, i32, (2, ch, cw, b)))
    wide = region(S + 8 * n // 3, i32, (2, ch, cw, 2, b))                # [..., j, e, :]: column 2j + e
    torch.add(three[:, :, 1:], c[:, :, :-1], out=wide[:, :, 1:, 0])
    torch.add(three[:, :, :1], c[:, :, :1], out=wide[:, :, :1, 0])
    torch.add(three[:, :, :-1], c[:, :, 1:], out=wide[:, :, :-1, 1])
    torch.add(three[:, :, -1:], c[:, :, -1:], out=wide[:, :, -1:, 1])
    wide = wide.view(2, ch, w, b)
    # 3·(nearest row) + the rounding bias (8 on even columns, 7 on odd, − 16·128), then + (next row)
    three = torch.add(t.upsample_bias, wide.view(2, ch, cw, 2, b), alpha=3,
                      out=region(P, i32, (2, ch, cw, 2, b))).view(2, ch, w, b)          # P: three, up
    up = region(P + 4 * n // 3, i32, (2, ch, 2, w, b))                   # [:, i, a]: output row 2i + a
    torch.add(three[:, 1:], wide[:, :-1], out=up[:, 1:, 0])
    torch.add(three[:, :1], wide[:, :1], out=up[:, :1, 0])
    torch.add(three[:, :-1], wide[:, 1:], out=up[:, :-1, 1])
    torch.add(three[:, -1:], wide[:, -1:], out=up[:, -1:, 1])
    up = up.bitwise_right_shift_(4).view(2, h, w, b)
    cb, cr = up[0], up[1]

    # ---- jdcolor.c ycc_rgb_convert (with range_limit's clamp), int32 (|sums| < 2^25), on the centred
    # chroma: y + ((k_cb·cb + k_cr·cr + ONE_HALF) >> 16) = (y·2^16 + ONE_HALF + …) >> 16; then uint8
    # and one 2-D transpose back to images-outermost.
    luma.bitwise_left_shift_(SCALEBITS).add_(ONE_HALF)
    acc = region(Q, i32, (h, w, b))                                       # Q: acc, rgb
    rgb = region(Q + 4 * n // 3, torch.uint8, (3, h, w, b))
    for channel, (k_cb, k_cr) in enumerate(YCC_TO_RGB):
        if k_cb and k_cr:
            torch.add(luma, cb, alpha=k_cb, out=acc).add_(cr, alpha=k_cr)
        else:
            torch.add(luma, cb if k_cb else cr, alpha=k_cb or k_cr, out=acc)
        rgb[channel].copy_(acc.bitwise_right_shift_(SCALEBITS).clamp_(0, 255))
    out.view(b, 3 * h * w).copy_(rgb.view(3 * h * w, b).t())
