"""scikit-image's `rgb2hsv` / `hsv2rgb` on batches B×3×H×W, in its exact operation order (spec G10).

Shortcuts that are equal on paper (e.g. scaling RGB by V′/V) flip about 1e-4 of the truncations, so
every step follows scikit-image.
"""
from __future__ import annotations

import torch

from corrbench.corruptions.convert import divide

# For each hue sector i = floor(6H) mod 6, which of (v, q, p, t) each output channel takes:
# 0 → (v,t,p), 1 → (q,v,p), 2 → (p,v,t), 3 → (p,q,v), 4 → (t,p,v), 5 → (v,p,q).
_V, _Q, _P, _T = 0, 1, 2, 3
_SECTOR_CHOICE = (
    (_V, _Q, _P, _P, _T, _V),  # red
    (_T, _V, _V, _Q, _P, _P),  # green
    (_P, _P, _T, _V, _V, _Q),  # blue
)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """HSV (each in [0, 1]) of float RGB images B×3×H×W in [0, 1]."""
    r, g, b = rgb.unbind(1)
    value = rgb.amax(dim=1)
    delta = value - rgb.amin(dim=1)
    grey = delta == 0
    saturation = torch.where(grey, 0.0, delta / value)
    # scikit-image writes red, then green, then blue where each channel is the max: blue wins ties.
    hue = torch.where(b == value, 4.0 + (r - g) / delta,
                      torch.where(g == value, 2.0 + (b - r) / delta, (g - b) / delta))
    hue = divide(hue, 6.0)
    hue = torch.where(hue < 0, hue + 1.0, hue)  # NumPy's `% 1.` for hue/6 in [−1/6, 5/6]
    hue = torch.where(grey, 0.0, hue)
    return torch.stack((hue, saturation, value), dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Float RGB of HSV images B×3×H×W."""
    hue, saturation, value = hsv.unbind(1)
    sector = torch.floor(hue * 6)
    f = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    candidates = torch.stack((value, q, p, t))  # indexed by _V, _Q, _P, _T
    sector = sector.to(torch.int64) % 6
    table = torch.tensor(_SECTOR_CHOICE, device=hsv.device)
    channels = [candidates.gather(0, table[c][sector].unsqueeze(0)).squeeze(0) for c in range(3)]
    return torch.stack(channels, dim=1)
