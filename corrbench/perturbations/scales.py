"""-P sequences at Tiny-ImageNet scale (64 px, `make_tinyimagenet_p.py`) and ImageNet scale (224 px,
`make_imagenet_p.py`), hendrycks/robustness ImageNet-P/create_p (spec B.2, "ImageNet-P / Tiny-ImageNet-P").

The CIFAR sequences (the registry of this package) are defined on 32-px frames. These two scales differ in
their per-perturbation constants (the tables below) and in one structural point: the reference applies
the geometric perturbations (zoom_blur, translate, rotate, tilt, scale, shear) to the whole resized image
and crops the centre afterwards, so content from outside the crop moves into view. Generation here takes a
square *context* image (ImageNet: Resize(256) → CenterCrop(256); Tiny ImageNet: the 64-px image itself),
transforms the context and crops the centre `frame_size`; every other perturbation works on the centre
crop, as the reference does. The remaining differences from the reference are stated beside each scale's
table below (and in the README). Images of other sizes keep their size and take the constants of the
nearest scale family.

All frames are batched over images; the loops run over the T frames only. Random draws come from an
explicit torch.Generator (CPU generators give the same bytes on every device).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from corrbench.corruptions.convert import divide, to_uint8, to_unit, working_dtype
from corrbench.corruptions.draws import poisson
from corrbench.corruptions.filters import gaussian_filter_nearest
from corrbench.corruptions.hsv import hsv_to_rgb, rgb_to_hsv
from corrbench.corruptions.motion import motion_blur as magick_motion_blur
from corrbench.corruptions.spatter import liquid_layer, spatter_water
from corrbench.corruptions.zoom import clipped_zoom
from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError
from corrbench.perturbations.geometric import affine_bilinear, torchvision02_inverse_affine, translate_nearest
from corrbench.perturbations.registry import NOISE_DIFFICULTIES, P_PERTURBATIONS
from corrbench.perturbations.tilt import tilt_matrix, warp_perspective_opencv4
from corrbench.perturbations.weather import snow_base, snow_frame

# The test sequences of ImageNet-P and Tiny-ImageNet-P: the "Test Data" blocks of make_imagenet_p.py and
# make_tinyimagenet_p.py (and the paper); spatter is a validation sequence there ("The spatter perturbation
# sequence is a validation sequence", hendrycks/robustness README), unlike in cifar-p-eval.py, where snow is.
IMAGENET_P_TEST_PERTURBATIONS = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness",
                                 "translate", "rotate", "tilt", "scale")

SEQUENCE_FRAMES = 31            # every sequence but translate has 31 frames at these scales
SPATTER_INTENSITY = 0.6         # `m *= 0.6` in both generators
GEOMETRIC = ("zoom_blur", "translate", "rotate", "tilt", "scale", "shear")   # transform the context, then crop


@dataclass(frozen=True)
class PScale:
    """The constants of one scale's -P generator (the reference file is `source`)."""

    name: str                                   # the dataset scale family: 'tiny' | 'imagenet'
    source: str
    frame_size: int                             # frames are frame_size × frame_size
    context_size: int                           # geometric sequences transform this centred square
    gaussian_noise: tuple[float, float, float]  # σ by difficulty 1, 2, 3 (the `_2`, `_3` folders)
    shot_noise: tuple[int, int, int]            # Poisson rate λ by difficulty
    speckle_noise: tuple[float, float, float]   # σ by difficulty
    motion_blur: tuple[float, float, int]       # ImageMagick radius, σ, angle step: angle = step·(t − 30)
    snow: tuple[float, float, float, float, float]   # layer N(μ, σ), clipped_zoom factor, blur radius, blur σ
    gaussian_blur: tuple[float, float, float]   # σ_t = σ₀ + step·t, truncate
    spatter: tuple[float, float, float, float]  # liquid N(μ, σ), gaussian σ, threshold
    drip: tuple[float, ...]                     # per-frame `np.convolve(column, drip, 'same')` of the liquid
    translate_shift: int                        # frame t shifts by t − translate_shift px; 2·shift + 1 frames

    @property
    def translate_frames(self) -> int:
        return 2 * self.translate_shift + 1

    def frames(self, name: str) -> int:
        """T of perturbation `name` at this scale."""
        return self.translate_frames if name == "translate" else SEQUENCE_FRAMES


