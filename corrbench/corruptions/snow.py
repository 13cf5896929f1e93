"""snow (spec A.8): a zoomed, thresholded Gaussian layer streaked by ImageMagick's motion blur, laid
over a brightened image twice (as is and rotated by 180°).

Each image gets its own layer and streak angle. The draws can be injected (spec D.4) as a pair
(normals B×S×S, angles [B]): the reference's `np.random.normal(size=(S, S), loc=μ, scale=σ)` is
μ + σ·normals[b] and its `np.random.uniform(-135, -45)` is angles[b].
"""
from __future__ import annotations

import math

import torch

from corrbench.corruptions.convert import working_dtype
from corrbench.corruptions.motion import motion_blur, motion_blur_angles, take_angles
from corrbench.corruptions.registry import register
from corrbench.corruptions.zoom import clipped_zoom

SNOW = {
    "cifar": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
              (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "tiny": ((0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)),
    "imagenet": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
                 (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
}
SNOW_ANGLE_RANGE = (-135.0, -45.0)  # sin θ < 0: every pixel gathers from above, streaks fall roughly down
_ELEMENTS_PER_CHUNK = 1 << 18       # CPU working set per chunk of images (stays in cache)

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # OpenCV's RGB2GRAY weights, rounded to float32 when applied (G15)


def gray_float32(x: torch.Tensor) -> torch.Tensor:
    """`cv2.cvtColor(x, COLOR_RGB2GRAY)` of float32 RGB images B×3×H×W: (0.299R + 0.587G) + 0.114B in
    float32 (spec G15), B×1×H×W: OpenCV's scalar/SSE path. Its FMA-dispatched kernels (OpenCV 5.0 on an
    AVX-512 CPU) round the last bit differently on ~20% of pixels, which changed 1 snow byte in 2.3 million."""
    red, green, blue = (x[:, i:i + 1] for i in range(3))
    return (red * GRAY_WEIGHTS[0] + green * GRAY_WEIGHTS[1]) + blue * GRAY_WEIGHTS[2]


def snow_layer(normals: torch.Tensor, mean: float, std: float, zoom: float, threshold: float) -> torch.Tensor:
    """Steps 2–4 before the blur: L = clipped_zoom(μ + σ·normals, zoom) (float64, G5), L < thr set to 0,
    then trunc(255·clip(L, 0, 1)) as uint8 B×1×S×S."""
    layer = normals.mul(std).add_(mean).unsqueeze(1)   # μ + σ·n, the same two roundings, in one buffer
    if zoom != 1:  # clipped_zoom by 1 keeps the image as it is: skip its copies
        layer = clipped_zoom(layer, zoom)
    # L ≥ thr kept, else 0, in one pass: `threshold` keeps x > t, and t is the float just below thr
    below = torch.nextafter(torch.tensor(threshold, dtype=layer.dtype), torch.tensor(-math.inf, dtype=layer.dtype))
    layer = torch.nn.functional.threshold_(layer, below.item(), 0.0)
    return _to_uint8_(layer)


def _to_uint8_(x: torch.Tensor) -> torch.Tensor:
    """`convert.to_uint8` overwriting x, a buffer of our own (spares the clamp's copy)."""
    return x.clamp_(0.0, 1.0).mul_(255.0).to(torch.int32).to(torch.uint8)


def layer_normals(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normals B×S×S for the snow layers, drawn in float32 (5× faster than float64 on the CPU)
    and widened to the working dtype: the layer is thresholded and cut to 8 bits, so float32 draws
    are indistinguishable from the reference's float64 ones."""
    normals = torch.randn((images.shape[0], *images.shape[-2:]), generator=generator, device=generator.device)
    return normals.to(device=images.device, dtype=working_dtype(images.device))


def _take_draws(draws: object, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    expected = (images.shape[0], *images.shape[-2:])
    if not isinstance(draws, (tuple, list)) or len(draws) != 2:
        raise ValueError("snow: draws must be a pair (normals B×H×W, angles [B] in degrees)")
    normals, angles = draws
    if not isinstance(normals, torch.Tensor) or tuple(normals.shape) != expected:
        shape = tuple(normals.shape) if isinstance(normals, torch.Tensor) else type(normals).__name__
        raise ValueError(f"snow: draws[0] (normals) must be a float tensor {expected}, got {shape}")
    normals = normals.to(device=images.device, dtype=working_dtype(images.device))
    return normals, take_angles(angles, images, "snow")


@register("snow", stochastic=True, table=SNOW,
          parameters="(μ, σ, zoom, threshold, blur radius, blur σ, blend) of the snow layer and its mix",
          spec="A.8")
def snow(images: torch.Tensor, severity: int, *, scale: str, generator: torch.Generator | None = None,
         draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Spec A.8: layer N(μ, σ) (S×S) → clipped_zoom → < thr = 0 → uint8 → ImageMagick motion blur
    (radius, blur σ, angle ~ U(−135°, −45°)) → Ls = L/255; x = float32(u)/255,
    x′ = blend·x + (1 − blend)·max(x, 1.5·gray(x) + 0.5) in float32; trunc(255·clip(x′ + Ls + rot180(Ls))).

    draws: (normals, angles): standard normals float B×S×S (drawn first) and angles in degrees float [B].
    """
    mean, std, zoom, threshold, radius, blur_sigma, blend = SNOW[scale][severity - 1]
    if draws is None:  # drawn for the whole batch first, so the bytes do not depend on the chunking
        normals = layer_normals(images, generator)
        angles = motion_blur_angles(images, generator, *SNOW_ANGLE_RANGE)
    else:
        normals, angles = _take_draws(draws, images)
    # stage by stage, each over chunks whose buffers stay in cache (its own size: the layers are one channel),
    # where alternating the stages per chunk had the blur evict the composite's buffers between chunks
    layer_step, step = (_chunk_size(images, size) for size in (normals[0].numel(), images[0].numel()))
    layers = [snow_layer(normals[start:start + layer_step], mean, std, zoom, threshold)
              for start in range(0, images.shape[0], layer_step)]
    streaks = motion_blur(layers[0] if len(layers) == 1 else torch.cat(layers), radius, blur_sigma, angles)
    composite = _Composite(images, min(step, images.shape[0]), blend)
    for start in range(0, images.shape[0], step):
        composite(slice(start, start + step), streaks[start:start + step])
    return composite.out


def _chunk_size(images: torch.Tensor, per_image: int) -> int:
    """Images per chunk: `_ELEMENTS_PER_CHUNK` values of `per_image` each on the CPU, the whole batch elsewhere."""
    return max(1, _ELEMENTS_PER_CHUNK // per_image) if images.device.type == "cpu" else images.shape[0]


class _Composite:
    """Steps 5–7 chunk by chunk: x′ = blend·x + (1 − blend)·max(x, 1.5·gray + 0.5) in float32 (the Python
    scalars are rounded to float32, as NumPy does), then trunc(255·clip((x′ + Ls) + rot180(Ls), 0, 1)) in
    float64, written into `out` (uint8, like `images`).

    Every step runs in place in buffers made once per call for `size` images: a fresh multi-MB tensor per
    op can cost more in page faults than its arithmetic (the clamp's fresh copy alone took over a quarter of
    the allocating version's time in a profile)."""

    def __init__(self, images: torch.Tensor, size: int, blend: float) -> None:
        _, channels, height, width = images.shape
        dtype, device = working_dtype(images.device), images.device
        self.images, self.blend = images, blend
        self.out = torch.empty_like(images, memory_format=torch.contiguous_format)
        self.x = torch.empty((size, channels, height, width), dtype=torch.float32, device=device)
        self.lifted = torch.empty_like(self.x)
        self.gray, self.term = torch.empty((2, size, 1, height, width), dtype=torch.float32, device=device)
        self.total = torch.empty(self.x.shape, dtype=dtype, device=device)
        self.flakes = torch.empty((size, 1, height, width), dtype=dtype, device=device)
        # 0-dim divisors: IEEE division on every device (see `convert.divide`)
        self.byte32 = torch.tensor(255.0, dtype=torch.float32, device=device)
        self.byte = torch.tensor(255.0, dtype=dtype, device=device)

    def __call__(self, part: slice, streaks: torch.Tensor) -> None:
        n = streaks.shape[0]
        x, lifted, gray, term = self.x[:n], self.lifted[:n], self.gray[:n], self.term[:n]
        total, flakes = self.total[:n], self.flakes[:n]
        x.copy_(self.images[part]).div_(self.byte32)
        red, green, blue = (x[:, i:i + 1] for i in range(3))   # gray_float32's (0.299R + 0.587G) + 0.114B
        torch.mul(red, GRAY_WEIGHTS[0], out=gray).add_(torch.mul(green, GRAY_WEIGHTS[1], out=term))
        gray.add_(torch.mul(blue, GRAY_WEIGHTS[2], out=term)).mul_(1.5).add_(0.5)
        torch.maximum(x, gray, out=lifted).mul_(1 - self.blend)
        lifted.add_(x.mul_(self.blend))              # = x·blend + lifted·(1 − blend): + commutes exactly
        flakes.copy_(streaks).div_(self.byte)
        total.copy_(lifted).add_(flakes).add_(torch.flip(flakes, dims=(-2, -1)))
        # convert.to_uint8 (float → int32 → uint8, truncating), clipped last: the total is ≥ 0 and
        # trunc(255·min(t, 1)) = min(trunc(255·t), 255); the int32 levels reuse x's buffer (x is spent)
        levels = x.view(torch.int32).copy_(total.mul_(255.0)).clamp_max_(255)
        self.out[part].copy_(levels)
