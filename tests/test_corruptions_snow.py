"""snow against a NumPy rewrite of the reference (corruptions spec A.8, G5, G8, G15), plus its invariants."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import zoom as scipy_zoom

from corrbench.corruptions import SCALE_SIZE, SCALES, corrupt, get_corruption, severity_parameters
from corrbench.corruptions.motion import motion_blur_angles
from corrbench.corruptions.snow import SNOW_ANGLE_RANGE, gray_float32, layer_normals, snow_layer
from image_helpers import seeded, to_hwc, to_torch

SEVERITIES = (1, 2, 3, 4, 5)


def random_images(batch: int, size: int, seed: int) -> np.ndarray:
    """uint8 B×S×S×3: noise, ramps, a flat patch and a dark corner (where the brightening term wins)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, size)
    for b in range(1, batch, 2):
        smooth = ramp[:, None, None] * rng.uniform(0, 1, 3) * 0.5 + ramp[None, :, None] * rng.uniform(0, 1, 3) * 0.5
        images[b] = smooth.clip(0, 255).astype(np.uint8)
        images[b, : size // 3, : size // 3] = rng.integers(0, 256, 3)
        images[b, -size // 4:, -size // 4:] = rng.integers(0, 40, 3)
    return images


# ---- the reference, in NumPy -----------------------------------------------------------------------

def numpy_clipped_zoom(image: np.ndarray, zoom: float) -> np.ndarray:
    side = image.shape[0]
    crop = int(np.ceil(side / zoom))
    top = (side - crop) // 2
    zoomed = scipy_zoom(image[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - side) // 2
    return zoomed[trim:trim + side, trim:trim + side]


def numpy_motion_blur(layer: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Spec G8 on a grey uint8 layer S×S: Q16 sum over the one-sided Gaussian taps, round, truncating write."""
    width = 2 * math.ceil(radius) + 1
    taps = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    taps /= taps.sum()
    theta = math.radians(angle)
    index = np.arange(layer.shape[0])
    quanta = layer.astype(np.float64) * 257
    total = np.zeros(layer.shape)
    for i in range(width):
        dx, dy = math.ceil(i * math.cos(theta) - 0.5), math.ceil(i * math.sin(theta) - 0.5)
        total += taps[i] * quanta[np.clip(index + dy, 0, index[-1])][:, np.clip(index + dx, 0, index[-1])]
    return (np.clip(np.floor(total + 0.5), 0, 65535) // 257).astype(np.uint8)


def numpy_snow(image: np.ndarray, constants: tuple, normals: np.ndarray, angle: float) -> np.ndarray:
    mean, std, zoom, threshold, radius, blur_sigma, blend = constants
    x = np.array(image, dtype=np.float32) / 255.0
    layer = numpy_clipped_zoom((mean + std * normals)[..., None], zoom)
    layer[layer < threshold] = 0
    layer = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    flakes = (numpy_motion_blur(layer, radius, blur_sigma, angle) / 255.0)[..., None]
    gray = (x[..., 0] * np.float32(0.299) + x[..., 1] * np.float32(0.587)) + x[..., 2] * np.float32(0.114)
    x = blend * x + (1 - blend) * np.maximum(x, gray[..., None] * 1.5 + 0.5)
    return np.uint8(np.clip(x + flakes + np.rot90(flakes, k=2), 0, 1) * 255)


# ---- fidelity ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale, batch", [("cifar", 4), ("tiny", 2), ("imagenet", 1)])
def test_snow_matches_the_reference_byte_for_byte(scale, batch):
    size = SCALE_SIZE[scale]
    images = random_images(batch, size, seed=1)
    rng = np.random.default_rng(2)
    for severity in SEVERITIES:
        normals = rng.standard_normal((batch, size, size))
        angles = rng.uniform(-135, -45, batch)
        constants = severity_parameters("snow", scale)[severity - 1]
        expected = np.stack([numpy_snow(images[b], constants, normals[b], angles[b]) for b in range(batch)])
        got = get_corruption("snow")(to_torch(images), severity, scale=scale,
                                     draws=(torch.from_numpy(normals), torch.from_numpy(angles)))
        assert np.array_equal(to_hwc(got), expected), (scale, severity)


def test_snow_layer_is_zoomed_thresholded_and_truncated():
    """Hand case at 32 px, zoom 1 (identity): L = 0.1 + 0.2·z; below 0.6 → 0; trunc(255·clip(L))."""
    normals = torch.tensor([-1.0, 2.4, 2.5, 3.0, 4.4, 5.0], dtype=torch.float64).repeat(171)[:1024].view(1, 32, 32)
    layer = snow_layer(normals, 0.1, 0.2, 1, 0.6)
    assert layer.shape == (1, 1, 32, 32) and layer.dtype == torch.uint8
    # L = −0.1, 0.58, 0.6, 0.7, 0.98, 1.1 → 0, 0 (below 0.6), 153, 178, 249, 255
    assert layer[0, 0, 0, :6].tolist() == [0, 0, 153, 178, 249, 255]


def test_gray_is_opencvs_float32_weighting():
    x = torch.rand(2, 3, 16, 16, generator=seeded(0)).float()
    gray = gray_float32(x)
    red, green, blue = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    assert gray.dtype == torch.float32
    assert torch.equal(gray, (red * np.float32(0.299) + green * np.float32(0.587)) + blue * np.float32(0.114))
    cv2 = pytest.importorskip("cv2")
    theirs = cv2.cvtColor(x[0].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2GRAY)
    # an FMA-dispatched OpenCV kernel may round the last bit differently; never more
    assert np.abs(theirs - gray[0, 0].numpy()).max() <= 6e-8


def test_snow_is_close_to_imagecorruptions_given_the_same_draws():
    """imagecorruptions blurs the float layer (no 8-bit PNG) and rounds it; same constants at 224 px.
    Given the same normals and angle, the images agree to within a level on average and in PSNR."""
    icc = pytest.importorskip("imagecorruptions.corruptions")
    image = random_images(2, 224, seed=3)[1]
    clean = image.astype(np.float64)

    def psnr(corrupted: np.ndarray) -> float:
        return 10 * np.log10(255.0 ** 2 / np.mean((corrupted - clean) ** 2))

    for severity, seed in ((2, 4), (5, 5)):
        np.random.seed(seed)
        normals, angle = np.random.standard_normal((224, 224)), np.random.uniform(-135, -45)
        np.random.seed(seed)   # their snow draws the same stream: normal(size, μ, σ) = μ + σ·z, then the angle
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.uint8(icc.snow(image, severity)).astype(np.float64)
        ours = to_hwc(get_corruption("snow")(to_torch(image[None]), severity, scale="imagenet",
                                             draws=(torch.from_numpy(normals[None]), torch.tensor([angle]))))[0]
        assert np.abs(ours - theirs).mean() < 1.5
        assert abs(psnr(ours.astype(np.float64)) - psnr(theirs)) < 0.5


# ---- invariants --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
def test_snow_invariants_at_every_severity(scale):
    images = to_torch(random_images(3, SCALE_SIZE[scale], seed=6)[1:])
    pair = torch.cat([images[:1], images[:1]])
    kept = images.clone()
    for severity in SEVERITIES:
        out = corrupt(images, "snow", severity, scale=scale, generator=seeded(severity))
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
        assert torch.equal(images, kept)
        assert torch.equal(out, corrupt(images, "snow", severity, scale=scale, generator=seeded(severity)))
        assert not torch.equal(out, corrupt(images, "snow", severity, scale=scale, generator=seeded(severity + 50)))
        twins = corrupt(pair, "snow", severity, scale=scale, generator=seeded(severity))
        assert not torch.equal(twins[0], twins[1])
        assert out.float().mean() > images.float().mean()       # snow only brightens


def test_snow_generated_draws_are_the_documented_injectable_ones():
    images = to_torch(random_images(3, 32, seed=7))
    generator = seeded(8)
    normals = layer_normals(images, generator)
    angles = motion_blur_angles(images, generator, *SNOW_ANGLE_RANGE)
    assert normals.shape == (3, 32, 32) and normals.dtype == torch.float64
    assert abs(float(layer_normals(torch.zeros(64, 3, 32, 32), seeded(0)).std()) - 1) < 0.01
    assert bool(((angles >= -135) & (angles < -45)).all())
    assert torch.equal(corrupt(images, "snow", 4, generator=seeded(8)),
                       get_corruption("snow")(images, 4, scale="cifar", draws=(normals, angles)))


def test_snow_does_not_depend_on_the_batch_size():
    images = to_torch(random_images(200, 32, seed=9))
    normals = torch.from_numpy(np.random.default_rng(10).standard_normal((200, 32, 32)))
    angles = torch.from_numpy(np.random.default_rng(11).uniform(-135, -45, 200))
    snow = get_corruption("snow")
    whole = snow(images, 3, scale="cifar", draws=(normals, angles))
    assert torch.equal(whole[120:], snow(images[120:], 3, scale="cifar", draws=(normals[120:], angles[120:])))


def test_snow_rejects_malformed_draws():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    snow = get_corruption("snow")
    with pytest.raises(ValueError, match="pair"):
        snow(images, 1, scale="cifar", draws=torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match=r"normals\) must be a float tensor \(2, 32, 32\)"):
        snow(images, 1, scale="cifar", draws=(torch.zeros(2, 1, 32, 32), torch.zeros(2)))
    with pytest.raises(ValueError, match="angles must be a float tensor"):
        snow(images, 1, scale="cifar", draws=(torch.zeros(2, 32, 32), torch.zeros(3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_snow_on_cuda_matches_the_cpu():
    images = to_torch(random_images(3, 32, seed=12))
    normals = torch.from_numpy(np.random.default_rng(13).standard_normal((3, 32, 32)))
    angles = torch.from_numpy(np.random.default_rng(14).uniform(-135, -45, 3))
    snow = get_corruption("snow")
    for severity in SEVERITIES:
        cpu = snow(images, severity, scale="cifar", draws=(normals, angles))
        gpu = snow(images.cuda(), severity, scale="cifar", draws=(normals.cuda(), angles.cuda()))
        assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1 and (gpu.cpu() != cpu).float().mean() < 1e-3