# make_tinyimagenet_p.py. Its source images are ImageNet val bounding-box crops resized to a 64-px shorter
# side; corrbench starts from the 64×64 Tiny ImageNet images, so the context is the image itself. The
# reference blurs motion_blur frames on the *original-resolution* crop and resizes to 64 afterwards; here
# the same radius acts on the 64-px image, a stronger blur relative to the object (stated in the README).
TINY_P = PScale(
    name="tiny", source="make_tinyimagenet_p.py", frame_size=64, context_size=64,
    gaussian_noise=(0.025, 0.05, 0.075), shot_noise=(500, 250, 125), speckle_noise=(0.05, 0.1, 0.15),
    motion_blur=(14.0, 3.0, 5), snow=(0.05, 0.28, 2.0, 10.0, 2.5), gaussian_blur=(0.35, 0.014, 7.0),
    spatter=(0.6, 0.25, 1.75, 0.7), drip=(0.2, 0.8), translate_shift=15,
)

# make_imagenet_p.py: Resize(256) of the val image, then CenterCrop(224) (before the perturbation, or after
# it for the geometric ones, whose transforms act on the whole resized image). corrbench's context is the
# centred 256×256 square of the resized image: identical for square photos; for others, content beyond that
# square along the longer side enters as zeros here where the reference shows image.
IMAGENET_P = PScale(
    name="imagenet", source="make_imagenet_p.py", frame_size=224, context_size=256,
    gaussian_noise=(0.03, 0.05, 0.08), shot_noise=(300, 120, 60), speckle_noise=(0.05, 0.10, 0.15),
    motion_blur=(10.0, 3.0, 4), snow=(0.05, 0.3, 3.0, 14.0, 4.0), gaussian_blur=(0.25, 0.035, 6.0),
    spatter=(0.65, 0.27, 3.7, 0.69), drip=(0.05, 0.1, 0.15, 0.7), translate_shift=20,
)

P_SCALES: dict[str, PScale] = {TINY_P.name: TINY_P, IMAGENET_P.name: IMAGENET_P}


def get_p_scale(name: str) -> PScale:
    """The constants of scale family `name` ('tiny', 'imagenet'); UnknownNameError otherwise."""
    if name not in P_SCALES:
        raise UnknownNameError("-P scale", name, tuple(P_SCALES))
    return P_SCALES[name]


# ---------------------------------------------------------------------------------------------------
# per-frame schedules (the reference's loop bodies), one place each

def brightness_shift(t: int) -> float:
    """c = (t − 15)·2/100, as both generators write it."""
    return (t - 15) * 2 / 100.0


def motion_blur_angle(scale: PScale, t: int) -> int:
    return (t - 30) * scale.motion_blur[2]


def snow_angle(t: int) -> int:
    return t * 4 - 150


def gaussian_blur_sigma(scale: PScale, t: int) -> float:
    return scale.gaussian_blur[0] + scale.gaussian_blur[1] * t


def zoom_factor(t: int) -> float:
    return 1 + 0.004 * t


def scale_factor(t: int) -> float:
    return (t * 2.5 + 40) / 100.0


def tilt_degrees(t: int) -> int:
    """φ = θ = t − 15 degrees at both scales (CIFAR uses 0.75·(t − 15))."""
    return t - 15


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision CenterCrop(size) of B×C×H×W: top = int(round((H − size)/2)), likewise left."""
    height, width = images.shape[-2:]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return images[..., top:top + size, left:left + size]


def drip(liquid: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    """Per column (dim −2), `np.convolve(column, kernel, 'same')`: out[r] = Σ_j k[j]·L[r + c − j] with
    c = (len(k) − 1)//2 and zero outside (numpy's 'same' window of the full convolution)."""
    rows = liquid.shape[-2]
    centre = (len(kernel) - 1) // 2
    out = torch.zeros_like(liquid)
    for j, weight in enumerate(kernel):
        shift = j - centre                       # out[r] takes L[r − shift]
        if shift >= 0:
            out[..., shift:, :] += weight * liquid[..., :rows - shift, :]
        else:
            out[..., :rows + shift, :] += weight * liquid[..., -shift:, :]
    return out


