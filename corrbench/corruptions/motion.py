"""motion_blur (spec A.6): ImageMagick's `MotionBlurImage` as an explicit, batched gather (spec G8).

The reference saves the image as PNG, runs ImageMagick 6 (Q16, through Wand) and decodes the PNG
ImageMagick writes. Here the same arithmetic runs on the batch directly, with no ImageMagick:

* kernel: width w = 2·ceil(r) + 1, one-sided Gaussian k_i ∝ exp(−i²/(2σ²)), i = 0 … w−1 (IM's
  `GetMotionBlurKernel`, normalised by its running sum);
* offsets: with p = (w·sin θ, w·cos θ), dx_i = ceil(i·p_y/|p| − 0.5) and dy_i = ceil(i·p_x/|p| − 0.5)
  (IM's own rounding chain, so angles such as −150° whose offsets sit exactly on a .5 come out as IM's);
* e(y, x) = Σ_i k_i · Q(y + dy_i, x + dx_i) summed in tap order in float64 over the Q16 values
  Q = 257·v, with edge-replicated borders (IM's default virtual pixels);
* quantisation: IM stores q = floor(e + 0.5) clamped to 0 … 65535 (`ClampToQuantum`), and its PNG
  writer (6.9.11, the version the spec measured) reduces to 8 bits by truncation, out = floor(q / 257).
  That truncating write is what made the released files (spec §0.6); `floor(e/257)` would differ on
  flat regions whose sum lands a hair below an integer.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from corrbench.corruptions.convert import working_dtype
from corrbench.corruptions.registry import register

MAGICK_PI = 3.14159265358979323846264338327950288419716939937510
MAGICK_SQ2PI = 2.50662827463100024161235523934010416269302368164062
MAGICK_EPSILON = 1.0e-12
QUANTUM_RANGE = 65535
QUANTUM_PER_LEVEL = 257  # Q16 value of one 8-bit level: 65535 / 255

_ELEMENTS_PER_CHUNK = 1 << 17  # CPU working set per chunk of images (stays in cache; measured best of 2^16…2^18)


def kernel_width(radius: float) -> int:
    """IM's `GetOptimalKernelWidth1D` for a positive radius: 2·ceil(r) + 1 taps (r=6 → 13, r=20 → 41)."""
    if not radius > MAGICK_EPSILON:
        raise ValueError(f"motion blur radius must be positive, got {radius}")
    return int(2.0 * math.ceil(radius) + 1.0)


@functools.lru_cache(maxsize=None)
def _weights(radius: float, sigma: float) -> tuple[float, ...]:
    """IM's `GetMotionBlurKernel`: exp(−i²/(2σ²))/(√(2π)σ) for i = 0 … w−1, divided by their running
    sum (the unnormalised scale is kept: it changes the weights' last bits as in IM)."""
    width = kernel_width(radius)
    sigma = MAGICK_EPSILON if abs(sigma) < MAGICK_EPSILON else sigma
    raw = [math.exp(-(float(i) * i) / (2.0 * sigma * sigma)) / (MAGICK_SQ2PI * sigma) for i in range(width)]
    total = 0.0
    for value in raw:
        total += value
    return tuple(value / total for value in raw)


def _offsets(width: int, angles_degrees: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) int64 [A, w] of IM's motion blur at each angle: libm sin/cos/hypot and IM's op order.

    `math.sin`/`math.cos` call libm, as IM does; `np.hypot` calls libm's hypot (Python's `math.hypot`
    is its own algorithm and differs in the last bit for ~0.5% of arguments, which moves an offset
    at angles such as −150° where i·p_x/|p| − 0.5 is an integer on paper).
    """
    radians = MAGICK_PI * np.asarray(angles_degrees, dtype=np.float64) / 180.0   # IM's DegreesToRadians
    point_x = float(width) * np.array([math.sin(r) for r in radians.tolist()], dtype=np.float64)
    point_y = float(width) * np.array([math.cos(r) for r in radians.tolist()], dtype=np.float64)
    length = np.hypot(point_x, point_y)[:, None]
    taps = np.arange(width, dtype=np.float64)[None, :]
    dx = np.ceil(taps * point_y[:, None] / length - 0.5).astype(np.int64)
    dy = np.ceil(taps * point_x[:, None] / length - 0.5).astype(np.int64)
    return dy, dx


def motion_blur_kernel(radius: float, sigma: float,
                       angle_degrees: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spec G8: ImageMagick's motion-blur taps at one angle: (weights float64 [w], dy int64 [w],
    dx int64 [w]).

    Output pixel (y, x) is Σ_i weights[i] · image[y + dy[i], x + dx[i]] with edge-replicated borders;
    tap 0 is the pixel itself and carries the largest weight.
    """
    dy, dx = _offsets(kernel_width(radius), [float(angle_degrees)])
    return (torch.tensor(_weights(float(radius), float(sigma)), dtype=torch.float64),
            torch.from_numpy(dy[0]), torch.from_numpy(dx[0]))


