"""Fidelity of corrbench's corruptions to the reference generators (corruptions spec, Part A).

Each reference below is the reference's per-image NumPy pipeline (HWC, float64) rewritten from the
spec, run on the same images and, for the noises, on the same random draws; corrbench must match it
byte for byte.
"""
from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image

from corrbench.corruptions import SCALE_SIZE, SCALES, get_corruption, severity_parameters
from corrbench.corruptions.digital import channel_means
from corrbench.corruptions.filters import disk_kernel, gaussian_filter_nearest
from corrbench.corruptions.hsv import hsv_to_rgb, rgb_to_hsv
from corrbench.corruptions.resample import box_resize
from image_helpers import to_hwc, to_torch

SEVERITIES = (1, 2, 3, 4, 5)


def random_images(batch: int, size: int, seed: int) -> np.ndarray:
    """uint8 B×S×S×3 images: half random noise, half smooth gradients with flat patches and extremes."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, size)
    smooth = (ramp[None, :, None, None] * rng.uniform(0, 1, (batch, 1, 1, 3))
              + ramp[None, None, :, None] * rng.uniform(0, 1, (batch, 1, 1, 3))).clip(0, 255).astype(np.uint8)
    smooth[:, : size // 4, : size // 4] = rng.integers(0, 256, (batch, 1, 1, 3))  # a flat patch
    smooth[:, -2:, :] = 255
    smooth[:, :, -2:] = 0
    images = noise.copy()
    images[batch // 2:] = smooth[batch // 2:]
    return images


def finish(x: np.ndarray) -> np.ndarray:
    """The reference's `np.uint8(np.clip(x, 0, 1) * 255)`."""
    return np.uint8(np.clip(x, 0, 1) * 255)


# ---- scikit-image's rgb2hsv / hsv2rgb (spec G10), as NumPy ----------------------------------------

