"""Linear filters the corruptions share, reproducing the reference libraries' arithmetic.

G1: scikit-image/scipy `gaussian(x, σ, mode='nearest', truncate=4)`; G6: the defocus `disk` kernel;
G3: OpenCV `filter2D` (2-D correlation, REFLECT_101). Spec Part 0.4.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=None)
def gaussian_taps(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """Weights of scipy's 1-D Gaussian (G1) from the centre outwards: w_0, w_1, …, w_r, r = int(truncate·σ + 0.5).

    Computed with NumPy exactly as `scipy.ndimage._gaussian_kernel1d` does, so the bits match.
    """
    sigma = float(sigma)
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * offsets ** 2)
    phi = phi / phi.sum()
    return tuple(float(w) for w in phi[radius:])


def _correlate_symmetric_nearest(x: torch.Tensor, taps: tuple[float, ...], dim: int) -> torch.Tensor:
    """1-D correlation along `dim` with a symmetric kernel and edge-replicating border, summed in
    scipy's order for symmetric kernels: w_0·x_0, then + (x_−j + x_+j)·w_j for j = r … 1."""
    radius = len(taps) - 1
    if radius == 0:
        return x * taps[0]
    pad = (0, 0, radius, radius) if dim == 2 else (radius, radius, 0, 0)
    padded = F.pad(x, pad, mode="replicate")
    n = x.shape[dim]
    out = padded.narrow(dim, radius, n) * taps[0]
    pair = torch.empty_like(out)   # one buffer for every pair term
    for j in range(radius, 0, -1):  # outermost pair first, as scipy's correlate1d
        torch.add(padded.narrow(dim, radius - j, n), padded.narrow(dim, radius + j, n), out=pair)
        out.add_(pair.mul_(taps[j]))
    return out


def gaussian_filter_nearest(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """G1: Gaussian blur of float images B×C×H×W over H, then W ('nearest' border), channels untouched.

    Bit-identical to `scipy.ndimage.gaussian_filter(x_hwc, (σ, σ, 0), mode='nearest', truncate=4)`
    in float64; σ ≤ 1e-15 is the identity, as in scipy.
    """
    if sigma <= 1e-15:
        return x.clone()
    taps = gaussian_taps(float(sigma), float(truncate))
    return _correlate_symmetric_nearest(_correlate_symmetric_nearest(x, taps, 2), taps, 3)


def _opencv_gaussian_taps(ksize: int, sigma: float) -> np.ndarray:
    """G2: `cv2.getGaussianKernel(ksize, σ)` in float64, normalised to sum 1."""
    offsets = np.arange(ksize) - (ksize - 1) * 0.5
    taps = np.exp((-0.5 / (sigma * sigma)) * offsets * offsets)
    return taps / taps.sum()


def _correlate_reflect101_np(a: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """1-D correlation of a 2-D array along `axis` with a REFLECT_101 border (`…c b | a b c…`)."""
    half = len(taps) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(a, pad, mode="reflect")  # NumPy's 'reflect' does not repeat the edge: REFLECT_101
    n = a.shape[axis]
    return sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))


@functools.lru_cache(maxsize=None)
def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """G6: the defocus kernel `disk(radius, alias_blur)`, float32, not renormalised after the blur.

    A disk of ones (x² + y² ≤ r²) on the grid −8..8 (r ≤ 8) or −r..r, normalised to sum 1, then
    blurred by OpenCV's Gaussian (ksize 3 or 5, σ = alias_blur, REFLECT_101). Built in float64 and
    cast to float32, which reproduces the reference exactly (spec G6).
    """
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xs, ys = np.meshgrid(grid, grid)
    disk = (xs ** 2 + ys ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    taps = _opencv_gaussian_taps(ksize, alias_blur)
    blurred = _correlate_reflect101_np(_correlate_reflect101_np(disk, taps, axis=1), taps, axis=0)
    kernel = blurred.astype(np.float32)
    kernel.setflags(write=False)
    return kernel


def _trim_zero_border(kernel: np.ndarray) -> np.ndarray:
    """The kernel without the all-zero outer rings (keeps it centred); zeros add nothing to a sum."""
    half = kernel.shape[0] // 2
    rows, cols = np.nonzero(kernel)
    reach = int(max(np.abs(rows - half).max(), np.abs(cols - half).max())) if rows.size else 0
    return kernel[half - reach:half + reach + 1, half - reach:half + reach + 1]


DIRECT_TAPS = 81
"""Kernels up to 9×9 (every CIFAR and Tiny-ImageNet disk, trimmed) are summed directly: cheaper than the FFT
at these sizes, and a fixed order of separate multiplies and adds gives the same bits on every device
(FFT libraries differ in the last bits between CPU and CUDA)."""


def _correlate_direct(padded: torch.Tensor, kernel: np.ndarray, h: int, w: int) -> torch.Tensor:
    """Σ k[i, j]·padded[i + y, j + x] over the taps in row-major order, zero taps skipped."""
    out, term = None, None
    for (i, j), weight in np.ndenumerate(kernel):
        if weight == 0:
            continue
        window = padded[..., i:i + h, j:j + w]
        if out is None:
            out = window * float(weight)
            term = torch.empty_like(out)
        else:
            out.add_(torch.mul(window, float(weight), out=term))   # one buffer for every term
    return out


def correlate_reflect101(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """G3: `cv2.filter2D(channel, -1, kernel)` on every channel of float images B×C×H×W.

    2-D correlation (the kernel is not flipped), centred anchor, REFLECT_101 border, in the images'
    dtype (the float32 kernel is widened, as OpenCV does for a float64 image). Computed through the
    FFT, as OpenCV itself does for kernels of 50 taps or more (every disk kernel is 17×17 or larger):
    equal to direct correlation up to about 1e-15 (spec G3).
    """
    kernel = _trim_zero_border(kernel)
    radius = kernel.shape[0] // 2
    if radius == 0:
        return x * float(kernel[0, 0])
    b, c, h, w = x.shape
    padded = F.pad(x.reshape(b * c, 1, h, w), (radius,) * 4, mode="reflect").reshape(b, c, h + 2 * radius, -1)
    if kernel.size <= DIRECT_TAPS:
        return _correlate_direct(padded, kernel, h, w)
    size = padded.shape[-2:]
    # Correlation is convolution with the flipped kernel; the padding keeps the circular wrap away
    # from the kept window [2r, 2r + h).
    flipped = torch.tensor(kernel[::-1, ::-1].copy(), device=x.device, dtype=x.dtype)
    product = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(flipped, s=size)
    full = torch.fft.irfft2(product, s=size)
    return full[..., 2 * radius:2 * radius + h, 2 * radius:2 * radius + w]