def _offset_table(width: int, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """dy, dx int64 [B, w] for per-image angles (computed once per distinct angle, on the CPU)."""
    distinct, which = np.unique(angles.detach().to("cpu", torch.float64).numpy(), return_inverse=True)
    dy, dx = _offsets(width, distinct.tolist())
    return torch.from_numpy(dy[which.reshape(-1)]), torch.from_numpy(dx[which.reshape(-1)])


def _check(images: torch.Tensor, angles: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError("motion_blur: images must be a uint8 tensor B×C×H×W")
    if not isinstance(angles, torch.Tensor) or angles.ndim != 1 or angles.shape[0] != images.shape[0]:
        raise ValueError(f"motion_blur: angles must be a float tensor [B] with B = {images.shape[0]}")
    if not bool(torch.isfinite(angles.to(torch.float64)).all()):
        raise ValueError("motion_blur: angles must be finite (degrees)")


def _blur_chunk(chunk: torch.Tensor, weights: tuple[float, ...], dy: torch.Tensor, dx: torch.Tensor,
                extents: tuple[int, int, int, int], buffer: torch.Tensor, total: torch.Tensor,
                term: torch.Tensor) -> torch.Tensor:
    """Σ_i k_i·Q(y + dy_i, x + dx_i) in tap order for the Q16 values of the uint8 images `chunk`
    B×C×H×W: float B×C×H×W, written into (the first B images of) `total`.

    The Q16 planes are edge-padded by `extents` (top, bottom, left, right) into `buffer`. In the padded
    planes a tap moves each image by one offset, so what it brings to an image's H×W outputs is one
    H×W window of its padded plane: windows are copied whole from a strided view of every window
    position (several times faster than a per-value gather). `buffer`, `total` and `term` are reused
    across chunks: fresh memory page-faults on first touch.
    """
    b, c, h, w = chunk.shape
    top, bottom, left, right = extents
    padded_w, padded_h = w + left + right, h + top + bottom
    planes, plane = b * c, padded_h * padded_w
    flat = buffer[:planes * plane]
    padded = flat.view(planes, padded_h, padded_w)
    # replicate padding, in place: the Q16 values IM reads from the 8-bit PNG, then the edges copied out
    inner = padded[:, top:top + h, left:left + w]
    inner.copy_(chunk.reshape(planes, h, w)).mul_(QUANTUM_PER_LEVEL)
    rows = padded[:, top:top + h]
    rows[:, :, :left].copy_(rows[:, :, left:left + 1].expand(planes, h, left))
    rows[:, :, left + w:].copy_(rows[:, :, left + w - 1:left + w].expand(planes, h, right))
    padded[:, :top].copy_(padded[:, top:top + 1].expand(planes, top, padded_w))
    padded[:, top + h:].copy_(padded[:, top + h - 1:top + h].expand(planes, bottom, padded_w))
    # an image's channels share its offsets: a window spans all C planes of one image
    positions = flat.numel() - (c - 1) * plane - (h - 1) * padded_w - w + 1
    windows = flat.as_strided((positions, c, h, w), (1, plane, padded_w, 1))   # window at every flat start
    shifts = dy * padded_w + dx                              # flat offset of each image's tap, CPU [B, w]
    # when the whole chunk shares one angle (the -P sequences), each tap reads one strided view
    # directly, with no copy (per tap when only some are shared, e.g. tap 0, it measured slower)
    shared = bool((shifts == shifts[:1]).all())
    first = torch.arange(b, device=chunk.device).view(b, 1) * (c * plane) + (top * padded_w + left)
    starts = None if shared else (first + shifts.to(chunk.device)).T.contiguous()
    total, term = total[:b], term[:b]
    for i, weight in enumerate(weights):
        out = total if i == 0 else term
        if shared:
            start = flat.storage_offset() + top * padded_w + left + int(shifts[0, i])
            torch.mul(flat.as_strided((b, c, h, w), (c * plane, plane, padded_w, 1), start), weight, out=out)
        else:
            torch.index_select(windows, 0, starts[i], out=out).mul_(weight)
        if i > 0:
            total.add_(term)                                 # IM: qixel += k_i·pixel, in tap order
    return total


def motion_blur(images: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor) -> torch.Tensor:
    """Spec G8/A.6: ImageMagick 6.9 Q16 motion blur of uint8 images B×C×H×W, angle `angles[b]` (degrees)
    for image b, followed by IM's truncating 8-bit PNG write. Any C (grey layers included), any device.
    Returns uint8 B×C×H×W on the images' device.
    """
    _check(images, angles)
    weights = _weights(float(radius), float(sigma))
    if images.shape[0] == 0:
        return images.clone()
    dy, dx = _offset_table(len(weights), angles)
    dtype = working_dtype(images.device)
    b, c, h, w = images.shape
    extents = (max(0, -int(dy.min())), max(0, int(dy.max())), max(0, -int(dx.min())), max(0, int(dx.max())))
    padded_w = w + extents[2] + extents[3]
    per_image = images[0].numel()
    step = max(1, _ELEMENTS_PER_CHUNK // per_image) if images.device.type == "cpu" else b
    step = min(step, b)
    planes = step * c
    buffer = torch.empty(planes * (h + extents[0] + extents[1]) * padded_w, dtype=dtype, device=images.device)
    total = torch.empty((step, c, h, w), dtype=dtype, device=images.device)
    term = torch.empty_like(total)
    output = torch.empty_like(images)
    for start in range(0, b, step):
        chunk = images[start:start + step]
        sums = _blur_chunk(chunk, weights, dy[start:start + step], dx[start:start + step], extents, buffer, total, term)
        stored = sums.add_(0.5).floor_().clamp_(0, QUANTUM_RANGE)   # ClampToQuantum
        # the PNG writer's floor(q/257), as floor((q + ½)/257): that quotient lies ≥ 1/514 from any
        # integer, so the rounded multiplication floors correctly (and costs a quarter of a division);
        # it is ≥ 0, where the int32 cast's truncation is that floor (float64 → int32 → uint8 also runs
        # in half the time of a direct float64 → uint8 copy on the CPU)
        levels = stored.add_(0.5).mul_(1.0 / QUANTUM_PER_LEVEL).to(torch.int32)
        output[start:start + step].copy_(levels)
    return output


MOTION_BLUR_RADIUS_SIGMA = {
    "cifar": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "tiny": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
    "imagenet": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
}
MOTION_BLUR_ANGLE_RANGE = (-45.0, 45.0)


def motion_blur_angles(images: torch.Tensor, generator: torch.Generator, low: float, high: float) -> torch.Tensor:
    """One angle per image, U(low, high) degrees, as NumPy's `uniform(low, high)` = low + (high − low)·U."""
    uniform = torch.rand(images.shape[0], generator=generator, device=generator.device,
                         dtype=working_dtype(images.device)).to(images.device)
    return low + (high - low) * uniform


def take_angles(draws: object, images: torch.Tensor, name: str) -> torch.Tensor:
    """Injected per-image angles (degrees): a float tensor [B], moved to the images' device."""
    if not isinstance(draws, torch.Tensor) or tuple(draws.shape) != (images.shape[0],):
        shape = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"{name}: the angles must be a float tensor [B] = [{images.shape[0]}] in degrees, got {shape}")
    return draws.to(device=images.device, dtype=working_dtype(images.device))


@register("motion_blur", stochastic=True, table=MOTION_BLUR_RADIUS_SIGMA,
          parameters="(radius, σ) of ImageMagick's motion blur; angle U(−45°, 45°) per image", spec="A.6")
def motion_blur_corruption(images: torch.Tensor, severity: int, *, scale: str,
                           generator: torch.Generator | None = None, draws: torch.Tensor | None = None) -> torch.Tensor:
    """Spec A.6: ImageMagick motion blur (G8) at the table's (r, σ) with one angle θ ~ U(−45°, 45°) per image.

    draws: the angles θ in degrees, float [B] (the reference's one `np.random.uniform(-45, 45)` per image).
    """
    radius, sigma = MOTION_BLUR_RADIUS_SIGMA[scale][severity - 1]
    angles = (motion_blur_angles(images, generator, *MOTION_BLUR_ANGLE_RANGE) if draws is None
              else take_angles(draws, images, "motion_blur"))
    return motion_blur(images, radius, sigma, angles)