# ---------------------------------------------------------------------------------------------------
# the sequences; each returns uint8 B×T×3×S×S from uint8 context images B×3×C×C

def _draw_normal(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32).to(
        device=device, dtype=dtype)


def _stack(frames: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(frames, dim=1)


def _gaussian_noise(crop, scale, generator, difficulty, size):
    sigma = scale.gaussian_noise[difficulty - 1]
    x = divide(crop.float(), 255.0)                     # ToTensor: float32
    frames = [crop]
    for _ in range(1, SEQUENCE_FRAMES):                 # ToPILImage(clamp(x + σ·randn_like(x), 0, 1)) truncates
        eps = _draw_normal(tuple(x.shape), generator, torch.float32, x.device)
        frames.append(torch.clamp(x + sigma * eps, 0, 1).mul_(255).floor_().to(torch.uint8))
    return _stack(frames)


def _shot_noise(crop, scale, generator, difficulty, size):
    rate = scale.shot_noise[difficulty - 1]
    mean = to_unit(crop) * rate
    return _stack([crop] + [to_uint8(divide(poisson(mean, generator), rate)) for _ in range(1, SEQUENCE_FRAMES)])


def _speckle_noise(crop, scale, generator, difficulty, size):
    sigma = scale.speckle_noise[difficulty - 1]
    x = to_unit(crop)
    frames = [crop]
    for _ in range(1, SEQUENCE_FRAMES):
        frames.append(to_uint8(x + x * (sigma * _draw_normal(tuple(x.shape), generator, x.dtype, x.device))))
    return _stack(frames)


def _motion_blur(crop, scale, generator, difficulty, size):
    radius, sigma, _ = scale.motion_blur
    frames = []
    for t in range(SEQUENCE_FRAMES):
        angles = torch.full((crop.shape[0],), float(motion_blur_angle(scale, t)), device=crop.device,
                            dtype=working_dtype(crop.device))
        frames.append(magick_motion_blur(crop, radius, sigma, angles))
    return _stack(frames)


def _snow(crop, scale, generator, difficulty, size):
    mean, std, zoom, radius, sigma = scale.snow
    dtype = working_dtype(crop.device)
    z = _draw_normal((crop.shape[0], *crop.shape[2:]), generator, dtype, crop.device)
    layer = clipped_zoom((mean + std * z).unsqueeze(1), zoom)
    layer = to_uint8(torch.where(layer < 0.5, 0.0, layer))      # the grey PNG the reference blurs
    base = snow_base(crop)
    frames = []
    for t in range(SEQUENCE_FRAMES):
        angles = torch.full((crop.shape[0],), float(snow_angle(t)), device=crop.device, dtype=dtype)
        frames.append(snow_frame(base, magick_motion_blur(layer, radius, sigma, angles)))
    return _stack(frames)


def _brightness(crop, scale, generator, difficulty, size):
    hsv = rgb_to_hsv(to_unit(crop))
    frames = []
    for t in range(SEQUENCE_FRAMES):
        shifted = hsv.clone()
        shifted[:, 2] = (hsv[:, 2] + brightness_shift(t)).clamp_(0.0, 1.0)
        frames.append(to_uint8(hsv_to_rgb(shifted)))
    return _stack(frames)


def _gaussian_blur(crop, scale, generator, difficulty, size):
    x = to_unit(crop)
    truncate = scale.gaussian_blur[2]
    return _stack([to_uint8(gaussian_filter_nearest(x, gaussian_blur_sigma(scale, t), truncate))
                   for t in range(SEQUENCE_FRAMES)])


def _spatter(crop, scale, generator, difficulty, size):
    mean, std, blur, threshold = scale.spatter
    z = _draw_normal((crop.shape[0], *crop.shape[2:]), generator, working_dtype(crop.device), crop.device)
    liquid = liquid_layer(z, mean, std, blur, threshold)
    frames = []
    for _ in range(SEQUENCE_FRAMES):
        frames.append(spatter_water(crop, liquid, SPATTER_INTENSITY))
        liquid = drip(liquid, scale.drip)
    return _stack(frames)


def _zoom_blur(context, scale, generator, difficulty, size):
    first = center_crop(context, size)
    running_sum = divide(first.float(), 255.0)          # ToTensor sums in float32
    frames = [first]
    for t in range(1, SEQUENCE_FRAMES):
        zoomed = center_crop(affine_bilinear(context, torchvision02_inverse_affine(
            scale=zoom_factor(t), size=context.shape[-1])), size)
        running_sum += divide(zoomed.float(), 255.0)
        frames.append(divide(running_sum, t + 1).mul_(255).floor_().to(torch.uint8))
    return _stack(frames)


def _translate(context, scale, generator, difficulty, size):
    return _stack([center_crop(translate_nearest(context, t - scale.translate_shift), size)
                   for t in range(scale.translate_frames)])


def _affine_sequence(coefficients: Callable[[int, int], tuple]) -> Callable:
    def sequence(context, scale, generator, difficulty, size):
        return _stack([center_crop(affine_bilinear(context, coefficients(t, context.shape[-1])), size)
                       for t in range(SEQUENCE_FRAMES)])
    return sequence


def _tilt(context, scale, generator, difficulty, size):
    return _stack([center_crop(warp_perspective_opencv4(context, tilt_matrix(tilt_degrees(t), size=context.shape[-1])),
                               size) for t in range(SEQUENCE_FRAMES)])


_SEQUENCES: dict[str, Callable] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "speckle_noise": _speckle_noise,
    "motion_blur": _motion_blur, "zoom_blur": _zoom_blur, "snow": _snow, "brightness": _brightness,
    "translate": _translate,
    "rotate": _affine_sequence(lambda t, c: torchvision02_inverse_affine(angle=t - 15, scale=1.0, size=c)),
    "tilt": _tilt,
    "scale": _affine_sequence(lambda t, c: torchvision02_inverse_affine(scale=scale_factor(t), size=c)),
    "gaussian_blur": _gaussian_blur, "spatter": _spatter,
    "shear": _affine_sequence(lambda t, c: torchvision02_inverse_affine(shear=t - 15, scale=1.0, size=c)),
}
STOCHASTIC = ("gaussian_noise", "shot_noise", "speckle_noise", "snow", "spatter")


