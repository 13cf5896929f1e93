"""Spatter (spec A.18): fidelity to the reference with injected draws, seeding, and the public pieces.

The reference below is the reference generators' spatter rewritten as a NumPy + cv2 function of one
HWC image and its standard-normal draws z (np.random.normal(loc=μ, scale=σ) is exactly μ + σ·z). Its
distance transform is the fixed-point algorithm of OpenCV ≤ 4.x that the reference ran on (spec G14,
see tests/test_cv_ops.py): the installed OpenCV 5.0 computes it in float32 instead, which moves some
ImageNet-scale water images by a few levels.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from corrbench.corruptions import SCALE_SIZE, SCALES, corrupt, get_corruption, severity_parameters
from corrbench.corruptions.spatter import SPATTER, liquid_layer, spatter_mud, spatter_water
from test_cv_ops import chamfer_reference
from image_helpers import seeded, to_torch

SEVERITIES = (1, 2, 3, 4, 5)


def reference_spatter(u: np.ndarray, c: tuple, z: np.ndarray) -> np.ndarray:
    """Spec A.18 for one uint8 HWC image u with constants c and draws z (S×S), as the reference does it."""
    x = np.array(u, dtype=np.float32) / 255.
    liquid = c[0] + c[1] * z
    liquid = ndi.gaussian_filter(liquid, c[2], mode="nearest", truncate=4.0)  # skimage gaussian, 2-D
    liquid[liquid < c[3]] = 0
    return reference_branch(x, liquid, c)


def reference_branch(x: np.ndarray, liquid: np.ndarray, c: tuple) -> np.ndarray:
    if c[5] == 0:
        liquid = (liquid * 255).astype(np.uint8)  # truncates, wraps above 255
        dist = 255 - cv2.Canny(liquid, 50, 150)
        dist = (chamfer_reference(dist).astype(np.float32) * np.float32(2.0 ** -16))  # distanceTransform(L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid * dist, cv2.COLOR_GRAY2BGRA)
        with np.errstate(invalid="ignore"):
            m /= np.max(m, axis=(0, 1))
        m *= c[4]
        color = np.concatenate((175 / 255. * np.ones_like(m[..., :1]),
                                238 / 255. * np.ones_like(m[..., :1]),
                                238 / 255. * np.ones_like(m[..., :1])), axis=2)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
        x = cv2.cvtColor(x, cv2.COLOR_BGR2BGRA)
        out = cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255
    else:
        m = np.where(liquid > c[3], 1, 0)
        m = ndi.gaussian_filter(m.astype(np.float32), c[4], mode="nearest", truncate=4.0)  # float32 output
        m[m < 0.8] = 0
        color = np.concatenate((63 / 255. * np.ones_like(x[..., :1]),
                                42 / 255. * np.ones_like(x[..., :1]),
                                20 / 255. * np.ones_like(x[..., :1])), axis=2)
        color *= m[..., np.newaxis]
        x *= (1 - m[..., np.newaxis])
        out = np.clip(x + color, 0, 1) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN → 0 when a water layer is all dry
        return np.uint8(out)


def random_images(batch: int, size: int, seed: int) -> np.ndarray:
    """uint8 B×S×S×3: random noise and smooth gradients with saturated borders."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, size)
    images[batch // 2:] = (ramp[:, None, None] * rng.uniform(0, 1, 3) + ramp[None, :, None] * 0.5).clip(0, 255)
    images[batch // 2:, -2:] = 255
    return images


BATCH = {"cifar": 6, "tiny": 3, "imagenet": 1}


# ---- the registry entry -----------------------------------------------------------------------------

def test_spatter_is_registered_with_the_reference_constants():
    entry = get_corruption("spatter")
    assert entry.family == "weather" and entry.stochastic and entry.spec == "A.18"
    assert severity_parameters("spatter", "cifar") == (
        (.62, .1, .7, .7, .5, 0), (.65, .1, .8, .7, .5, 0), (.65, .3, 1, .69, .5, 0),
        (.65, .1, .7, .69, .6, 1), (.65, .1, .5, .68, .6, 1))
    assert severity_parameters("spatter", "tiny") == (
        (.62, .1, .7, .7, .6, 0), (.65, .1, .8, .7, .6, 0), (.65, .3, 1, .69, .6, 0),
        (.65, .1, .7, .68, .6, 1), (.65, .1, .5, .67, .6, 1))
    assert severity_parameters("spatter", "imagenet") == (
        (.65, .3, 4, .69, .6, 0), (.65, .3, 3, .68, .6, 0), (.65, .3, 2, .68, .5, 0),
        (.65, .3, 1, .65, 1.5, 1), (.67, .4, 1, .65, 1.5, 1))


# ---- fidelity ---------------------------------------------------------------------------------------

def test_numpy_normal_is_loc_plus_scale_times_standard_normal():
    """The injection convention: the reference's N(μ, σ) draw equals μ + σ·z with z the same stream's
    standard normals, bit for bit."""
    z = np.random.RandomState(11).standard_normal((32, 32))
    assert np.array_equal(np.random.RandomState(11).normal(size=(32, 32), loc=0.65, scale=0.3), 0.65 + 0.3 * z)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_spatter_matches_the_reference_given_the_draws(scale, severity):
    size, batch = SCALE_SIZE[scale], BATCH[scale]
    images = random_images(batch, size, seed=severity)
    z = np.random.default_rng(100 * severity + size).standard_normal((batch, size, size))
    constants = SPATTER[scale][severity - 1]
    expected = np.stack([reference_spatter(images[i], constants, z[i]) for i in range(batch)])
    out = get_corruption("spatter")(to_torch(images), severity, scale=scale, draws=torch.from_numpy(z))
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
    assert not np.array_equal(expected, images)


def test_water_wraps_liquid_above_one_like_the_uint8_cast():
    """(L·255).astype(uint8) wraps: L = 1.1 gives 280 → 24 (spec 0.3), and the water follows the
    wrapped layer."""
    assert np.array([1.1 * 255]).astype(np.uint8)[0] == 24
    rng = np.random.default_rng(6)
    liquid = ndi.gaussian_filter(rng.normal(0.9, 0.4, (4, 32, 32)), (0, 1, 1), mode="nearest")
    liquid[liquid < 0.69] = 0
    assert (liquid > 1).any()
    images = random_images(4, 32, seed=6)
    x = images.astype(np.float32) / np.float32(255)
    expected = np.stack([reference_branch(x[i], liquid[i], (0, 0, 0, 0, 0.5, 0)) for i in range(4)])
    out = spatter_water(to_torch(images), torch.from_numpy(liquid), 0.5)
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)


def wet_layer(seed: int) -> np.ndarray:
    """A thresholded liquid layer 32×32 with CIFAR severity-3 statistics."""
    layer = ndi.gaussian_filter(np.random.default_rng(seed).normal(0.65, 0.3, (32, 32)), 1, mode="nearest")
    layer[layer < 0.69] = 0
    return layer


def test_a_dry_water_layer_turns_the_image_black_as_the_reference_does():
    """No liquid: m = 0/0 = NaN everywhere and np.uint8(NaN) is 0 (spec A.18); the other image is
    splashed as usual, and water only ever adds colour."""
    images = to_torch(random_images(2, 32, seed=7))
    liquid = torch.zeros(2, 32, 32, dtype=torch.float64)
    liquid[1] = torch.from_numpy(wet_layer(seed=7))
    out = spatter_water(images, liquid, 0.5)
    assert (out[0] == 0).all()
    x = images.permute(0, 2, 3, 1).numpy().astype(np.float32) / np.float32(255)
    expected = reference_branch(x[1], liquid[1].numpy(), (0, 0, 0, 0, .5, 0))
    assert np.array_equal(out[1].permute(1, 2, 0).numpy(), expected)
    assert (out[1] >= images[1]).all() and (out[1] > images[1]).any()


def test_the_branches_check_the_liquid_layer_shape():
    images = to_torch(random_images(2, 32, seed=8))
    with pytest.raises(ValueError, match="B×H×W"):
        spatter_water(images, torch.zeros(2, 1, 32, 32), 0.5)
    with pytest.raises(ValueError, match="B×H×W"):
        spatter_mud(images, torch.zeros(3, 32, 32), 0.69, 0.6)


def test_liquid_layer_is_blur_then_threshold():
    z = torch.from_numpy(np.random.default_rng(8).standard_normal((2, 32, 32)))
    ours = liquid_layer(z, 0.65, 0.3, 1.0, 0.69).numpy()
    for i in range(2):
        expected = ndi.gaussian_filter(0.65 + 0.3 * z[i].numpy(), 1.0, mode="nearest", truncate=4.0)
        expected[expected < 0.69] = 0
        assert np.array_equal(ours[i], expected)


def test_mud_leaves_dry_pixels_exactly_unchanged_and_browns_the_rest():
    images = to_torch(random_images(3, 32, seed=9))
    liquid = torch.zeros(3, 32, 32, dtype=torch.float64)
    liquid[:, 8:24, 8:24] = 0.9  # a square puddle
    out = spatter_mud(images, liquid, 0.69, 0.6)
    assert torch.equal(out[:, :, :6], images[:, :, :6])  # far from the puddle: m = 0
    assert (out[:, :, 14, 14] == torch.tensor([63, 42, 20], dtype=torch.uint8)).all()  # m = 1 in its middle


# ---- seeding, draws, layout -------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes():
    images = to_torch(random_images(3, 32, seed=10))
    for severity in (2, 5):
        a = corrupt(images, "spatter", severity, generator=seeded(1))
        assert torch.equal(a, corrupt(images, "spatter", severity, generator=seeded(1)))
        assert not torch.equal(a, corrupt(images, "spatter", severity, generator=seeded(2)))


def test_identical_images_in_a_batch_get_independent_layers():
    one = to_torch(random_images(1, 32, seed=11))
    for severity in (1, 4):
        out = corrupt(one.expand(2, -1, -1, -1).contiguous(), "spatter", severity, generator=seeded(0))
        assert not torch.equal(out[0], out[1])


def test_generated_draws_are_the_injectable_ones_and_the_global_rng_is_untouched():
    images = to_torch(random_images(2, 64, seed=12))
    state = torch.random.get_rng_state()
    drawn = corrupt(images, "spatter", 3, scale="tiny", generator=seeded(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    z = torch.randn((2, 64, 64), generator=seeded(5), dtype=torch.float32).double()
    assert torch.equal(get_corruption("spatter")(images, 3, scale="tiny", draws=z), drawn)


def test_bad_draws_are_programming_errors():
    images = to_torch(random_images(2, 32, seed=13))
    with pytest.raises(ValueError, match="B×H×W"):
        get_corruption("spatter")(images, 1, scale="cifar", draws=torch.zeros(2, 3, 32, 32))


def test_layout_views_empty_batches_and_the_input_are_respected():
    images = to_torch(random_images(2, 32, seed=14))
    before = images.clone()
    for severity in (1, 4):
        plain = corrupt(images, "spatter", severity, generator=seeded(3))
        strided = corrupt(images.contiguous(memory_format=torch.channels_last), "spatter", severity,
                          generator=seeded(3))
        assert plain.dtype == torch.uint8 and plain.shape == images.shape
        assert torch.equal(plain, strided)
    assert torch.equal(images, before)
    empty = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    assert corrupt(empty, "spatter", 2, generator=seeded(0)).shape == (0, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_bytes_for_the_same_draws():
    images = to_torch(random_images(4, 32, seed=15))
    z = torch.from_numpy(np.random.default_rng(15).standard_normal((4, 32, 32)))
    for severity in SEVERITIES:
        cpu = get_corruption("spatter")(images, severity, scale="cifar", draws=z)
        gpu = get_corruption("spatter")(images.cuda(), severity, scale="cifar", draws=z.cuda())
        assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
