"""scikit-image's `rgb2hsv` / `hsv2rgb` on batches B×3×H×W, in its exact operation order (spec G10).

Shortcuts that are equal on paper (e.g. scaling RGB by V′/V) flip about 1e-4 of the truncations, so
every value is formed with scikit-image's operations. Where scikit-image picks one of several values
per pixel, the pick is Σ value·mask over 0/1 masks: with finite values exactly one term is non-zero
and every product and sum is exact, and these arithmetic passes run several times faster on the CPU
than `torch.where` (masks are built in uint8, where comparisons and logic are cheap).
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide

# hsv2rgb: in hue sector k = floor(6H) mod 6 each channel takes v, p or the sector's middle value
# (t in even sectors, q in odd ones): 0 → (v,t,p), 1 → (q,v,p), 2 → (p,v,t), 3 → (p,q,v), 4 → (t,p,v),
# 5 → (v,p,q). Rotated by the channel's offset, j = (k + offset) mod 6, every channel reads the same:
# v for j ∈ {0, 1}, p for j ∈ {3, 4}, the middle value for j ∈ {2, 5}.
_CHANNEL_OFFSET = (1, 5, 3)  # red, green, blue
_TINY = 1e-300               # below any positive V of an image: V/max(V, tiny) is V/V wherever V > 0


def _byte_constant(value: int, like: torch.Tensor) -> torch.Tensor:
    # uint8 comparisons against a same-shaped tensor are vectorised; against a Python scalar they are not
    return torch.full_like(like, value, dtype=torch.uint8)


def _as_float(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(torch.uint8).to(like.dtype) if mask.dtype == torch.bool else mask.to(like.dtype)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """HSV (each in [0, 1]) of float RGB images B×3×H×W in [0, 1]."""
    return torch.stack(rgb_to_hsv_parts(rgb), dim=1)


def rgb_to_hsv_parts(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(H, S, V), each B×H×W, of float RGB images B×3×H×W in [0, 1] (`rgb_to_hsv` without the stacking)."""
    r, g, b = rgb.unbind(1)
    value = rgb.amax(dim=1)
    delta = value - rgb.amin(dim=1)
    # scikit-image: S = δ/V, and 0 where δ = 0 (V = 0 implies δ = 0: 0/tiny = 0)
    saturation = delta / value.clamp_min(_TINY)
    # scikit-image writes red, then green, then blue where each channel is the max: blue wins ties.
    # Its hue is 4 + (r − g)/δ, 2 + (b − r)/δ or (g − b)/δ: the selected difference over δ, plus the
    # selected offset (+0 is exact).
    blue_max = (b == value).view(torch.uint8)
    green_max = (g == value).view(torch.uint8) & (1 - blue_max)
    red_max = 1 - blue_max - green_max
    hue = (r - g).mul_(_as_float(blue_max, rgb))
    hue.addcmul_(b - r, _as_float(green_max, rgb)).addcmul_(g - b, _as_float(red_max, rgb))
    hue = hue.div_(delta).add_(_as_float(blue_max * 4 + green_max * 2, rgb))
    hue = divide(hue, 6.0)
    hue = hue.add_(_as_float(hue < 0, rgb))   # NumPy's `% 1.` for hue/6 in [−1/6, 5/6]
    hue = hue.nan_to_num_(nan=0.0)            # δ = 0: 0/0 above; scikit-image sets H = 0
    return hue, saturation, value


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Float RGB of finite HSV images B×3×H×W."""
    return hsv_to_rgb_parts(*hsv.unbind(1))


def hsv_to_rgb_parts(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Float RGB images B×3×H×W of finite H, S, V maps B×H×W (`hsv_to_rgb` of their stack)."""
    sector = torch.floor(hue * 6)
    f = hue * 6 - sector
    p = value * (1 - saturation)
    sector8 = sector.to(torch.int32).to(torch.uint8)       # hue ∈ [0, 1]: sectors 0 … 6, 6 ≡ 0
    odd = _as_float(sector8 & 1, value)
    # q = v·(1 − f·s) in odd sectors, t = v·(1 − (1 − f)·s) in even ones: |f − 1| is 1 − f exactly
    middle = value * (1 - (f - (1 - odd)).abs_() * saturation)
    six, two = _byte_constant(6, sector8), _byte_constant(2, sector8)
    rgb = value.new_empty((value.shape[0], 3, *value.shape[1:]))
    for channel, offset in enumerate(_CHANNEL_OFFSET):
        rotated = sector8 + offset                          # 1 … 11
        rotated -= (rotated >= six).view(torch.uint8) * 6
        takes_v = (rotated < two).view(torch.uint8)
        takes_p = ((rotated - 3) < two).view(torch.uint8)   # uint8 wraps j < 3 to ≥ 253
        out = torch.mul(value, _as_float(takes_v, value), out=rgb[:, channel])
        out.addcmul_(p, _as_float(takes_p, value)).addcmul_(middle, _as_float(1 - takes_v - takes_p, value))
    return rgb