def generate_scaled_sequences(context: torch.Tensor, name: str, scale: PScale,
                              generator: torch.Generator | None = None, *, difficulty: int = 1,
                              frame_size: int | None = None) -> torch.Tensor:
    """-P videos uint8 B×T×3×S×S of perturbation `name` with `scale`'s constants, from uint8 square
    context images B×3×C×C; non-geometric sequences use the centre S crop.

    S = `frame_size`, by default the scale's own when C is its context size (256 → 224 for ImageNet),
    else C (images of other sizes keep their size and take the scale's constants).
    `difficulty` (1..3) picks the noise strength of noise sequences; stochastic sequences need `generator`.
    """
    if name not in _SEQUENCES:
        raise UnknownNameError("perturbation", name, P_PERTURBATIONS)
    if not isinstance(context, torch.Tensor) or context.dtype != torch.uint8 or context.ndim != 4 \
            or context.shape[1] != 3 or context.shape[2] != context.shape[3]:
        got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
        raise LayoutError(f"-P context images must be square uint8 RGB B×3×C×C, got {got}")
    if "noise" in name and difficulty not in NOISE_DIFFICULTIES:
        raise InvalidValueError(f"noise difficulty must be 1, 2 or 3, got {difficulty}")
    if name in STOCHASTIC and generator is None:
        raise ValueError(f"{name} is stochastic: pass a torch.Generator")
    side = context.shape[-1]
    size = frame_size or (scale.frame_size if side == scale.context_size else side)
    if not 0 < size <= side:
        raise InvalidValueError(f"frame size must be between 1 and the context's {side} px, got {size}")
    if context.shape[0] == 0:
        return context.new_empty((0, scale.frames(name), 3, size, size))
    source = context if name in GEOMETRIC else center_crop(context, size).contiguous()
    return _SEQUENCES[name](source, scale, generator, difficulty, size).contiguous()
