"""Spatter (spec A.18): a random liquid layer, drawn as water (mode 0) or mud (mode 1).

One N(μ, σ) draw per pixel (a B×H×W layer, no channels), blurred and thresholded into the liquid
layer L. Water splashes pale turquoise along the layer's texture (Canny edges → chamfer distance →
equalised, embossed shading); mud paints opaque brown blobs. The reference computes both in float32
on top of OpenCV's integer primitives, emulated exactly in `cv_ops`; given the same draws the bytes
equal the reference's on every scale and severity. The distance transform is OpenCV ≤ 4.x's fixed
point (what the reference ran on); OpenCV 5.0 computes it in float32, which moves some ImageNet-scale
water images by a few levels (CIFAR and Tiny outputs were unaffected in our checks).
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import working_dtype
from corrbench.corruptions.cv_ops import (
    CHAMFER_SHIFT, CHAMFER_STEP, blur3_uint8, box_sum3, canny_l1, chamfer_distance_fixed, equalize_hist,
    filter2d_uint8, floor_divide,
)
from corrbench.corruptions.filters import _correlate_symmetric_nearest, gaussian_filter_nearest, gaussian_taps
from corrbench.corruptions.registry import register

SPATTER = {
    "cifar": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
              (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    "tiny": ((0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
             (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1)),
    "imagenet": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                 (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)),
}
WATER, MUD = 0, 1
WATER_COLOUR = (175, 238, 238)  # pale turquoise, R, G, B
MUD_COLOUR = (63, 42, 20)       # brown, R, G, B
EMBOSS_KERNEL = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))
DISTANCE_CAP = 20  # px: the reference truncates the distance map at 20


def liquid_layer(z: torch.Tensor, mean: float, std: float, blur: float, threshold: float) -> torch.Tensor:
    """Spec A.18 steps 2–3: L = G1-blur(μ + σ·z, blur), then L[L < thr] = 0.

    z: standard-normal draws B×H×W (the reference's `np.random.normal(size=(S,S), loc=μ, scale=σ)`
    computes exactly μ + σ·z). Returns B×H×W in z's dtype (float64 for exactness).
    """
    if blur <= 1e-15:  # scipy's identity
        layer = gaussian_filter_nearest((mean + std * z).unsqueeze(1), blur).squeeze(1)
    else:
        layer = _blur_nearest(z, mean, std, gaussian_taps(float(blur)))
    return layer.mul_(layer >= threshold)   # a 0/1 factor: exact, and faster than masked_fill on the CPU


def _pad_rows(tall: torch.Tensor, r: int) -> None:
    """Fill the r rows above and below the middle of B×(H+2r)×W with copies of its edge rows."""
    h = tall.shape[1] - 2 * r
    tall[:, :r] = tall[:, r:r + 1]
    tall[:, r + h:] = tall[:, r + h - 1:r + h]


def _pad_columns(wide: torch.Tensor, r: int) -> None:
    """Fill the r columns left and right of the middle of B×H×(W+2r) with copies of its edge columns."""
    w = wide.shape[2] - 2 * r
    wide[:, :, :r] = wide[:, :, r:r + 1]
    wide[:, :, r + w:] = wide[:, :, r + w - 1:r + w]


def _correlate_into(padded: torch.Tensor, dim: int, taps: tuple[float, ...], out: torch.Tensor,
                    pair: torch.Tensor) -> torch.Tensor:
    """`filters._correlate_symmetric_nearest` along `dim` of an already padded B×H×W stack, written
    into `out` with `pair` as scratch: w_0·x_0, then + (x_−j + x_+j)·w_j for j = r … 1 (scipy's order)."""
    r, n = len(taps) - 1, out.shape[dim]
    torch.mul(padded.narrow(dim, r, n), taps[0], out=out)
    for j in range(r, 0, -1):
        torch.add(padded.narrow(dim, r - j, n), padded.narrow(dim, r + j, n), out=pair)
        out.add_(pair.mul_(taps[j]))
    return out


def _blur_nearest(z: torch.Tensor, mean: float, std: float, taps: tuple[float, ...]) -> torch.Tensor:
    """`gaussian_filter_nearest` of μ + σ·z (B×H×W) over H, then W, with the same operations in the
    same order (so the same bits), but written into a few buffers: fresh allocations are costly on
    the CPU (first-touch page faults), and the filter's temporaries would be eight layer-sized ones."""
    b, h, w = z.shape
    r = len(taps) - 1
    tall = torch.empty((b, h + 2 * r, w), dtype=z.dtype, device=z.device)
    torch.mul(z, std, out=tall[:, r:r + h]).add_(mean)  # μ + σ·z
    _pad_rows(tall, r)
    wide = torch.empty((b, h, w + 2 * r), dtype=z.dtype, device=z.device)
    pair = torch.empty((b, h, w), dtype=z.dtype, device=z.device)
    _correlate_into(tall, 1, taps, wide[:, :, r:r + w], pair)
    _pad_columns(wide, r)
    # the row pass reads only `wide` and `pair`: its result reuses the front of `tall`'s memory
    return _correlate_into(wide, 2, taps, tall.view(-1)[:b * h * w].view(b, h, w), pair)


def _check_liquid(images: torch.Tensor, liquid: torch.Tensor, name: str) -> None:
    b, _, h, w = images.shape
    if not isinstance(liquid, torch.Tensor) or tuple(liquid.shape) != (b, h, w):
        shape = tuple(liquid.shape) if isinstance(liquid, torch.Tensor) else type(liquid).__name__
        raise ValueError(f"{name}: the liquid layer must be a tensor B×H×W = {(b, h, w)}, got {shape}")


def _float32_unit(images: torch.Tensor) -> torch.Tensor:
    """`np.array(img, dtype=np.float32) / 255.`: the division is done in float32 (in place, by a
    0-d tensor, which keeps IEEE division on every device: see `convert.divide`)."""
    unit = images.to(torch.float32)
    return unit.div_(torch.tensor(255.0, dtype=torch.float32, device=unit.device))


def _truncate_to_uint8(y: torch.Tensor) -> torch.Tensor:
    """`np.uint8` of float32 values already clipped to [0, 255], consuming y: truncation (float → int
    truncates toward zero). Through int32, as the CPU casts float32 → uint8 directly several times
    slower; the int32 values overwrite y's own memory (an elementwise cast in place, each element
    read before it is written), as fresh allocations are costly on the CPU (first-touch page faults)."""
    return y.view(torch.int32).copy_(y).to(torch.uint8)


def _add_colour(y: torch.Tensor, m: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """y += m·colour in float32 (y B×3×H×W, m B×1×H×W, colour 1×3×1×1), one channel at a time
    through one B×1×H×W buffer rather than a B×3×H×W temporary (fewer fresh pages to fault in)."""
    product = torch.empty_like(m)
    for k in range(y.shape[1]):
        y[:, k:k + 1].add_(torch.mul(m, colour[:, k:k + 1], out=product))
    return y


def _colour(rgb: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """c/255 per channel, rounded to float32 (the reference's `c / 255. * ones_like(float32 array)`), 1×3×1×1."""
    return torch.tensor([c / 255.0 for c in rgb], dtype=torch.float32, device=device).view(1, 3, 1, 1)


def water_shading(liquid_u8: torch.Tensor) -> torch.Tensor:
    """Spec A.18 water steps 2–5: the shading map of the uint8 liquid layer, uint8 B×H×W.

    Canny(50, 150) edges → 5×5 chamfer distance to the nearest edge (OpenCV's 16.16 fixed point, spec
    G14) capped at 20 → 3×3 float box blur truncated to uint8 → equalizeHist → emboss filter2D → 3×3
    uint8 box blur.
    """
    edges = canny_l1(liquid_u8, 50, 150)
    distance = chamfer_distance_fixed(edges, cap=DISTANCE_CAP * CHAMFER_STEP)
    # trunc(float32(Σ₃ₓ₃ D · 1/9)) with D = t·2⁻¹⁶: the sum of fixed-point values is exact, and for
    # values below 32 float32 rounding cannot carry a value across an integer (the gap to the next
    # integer is ≥ 1/(9·2¹⁶) > half a float32 ulp), so the integer floor(Σt / (9·2¹⁶)) =
    # floor(floor(Σt / 2¹⁶) / 9) gives the same bytes on every device.
    whole_units = box_sum3(distance).bitwise_right_shift_(CHAMFER_SHIFT)
    blurred = floor_divide(whole_units, 9, 9 * DISTANCE_CAP).to(torch.uint8)
    return blur3_uint8(filter2d_uint8(equalize_hist(blurred), EMBOSS_KERNEL))


def spatter_water(images: torch.Tensor, liquid: torch.Tensor, intensity: float) -> torch.Tensor:
    """Spec A.18 water branch on uint8 images B×3×H×W, given the liquid layer (B×H×W, after blur and
    threshold; float64 for exactness) and the intensity; returns uint8 B×3×H×W.

    L8 = trunc(255·L) wrapped mod 256 (spec 0.3); m = L8 · shading, m ← m / max(m) · intensity (float32);
    y = trunc(clip(x + m·colour, 0, 1)·255) in float32. An image whose m is all zero becomes black,
    as in the reference (0/0 = NaN, which np.uint8 turns into 0).
    """
    _check_liquid(images, liquid, "spatter_water")
    scaled = (liquid.to(images.device) * 255.0).to(torch.int32)  # float → int truncates toward 0
    liquid_u8 = scaled.to(torch.uint8)  # int32 → uint8 keeps the low byte: the wrap mod 256
    shading = water_shading(liquid_u8)
    m = liquid_u8.to(torch.float32).mul_(shading)  # uint8 → float32 is exact: the float32 product
    peak = m.amax(dim=(1, 2), keepdim=True)
    m = m.div_(peak).mul_(torch.tensor(intensity, dtype=torch.float32)).unsqueeze(1)
    y = _add_colour(_float32_unit(images), m, _colour(WATER_COLOUR, images.device))
    out = _truncate_to_uint8(y.clamp_(0.0, 1.0).mul_(255.0))
    dry = peak == 0
    return out.masked_fill_(dry.unsqueeze(1), 0) if bool(dry.any()) else out


def _gaussian_float32(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scikit-image `gaussian` of a float32 map B×H×W: scipy's G1 in float64 per axis, with the result
    of each axis stored as float32 before the next, as scipy does for a float32 output."""
    taps = gaussian_taps(float(sigma))
    wide = working_dtype(x.device)
    r = len(taps) - 1
    if r == 0:
        rows = _correlate_symmetric_nearest(x.to(wide).unsqueeze(1), taps, 2).to(torch.float32)
        return _correlate_symmetric_nearest(rows.to(wide), taps, 3).to(torch.float32).squeeze(1)
    # the same operations, written into a few buffers (see `_blur_nearest`)
    b, h, w = x.shape
    tall = torch.empty((b, h + 2 * r, w), dtype=wide, device=x.device)
    tall[:, r:r + h] = x
    _pad_rows(tall, r)
    pair = torch.empty((b, h, w), dtype=wide, device=x.device)
    rows = _correlate_into(tall, 1, taps, torch.empty_like(pair), pair)
    padded = torch.empty((b, h, w + 2 * r), dtype=wide, device=x.device)
    padded[:, :, r:r + w] = rows.to(torch.float32)  # stored as float32, widened again
    _pad_columns(padded, r)
    return _correlate_into(padded, 2, taps, rows, pair).to(torch.float32)


def spatter_mud(images: torch.Tensor, liquid: torch.Tensor, threshold: float, sigma: float) -> torch.Tensor:
    """Spec A.18 mud branch on uint8 images B×3×H×W, given the liquid layer B×H×W; returns uint8.

    m = G1-blur(float32(L > thr), σ) in float32, m[m < 0.8] = 0;
    y = trunc(clip(x·(1 − m) + m·colour, 0, 1)·255) in float32.
    """
    _check_liquid(images, liquid, "spatter_mud")
    m = _gaussian_float32((liquid.to(images.device) > threshold).to(torch.float32), sigma)
    m = m.mul_(m >= torch.tensor(0.8, dtype=torch.float32)).unsqueeze(1)   # m < 0.8 → 0 (a 0/1 factor)
    y = _add_colour(_float32_unit(images).mul_(1.0 - m), m, _colour(MUD_COLOUR, images.device))  # colour·m = m·colour
    return _truncate_to_uint8(y.clamp_(0.0, 1.0).mul_(255.0))


def _draws(images: torch.Tensor, generator: torch.Generator | None, draws: torch.Tensor | None) -> torch.Tensor:
    b, _, h, w = images.shape
    dtype = working_dtype(images.device)
    if draws is None:  # float32 draws (several times faster than float64), widened for the exact arithmetic
        return torch.randn((b, h, w), generator=generator, device=generator.device,
                           dtype=torch.float32).to(device=images.device, dtype=dtype)
    if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != (b, h, w):
        shape = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"spatter: draws must be a tensor B×H×W = {(b, h, w)} of standard normals, got {shape}")
    return draws.to(device=images.device, dtype=dtype)


@register("spatter", stochastic=True, table=SPATTER,
          parameters="(μ, σ of the liquid draw, blur σ, threshold, intensity (water) or mud blur σ, "
                     "mode 0 = water 1 = mud)", spec="A.18")
def spatter(images: torch.Tensor, severity: int, *, scale: str,
            generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.18: liquid layer L from one N(μ, σ) draw per pixel, then the water or the mud branch.

    draws: z, standard normals B×H×W (one channel-free layer per image): the reference's
    `np.random.normal(size=(S, S), loc=μ, scale=σ)` for image b is μ + σ·z[b].
    """
    mean, std, blur, threshold, intensity, mode = SPATTER[scale][severity - 1]
    liquid = liquid_layer(_draws(images, generator, draws), mean, std, blur, threshold)
    if mode == WATER:
        return spatter_water(images, liquid, intensity)
    return spatter_mud(images, liquid, threshold, intensity)