def sk_rgb2hsv(arr: np.ndarray) -> np.ndarray:
    out = np.empty_like(arr)
    out_v = arr.max(-1)
    delta = np.ptp(arr, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out_s = delta / out_v
        out_s[delta == 0.0] = 0.0
        idx = arr[..., 0] == out_v
        out[idx, 0] = (arr[idx, 1] - arr[idx, 2]) / delta[idx]
        idx = arr[..., 1] == out_v
        out[idx, 0] = 2.0 + (arr[idx, 2] - arr[idx, 0]) / delta[idx]
        idx = arr[..., 2] == out_v
        out[idx, 0] = 4.0 + (arr[idx, 0] - arr[idx, 1]) / delta[idx]
    out_h = (out[..., 0] / 6.0) % 1.0
    out_h[delta == 0.0] = 0.0
    out[..., 0], out[..., 1], out[..., 2] = out_h, out_s, out_v
    out[np.isnan(out)] = 0
    return out


def sk_hsv2rgb(arr: np.ndarray) -> np.ndarray:
    hi = np.floor(arr[..., 0] * 6)
    f = arr[..., 0] * 6 - hi
    p = arr[..., 2] * (1 - arr[..., 1])
    q = arr[..., 2] * (1 - f * arr[..., 1])
    t = arr[..., 2] * (1 - (1 - f) * arr[..., 1])
    v = arr[..., 2]
    hi = np.stack([hi, hi, hi], axis=-1).astype(np.uint8) % 6
    return np.choose(hi, np.stack([np.stack(c, axis=-1) for c in
                                   ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]))


# ---- the reference pipelines, one image at a time -------------------------------------------------

def ref_brightness(u: np.ndarray, c: float) -> np.ndarray:
    x = sk_rgb2hsv(u / 255.0)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return finish(sk_hsv2rgb(x))


def ref_saturate(u: np.ndarray, c: tuple[float, float]) -> np.ndarray:
    x = sk_rgb2hsv(u / 255.0)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    return finish(sk_hsv2rgb(x))


def ref_contrast(u: np.ndarray, c: float) -> np.ndarray:
    x = u / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return finish((x - means) * c + means)


def ref_gaussian_blur(u: np.ndarray, sigma: float) -> np.ndarray:
    return finish(ndi.gaussian_filter(u / 255.0, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0))


def spec_disk(radius: float, alias_blur: float) -> np.ndarray:
    """Spec G6, written independently of corrbench: disk on the grid, OpenCV Gaussian (REFLECT_101)."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 9), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xs, ys = np.meshgrid(grid, grid)
    disk = (xs ** 2 + ys ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    offsets = np.arange(ksize) - (ksize - 1) / 2
    taps = np.exp(-offsets ** 2 / (2 * alias_blur ** 2))
    taps /= taps.sum()
    blurred = ndi.correlate1d(ndi.correlate1d(disk, taps, axis=1, mode="mirror"), taps, axis=0, mode="mirror")
    return blurred.astype(np.float32)


def ref_defocus(u: np.ndarray, c: tuple[float, float]) -> np.ndarray:
    kernel = spec_disk(*c).astype(np.float64)
    x = u / 255.0
    channels = [ndi.correlate(x[:, :, d], kernel, mode="mirror") for d in range(3)]
    return finish(np.stack(channels, axis=-1))


def ref_pixelate(u: np.ndarray, c: float) -> np.ndarray:
    size = u.shape[0]
    img = Image.fromarray(u).resize((int(size * c), int(size * c)), Image.BOX).resize((size, size), Image.BOX)
    return np.asarray(img)


def ref_jpeg(u: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(u).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


DETERMINISTIC_REFERENCES = {
    "brightness": ref_brightness,
    "saturate": ref_saturate,
    "contrast": ref_contrast,
    "gaussian_blur": ref_gaussian_blur,
    "defocus_blur": ref_defocus,
    "pixelate": ref_pixelate,
    "jpeg_compression": ref_jpeg,
}


def batch_for(scale: str, seed: int) -> np.ndarray:
    return random_images(2 if scale == "imagenet" else 4, SCALE_SIZE[scale], seed)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(DETERMINISTIC_REFERENCES))
def test_deterministic_corruptions_match_the_reference_byte_for_byte(name, scale):
    images = batch_for(scale, seed=zlib.crc32(f"{name}-{scale}".encode()))
    corruption = get_corruption(name)
    reference = DETERMINISTIC_REFERENCES[name]
    for severity, constant in zip(SEVERITIES, severity_parameters(name, scale)):
        ours = to_hwc(corruption(to_torch(images), severity, scale=scale))
        expected = np.stack([reference(u, constant) for u in images])
        assert np.array_equal(ours, expected), f"{name} {scale} s{severity}: {np.sum(ours != expected)} bytes differ"


def test_hsv_corruptions_match_on_ties_greys_and_primaries():
    """Every RGB tie pattern, greys, black, white and primaries: where the op order matters most."""
    image = tie_palette()
    for name, reference in (("brightness", ref_brightness), ("saturate", ref_saturate)):
        for severity, constant in zip(SEVERITIES, severity_parameters(name, "cifar")):
            ours = to_hwc(get_corruption(name)(to_torch(image), severity, scale="cifar"))
            assert np.array_equal(ours[0], reference(image[0], constant)), (name, severity)


def tie_palette() -> np.ndarray:
    """1×32×32×3 uint8: every RGB combination of 9 levels (all tie patterns, greys, primaries)."""
    levels = np.array([0, 1, 51, 102, 127, 128, 204, 254, 255], dtype=np.uint8)
    pixels = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)  # 729 colours
    image = np.zeros((32 * 32, 3), np.uint8)
    image[: len(pixels)] = pixels
    return image.reshape(1, 32, 32, 3)


def test_hsv_conversions_are_bit_identical_to_scikit_image():
    images = np.concatenate([tie_palette(), random_images(3, 32, seed=11)])
    x = images / 255.0
    hsv = to_hwc(rgb_to_hsv(to_torch(x)))
    assert np.array_equal(hsv, np.stack([sk_rgb2hsv(im) for im in x]))
    assert np.array_equal(to_hwc(hsv_to_rgb(to_torch(hsv))), np.stack([sk_hsv2rgb(im) for im in hsv]))


def test_contrast_mean_is_bit_identical_to_numpy():
    """NumPy's mean over (H, W) adds pixels in row-major order; the last bits decide rare truncations."""
    x = random_images(2, 224, seed=5) / 255.0
    expected = np.stack([np.mean(im, axis=(0, 1)) for im in x])
    assert np.array_equal(channel_means(to_torch(x)).reshape(2, 3).numpy(), expected)


# ---- hand-computed cases --------------------------------------------------------------------------

def one_colour_image(rgb: tuple[int, int, int], scale: str) -> torch.Tensor:
    size = SCALE_SIZE[scale]
    return torch.tensor(rgb, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, size, size).contiguous()


@pytest.mark.parametrize("rgb, scale, severity, expected", [
    ((100, 100, 100), "cifar", 1, (112, 112, 112)),  # grey: 255·(100/255 + 0.05) = 112.75
    ((0, 0, 0), "cifar", 5, (76, 76, 76)),           # black: 255·0.3 = 76.5
    ((255, 0, 0), "cifar", 5, (255, 0, 0)),          # V is already 1
    ((200, 100, 50), "tiny", 1, (225, 112, 56)),     # V' = 200/255 + 0.1; hue 1/18, S = 0.75: (V', V'/2, V'/4)
])
def test_brightness_hand_computed(rgb, scale, severity, expected):
    out = get_corruption("brightness")(one_colour_image(rgb, scale), severity, scale=scale)
    assert tuple(out[0, :, 0, 0].tolist()) == expected
    assert (out == out[:, :, :1, :1]).all()


@pytest.mark.parametrize("rgb, scale, severity, expected", [
    ((201, 90, 30), "cifar", 1, (201, 167, 149)),  # S' = 0.3·171/201; t = 167.70, p = 149.70
    ((255, 0, 0), "cifar", 1, (255, 178, 178)),    # S' = 0.3: 255·0.7 = 178.5
    ((101, 101, 101), "cifar", 4, (101, 90, 90)),  # grey gets S' = 0.1 at hue 0: 101·0.9 = 90.9
    ((101, 101, 101), "cifar", 3, (101, 101, 101)),  # S' = 1.5·0 = 0: unchanged
])
def test_saturate_hand_computed(rgb, scale, severity, expected):
    out = get_corruption("saturate")(one_colour_image(rgb, scale), severity, scale=scale)
    assert tuple(out[0, :, 0, 0].tolist()) == expected


def test_contrast_hand_computed():
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[:, :, :16] = 255  # every channel's mean is exactly 0.5
    out = get_corruption("contrast")(image, 1, scale="cifar")  # c = 0.75
    assert (out[:, :, :16] == 223).all()  # 255·(0.5·0.75 + 0.5) = 223.125
    assert (out[:, :, 16:] == 31).all()   # 255·(−0.5·0.75 + 0.5) = 31.875
    image64 = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    image64[:, :, :32] = 255
    out = get_corruption("contrast")(image64, 5, scale="tiny")  # c = 0.05
    assert (out[:, :, :32] == 133).all()  # 255·(0.5·0.05 + 0.5) = 133.875
    assert (out[:, :, 32:] == 121).all()  # 255·(0.5 − 0.025) = 121.125


@pytest.mark.parametrize("size, pairs", [
    (30, [(7, 8), (23, 24)]),
    (28, [(3, 4), (11, 12), (19, 20), (27, 28)]),
    (27, [(2, 3), (9, 10), (15, 16), (21, 22), (28, 29)]),
    (24, [(j, j + 1) for j in range(1, 31, 4)]),
    (20, [(0, 1), (3, 4), (6, 7), (8, 9), (11, 12), (14, 15), (16, 17), (19, 20), (22, 23), (24, 25),
          (27, 28), (30, 31)]),
])
def test_box_downsampling_averages_the_spec_groups(size, pairs):
    """Spec G9: downsampling 32 px averages one or two neighbouring columns (rounded half up)."""
    columns = torch.arange(32, dtype=torch.int64) * 7 + 11  # distinct, odd sums appear
    image = columns.view(1, 1, 1, 32).expand(1, 3, 32, 32).to(torch.uint8).contiguous()
    out = box_resize(image, size)[0, 0, 0].tolist()
    paired = {a for a, _ in pairs} | {b for _, b in pairs}
    groups = sorted([list(p) for p in pairs] + [[j] for j in range(32) if j not in paired])
    expected = [(sum(int(columns[j]) for j in g) * 2 // len(g) + 1) // 2 for g in groups]
    assert out == expected


@pytest.mark.parametrize("size", [32, 64, 224])
def test_box_resize_matches_pillow_on_odd_sizes(size):
    image = random_images(1, size, seed=size)[0]
    for out_size in (size // 3, size - 1, size + 5):
        expected = np.asarray(Image.fromarray(image).resize((out_size, out_size), Image.BOX))
        ours = to_hwc(box_resize(to_torch(image[None]), out_size))[0]
        assert np.array_equal(ours, expected), out_size


# ---- the blur kernels -----------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.05, 0.4, 0.7, 1.0, 1.25, 6.0])
def test_gaussian_filter_is_bit_identical_to_scipy(sigma):
    x = random_images(2, 32, seed=3) / 255.0
    ours = to_hwc(gaussian_filter_nearest(to_torch(x), sigma))
    expected = np.stack([ndi.gaussian_filter(im, (sigma, sigma, 0), mode="nearest", truncate=4.0) for im in x])
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize("radius, alias_blur", [(0.3, 0.4), (1, 0.2), (1.5, 0.1), (2.5, 0.01), (3, 0.1),
                                                (6, 0.5), (8, 0.5), (10, 0.5)])
def test_disk_kernel_matches_the_spec_construction(radius, alias_blur):
    ours = disk_kernel(radius, alias_blur)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, spec_disk(radius, alias_blur), rtol=0, atol=1e-9)


def test_disk_kernel_facts_from_the_spec():
    """Spec G6 / A.4: pixel counts, the unrenormalised sums at the grid edge, the CIFAR s1 weights."""
    for radius, pixels in [(0.3, 1), (0.5, 1), (1, 5), (1.5, 9), (2.5, 21), (3, 29), (4, 49), (6, 113), (8, 197),
                           (10, 317)]:
        assert np.count_nonzero(disk_kernel(radius, 0.01) > 1e-6) == pixels, radius
    assert disk_kernel(8, 0.5).sum() == pytest.approx(1.01298, abs=5e-6)
    assert disk_kernel(10, 0.5).sum() == pytest.approx(1.01079, abs=5e-6)
    assert disk_kernel(10, 0.5).shape == (21, 21) and disk_kernel(3, 0.1).shape == (17, 17)
    k = disk_kernel(0.3, 0.4)
    assert k[8, 8] == pytest.approx(0.84497, abs=5e-6)
    assert k[8, 7] == pytest.approx(0.03713, abs=5e-6)
    assert k[7, 7] == pytest.approx(0.00163, abs=5e-6)
    assert np.count_nonzero(k) == 9


# ---- noise with injected draws --------------------------------------------------------------------

def reference_noise(name: str, images: np.ndarray, c, seed: int) -> np.ndarray:
    """The reference formulas, drawing per image from NumPy exactly as the reference does."""
    rs = np.random.RandomState(seed)
    out = []
    for u in images:
        x = u / 255.0
        if name == "gaussian_noise":
            y = x + rs.normal(size=x.shape, scale=c)
        elif name == "speckle_noise":
            y = x + x * rs.normal(size=x.shape, scale=c)
        elif name == "shot_noise":
            y = rs.poisson(x * c) / c
        else:  # impulse_noise: scikit-image random_noise(x, 's&p', amount=c), rng draws flip then salt
            rng = np.random.default_rng(rs.randint(2 ** 31))
            y = x.copy()
            flipped = rng.random(x.shape) <= c
            salted = rng.random(x.shape) <= 0.5
            y[flipped & salted] = 1
            y[flipped & ~salted] = 0
            y = np.clip(y, 0, 1)
        out.append(finish(y))
    return np.stack(out)


def recorded_draws(name: str, images: np.ndarray, c, seed: int):
    """The same draws as `reference_noise`, in corrbench's B×3×H×W layout."""
    rs = np.random.RandomState(seed)
    per_image = []
    for u in images:
        x = u / 255.0
        if name in ("gaussian_noise", "speckle_noise"):
            per_image.append(rs.standard_normal(x.shape))  # normal(scale=c) is c·standard_normal
        elif name == "shot_noise":
            per_image.append(rs.poisson(x * c).astype(np.float64))
        else:
            rng = np.random.default_rng(rs.randint(2 ** 31))
            per_image.append(np.stack([rng.random(x.shape), rng.random(x.shape)]))
    if name == "impulse_noise":
        stacked = np.stack(per_image)  # B×2×S×S×3
        return tuple(torch.from_numpy(stacked[:, k]).permute(0, 3, 1, 2) for k in range(2))
    return torch.from_numpy(np.stack(per_image)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"])
def test_injected_draws_reproduce_the_reference_formula(name, scale):
    images = batch_for(scale, seed=7)
    for severity, c in zip(SEVERITIES, severity_parameters(name, scale)):
        seed = 100 * severity
        draws = recorded_draws(name, images, c, seed)
        ours = to_hwc(get_corruption(name)(to_torch(images), severity, scale=scale, draws=draws))
        assert np.array_equal(ours, reference_noise(name, images, c, seed)), (name, scale, severity)
