"""glass_blur, motion_blur and zoom_blur against the reference's arithmetic (corruptions spec A.5–A.7, G4,
G5, G8), plus the invariants every corruption keeps (dtype, shape, device, seeds, independence).

The references below are plain NumPy/scipy rewrites of the reference pipelines, per image (HWC), fed the
same random draws; corrbench must reproduce their bytes.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.ndimage import zoom as scipy_zoom

from corrbench.corruptions import SCALE_SIZE, SCALES, corrupt, get_corruption, severity_parameters
from corrbench.corruptions.blur import GLASS_BLUR_SIGMA_DELTA_ITERATIONS, local_shuffle, shuffle_offsets
from corrbench.corruptions.motion import (
    MOTION_BLUR_RADIUS_SIGMA, kernel_width, motion_blur, motion_blur_angles, motion_blur_kernel,
)
from corrbench.corruptions.zoom import clipped_zoom, zoom_factors, zoom_geometry
from image_helpers import seeded, to_hwc, to_torch

SEVERITIES = (1, 2, 3, 4, 5)


def random_images(batch: int, size: int, seed: int) -> np.ndarray:
    """uint8 B×S×S×3: noise, smooth ramps and flat patches (flat areas exercise the exact-integer cases)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, size)
    for b in range(1, batch, 2):
        smooth = ramp[:, None, None] * rng.uniform(0, 1, 3) * 0.5 + ramp[None, :, None] * rng.uniform(0, 1, 3) * 0.5
        images[b] = smooth.clip(0, 255).astype(np.uint8)
        images[b, : size // 3, : size // 3] = rng.integers(0, 256, 3)
    return images


# ---- NumPy references ------------------------------------------------------------------------------

def numpy_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """scikit-image `gaussian(x, σ, channel_axis=-1)` = scipy's filter with σ 0 on channels ('nearest')."""
    return gaussian_filter(x, (sigma, sigma, 0), mode="nearest", truncate=4.0)


def numpy_glass_blur(image: np.ndarray, sigma: float, delta: int, iterations: int, draws: np.ndarray) -> np.ndarray:
    """The reference loop, draws[it, i, j] = (dx, dy) of the i-th visited row and j-th visited column."""
    x = np.uint8(numpy_gaussian(image / 255.0, sigma) * 255)
    side = x.shape[0]
    for it in range(iterations):
        for i, h in enumerate(range(side - delta, delta, -1)):
            for j, w in enumerate(range(side - delta, delta, -1)):
                dx, dy = draws[it, i, j]
                h_src, w_src = h + dy, w + dx
                x[h, w], x[h_src, w_src] = x[h_src, w_src], x[h, w]   # the reference's "swap"
    return np.uint8(np.clip(numpy_gaussian(x / 255.0, sigma), 0, 1) * 255)


def numpy_motion_blur(image: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """Spec G8 directly: one-sided Gaussian taps at ceil(i·cos θ − 0.5), ceil(i·sin θ − 0.5), edge clamp,
    Q16 sum, IM's q = floor(e + 0.5) and the PNG writer's floor(q/257). image: uint8 H×W×C."""
    width = 2 * math.ceil(radius) + 1
    taps = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    taps /= taps.sum()
    theta = math.radians(angle)
    rows, cols = np.arange(image.shape[0]), np.arange(image.shape[1])
    quanta = image.astype(np.float64) * 257
    total = np.zeros(image.shape)
    for i in range(width):
        dx, dy = math.ceil(i * math.cos(theta) - 0.5), math.ceil(i * math.sin(theta) - 0.5)
        total += taps[i] * quanta[np.clip(rows + dy, 0, rows[-1])][:, np.clip(cols + dx, 0, cols[-1])]
    stored = np.clip(np.floor(total + 0.5), 0, 65535)
    return (stored // 257).astype(np.uint8)


def numpy_clipped_zoom(image: np.ndarray, zoom: float) -> np.ndarray:
    """The reference's clipped_zoom (spec G5) with scipy's zoom (G4)."""
    side = image.shape[0]
    crop = int(np.ceil(side / zoom))
    top = (side - crop) // 2
    zoomed = scipy_zoom(image[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - side) // 2
    return zoomed[trim:trim + side, trim:trim + side]


def numpy_zoom_blur(image: np.ndarray, factors: tuple[float, ...]) -> np.ndarray:
    x = (image / 255.0).astype(np.float32)
    out = np.zeros_like(x)
    for z in factors:
        out += numpy_clipped_zoom(x, z)
    return np.uint8(np.clip((x + out) / (len(factors) + 1), 0, 1) * 255)


# ---- glass_blur ------------------------------------------------------------------------------------

def test_the_references_tuple_swap_is_a_copy():
    """Why glass blur copies: NumPy evaluates the right side as views, so the second write is a no-op."""
    a = np.array([[0, 1, 2], [3, 4, 5]])
    a[0], a[1] = a[1], a[0]
    assert a.tolist() == [[3, 4, 5], [3, 4, 5]]


@pytest.mark.parametrize("delta", [1, 2, 3, 4])
def test_local_shuffle_reproduces_the_sequential_loop(delta):
    rng = np.random.default_rng(delta)
    side, iterations, batch = 14, 2, 3
    images = rng.integers(0, 256, (batch, side, side, 3), dtype=np.uint8)
    n = side - 2 * delta
    draws = rng.integers(-delta, delta, (batch, iterations, n, n, 2))
    expected = images.copy()
    for b in range(batch):
        x = expected[b]
        for it in range(iterations):
            for i, h in enumerate(range(side - delta, delta, -1)):
                for j, w in enumerate(range(side - delta, delta, -1)):
                    dx, dy = draws[b, it, i, j]
                    x[h, w] = x[h + dy, w + dx]
    shuffled = to_hwc(local_shuffle(to_torch(images), torch.from_numpy(draws), delta))
    assert np.array_equal(shuffled, expected)
    if delta >= 2:  # copying every source from the pass's input instead is a different result
        simultaneous = images.copy()
        for b in range(batch):
            for it in range(iterations):
                start = simultaneous[b].copy()
                for i, h in enumerate(range(side - delta, delta, -1)):
                    for j, w in enumerate(range(side - delta, delta, -1)):
                        dx, dy = draws[b, it, i, j]
                        simultaneous[b, h, w] = start[h + dy, w + dx]
        assert not np.array_equal(simultaneous, expected)


@pytest.mark.parametrize("scale, batch, severities", [("cifar", 3, SEVERITIES), ("tiny", 2, SEVERITIES),
                                                      ("imagenet", 1, (3, 5))])
def test_glass_blur_matches_the_reference_loop_byte_for_byte(scale, batch, severities):
    size = SCALE_SIZE[scale]
    images = random_images(batch, size, seed=1)
    rng = np.random.default_rng(2)
    for severity in severities:
        sigma, delta, iterations = severity_parameters("glass_blur", scale)[severity - 1]
        n = size - 2 * delta
        draws = rng.integers(-delta, delta, (batch, iterations, n, n, 2))
        expected = np.stack([numpy_glass_blur(images[b].copy(), sigma, delta, iterations, draws[b])
                             for b in range(batch)])
        got = get_corruption("glass_blur")(to_torch(images), severity, scale=scale, draws=torch.from_numpy(draws))
        assert np.array_equal(to_hwc(got), expected), (scale, severity)


def test_glass_blur_cifar_severity_1_only_shuffles():
    """σ = 0.05 gives a Gaussian radius of 0 (spec A.5): both blurs are identities, every output pixel
    is an input pixel from itself, above, the left, or above-left."""
    images = to_torch(random_images(2, 32, seed=3))
    draws = torch.zeros(2, 1, 30, 30, 2, dtype=torch.int64)
    assert torch.equal(get_corruption("glass_blur")(images, 1, scale="cifar", draws=draws), images)
    draws[..., 1] = -1  # dy = −1 everywhere: rows 2..31 take the row above
    shifted = get_corruption("glass_blur")(images, 1, scale="cifar", draws=draws)
    assert torch.equal(shifted[:, :, 2:, 2:], images[:, :, 1:-1, 2:])
    assert torch.equal(shifted[:, :, :2], images[:, :, :2]) and torch.equal(shifted[:, :, :, :2], images[:, :, :, :2])


def test_glass_blur_draws_follow_numpys_randint_range():
    offsets = shuffle_offsets(torch.zeros(64, 3, 32, 32, dtype=torch.uint8), seeded(0), max_delta=1, iterations=2)
    assert offsets.shape == (64, 2, 30, 30, 2) and set(offsets.unique().tolist()) == {-1, 0}
    for delta in (2, 3, 4):   # 2d a power of two: cut from random words; d = 3: one draw per value
        offsets = shuffle_offsets(torch.zeros(8, 3, 224, 224, dtype=torch.uint8), seeded(delta), delta, 1)
        values, counts = offsets.unique(return_counts=True)
        assert values.tolist() == list(range(-delta, delta))   # randint(−d, d) excludes +d
        assert float(counts.max() - counts.min()) / float(counts.float().mean()) < 0.03
        dx, dy = offsets[..., 0].double(), offsets[..., 1].double()
        assert abs(float(((dx - dx.mean()) * (dy - dy.mean())).mean() / (dx.std() * dy.std()))) < 0.01


def test_glass_blur_rejects_malformed_draws():
    images = to_torch(random_images(1, 32, seed=0))
    with pytest.raises(ValueError, match="B×iterations×n×n×2"):
        get_corruption("glass_blur")(images, 4, scale="cifar", draws=torch.zeros(1, 1, 30, 30, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[-1, 0\]"):
        get_corruption("glass_blur")(images, 1, scale="cifar", draws=torch.ones(1, 1, 30, 30, 2, dtype=torch.int64))


# ---- motion_blur -----------------------------------------------------------------------------------

def test_kernel_widths_are_two_ceil_r_plus_one():
    widths = {r: kernel_width(r) for r in (6, 8, 9, 10, 12, 14, 15, 20)}
    assert widths == {6: 13, 8: 17, 9: 19, 10: 21, 12: 25, 14: 29, 15: 31, 20: 41}
    assert kernel_width(6.2) == 15


def test_kernel_weights_are_a_normalised_one_sided_gaussian():
    weights, dy, dx = motion_blur_kernel(6, 2.0, 0.0)
    assert weights.dtype == torch.float64 and weights.shape == (13,)
    assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-15)
    assert torch.allclose(weights / weights[0], torch.exp(-torch.arange(13.0, dtype=torch.float64) ** 2 / 8))
    assert dy.tolist() == [0] * 13 and dx.tolist() == list(range(13))      # θ = 0: along +x


@pytest.mark.parametrize("angle, dy, dx", [
    (90, list(range(13)), [0] * 13),                 # down the rows
    (-90, [-i for i in range(13)], [0] * 13),
    (180, [0] * 13, [-i for i in range(13)]),
    (45, [0, 1, 1, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8], [0, 1, 1, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8]),   # ceil(0.7071·i − 0.5)
    (-45, [0, -1, -1, -2, -3, -4, -4, -5, -6, -6, -7, -8, -8], [0, 1, 1, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8]),
])
def test_kernel_offsets_at_hand_checkable_angles(angle, dy, dx):
    _, got_dy, got_dx = motion_blur_kernel(6, 1.0, angle)
    assert got_dy.tolist() == dy and got_dx.tolist() == dx


def test_kernel_offsets_follow_imagemagicks_rounding_chain():
    """dy_i = ceil(i·(w·sin θ)/hypot − 0.5) in IM's order, not ceil(i·sin θ − 0.5): at −150°, sin θ is
    −0.49999999999999994; for w = 21, 21·sin θ/21 = −0.4999999999999999 so dy_1 = ceil(−0.9999…) = 0,
    while for w = 13 the quotient rounds to −0.49999999999999994 and dy_1 = ceil(−1.0) = −1."""
    assert motion_blur_kernel(10, 2.0, -150.0)[1].tolist()[:4] == [0, 0, -1, -1]
    assert motion_blur_kernel(6, 2.0, -150.0)[1].tolist()[:4] == [0, -1, -1, -1]
    for angle in np.random.default_rng(0).uniform(-180, 180, 50):   # generic angles: G8's short rule
        _, dy, dx = motion_blur_kernel(9, 2.5, float(angle))
        theta = math.radians(angle)
        assert dx.tolist() == [math.ceil(i * math.cos(theta) - 0.5) for i in range(19)]
        assert dy.tolist() == [math.ceil(i * math.sin(theta) - 0.5) for i in range(19)]


@pytest.mark.parametrize("scale", SCALES)
def test_motion_blur_matches_numpy_g8_exactly(scale):
    size = SCALE_SIZE[scale]
    batch = {"cifar": 4, "tiny": 2, "imagenet": 1}[scale]
    images = random_images(batch, size, seed=4)
    rng = np.random.default_rng(5)
    for severity in SEVERITIES:
        radius, sigma = MOTION_BLUR_RADIUS_SIGMA[scale][severity - 1]
        angles = rng.uniform(-45, 45, batch)
        expected = np.stack([numpy_motion_blur(images[b], radius, sigma, angles[b]) for b in range(batch)])
        got = get_corruption("motion_blur")(to_torch(images), severity, scale=scale, draws=torch.from_numpy(angles))
        assert np.array_equal(to_hwc(got), expected), (scale, severity)


def test_motion_blur_takes_any_channel_count_and_angle():
    rng = np.random.default_rng(6)
    layer = rng.integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    angles = np.array([-150.0, -100.0, 170.0])
    got = motion_blur(to_torch(layer), 10, 4, torch.from_numpy(angles))
    assert got.shape == (3, 1, 32, 32) and got.dtype == torch.uint8
    assert np.array_equal(to_hwc(got)[1:], np.stack([numpy_motion_blur(layer[b], 10, 4, angles[b]) for b in (1, 2)]))


def test_motion_blur_keeps_flat_images_exact():
    """IM's truncating write on q = round(257·e): a flat image stays itself, where floor(e) would lose a
    level on the pixels whose weighted sum lands at v − 1e-16."""
    for value in (0, 1, 37, 128, 200, 254, 255):
        flat = torch.full((4, 3, 32, 32), value, dtype=torch.uint8)
        out = motion_blur(flat, 9, 2.5, torch.tensor([-45.0, -7.3, 12.0, 44.9]))
        assert torch.equal(out, flat)


def test_motion_blur_differs_from_imagecorruptions_only_by_ims_rounding():
    """imagecorruptions' NumPy motion blur uses the same kernel and offsets but returns the float sum e,
    truncated by the caller. IM stores round(257·e) and truncates that to 8 bits, so our byte is floor(e)
    or, where e lies within 0.5/257 below an integer, that integer (flat areas are full of such sums)."""
    icc = pytest.importorskip("imagecorruptions.corruptions")
    images = random_images(2, 224, seed=7)
    rng = np.random.default_rng(8)
    for severity in (1, 5):
        radius, sigma = MOTION_BLUR_RADIUS_SIGMA["imagenet"][severity - 1]
        angles = rng.uniform(-45, 45, 2)
        ours = to_hwc(motion_blur(to_torch(images), radius, sigma, torch.from_numpy(angles))).astype(np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sums = np.stack([icc._motion_blur(images[b], radius, sigma, angles[b]) for b in range(2)])
        sums = sums.astype(np.float64)
        raised = ours - np.floor(sums)
        assert set(np.unique(raised).tolist()) == {0, 1}
        assert (ours[raised == 1] - sums[raised == 1]).max() < 0.5 / 257 + 1e-4   # float32 slack of theirs
        assert (raised == 1).mean() < 0.1


def test_motion_blur_rejects_bad_arguments():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match="angles must be a float tensor"):
        motion_blur(images, 6, 1, torch.zeros(3))
    with pytest.raises(ValueError, match="uint8"):
        motion_blur(images.float(), 6, 1, torch.zeros(2))
    with pytest.raises(ValueError, match="radius must be positive"):
        motion_blur(images, 0, 1, torch.zeros(2))
    with pytest.raises(ValueError, match=r"angles must be a float tensor \[B\]"):
        get_corruption("motion_blur")(images, 1, scale="cifar", draws=torch.zeros(2, 1))


# ---- zoom_blur and clipped_zoom -------------------------------------------------------------------

def test_zoom_factor_lists_are_numpys_aranges():
    assert [len(zoom_factors("cifar", s)) for s in SEVERITIES] == [7, 12, 16, 21, 26]
    assert [len(zoom_factors("tiny", s)) for s in SEVERITIES] == [7, 12, 16, 21, 26]
    assert [len(zoom_factors("imagenet", s)) for s in SEVERITIES] == [12, 16, 11, 13, 11]
    assert zoom_factors("cifar", 1)[-1] == pytest.approx(1.06) and zoom_factors("cifar", 2)[-1] == pytest.approx(1.11)
    assert zoom_factors("cifar", 5)[-1] == 1.2500000000000002   # overshoot kept (it makes n = 33 at 32 px)
    assert zoom_factors("imagenet", 5)[:3] == (1.0, 1.03, 1.06)


@pytest.mark.parametrize("zoom, crop, top, zoomed, trim", [
    (1.0, 32, 0, 32, 0), (1.01, 32, 0, 32, 0), (1.03, 32, 0, 33, 0), (1.04, 31, 0, 32, 0), (1.07, 30, 1, 32, 0),
    (1.13, 29, 1, 33, 0), (1.24, 26, 3, 32, 0), (1.2500000000000002, 26, 3, 33, 0),
    (1.25, 26, 3, 32, 0),    # 32.5 rounds half to even
    (1.75, 19, 6, 33, 0), (2.25, 15, 8, 34, 1),
])
def test_clipped_zoom_geometry_at_32_px(zoom, crop, top, zoomed, trim):
    geometry = zoom_geometry(32, zoom)
    assert (geometry.crop, geometry.top, geometry.zoomed, geometry.trim) == (crop, top, zoomed, trim)


def test_clipped_zoom_geometry_at_224_px():
    assert tuple(zoom_geometry(224, 3.0))[:4] == (75, 74, 225, 0)
    assert tuple(zoom_geometry(224, 4.5))[:4] == (50, 87, 225, 0)


@pytest.mark.parametrize("size, zoom", [(32, 1.03), (32, 1.25), (32, 1.75), (32, 2.25), (64, 1.75),
                                        (224, 2.5), (32, 1.0), (32, 1.01)])
def test_clipped_zoom_matches_scipy(size, zoom):
    rng = np.random.default_rng(9)
    x64 = rng.random((2, size, size, 3))
    got = to_hwc(clipped_zoom(to_torch(x64), zoom))
    expected = np.stack([numpy_clipped_zoom(image, zoom) for image in x64])
    assert got.dtype == np.float64 and np.abs(got - expected).max() < 1e-13
    x32 = x64.astype(np.float32)
    got32 = to_hwc(clipped_zoom(to_torch(x32), zoom))
    expected32 = np.stack([numpy_clipped_zoom(image, zoom) for image in x32])
    assert got32.dtype == np.float32 and (got32 != expected32).mean() < 1e-3
    assert np.abs(got32 - expected32).max() <= 6e-8


def test_clipped_zoom_identity_and_scipys_edge_zero():
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    same = clipped_zoom(x, 1.0)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()
    # S = 26, z = 1.75: ch = 15, n = 26, and 25·(14/25) lands past index 14 by rounding; scipy's
    # 'constant' mode then writes 0 in the last row and column.
    assert zoom_geometry(26, 1.75) == (15, 5, 26, 0, True)
    ones = torch.ones(1, 1, 26, 26, dtype=torch.float64)
    zoomed = clipped_zoom(ones, 1.75)
    expected = numpy_clipped_zoom(np.ones((26, 26, 1)), 1.75)[..., 0]
    assert np.array_equal(zoomed[0, 0].numpy(), expected) and zoomed[0, 0, -1].sum() == 0


@pytest.mark.parametrize("scale, batch, severities", [("cifar", 4, SEVERITIES), ("tiny", 2, SEVERITIES),
                                                      ("imagenet", 1, (1, 5))])
def test_zoom_blur_matches_the_scipy_reference_byte_for_byte(scale, batch, severities):
    images = random_images(batch, SCALE_SIZE[scale], seed=10)
    for severity in severities:
        expected = np.stack([numpy_zoom_blur(image, zoom_factors(scale, severity)) for image in images])
        got = to_hwc(get_corruption("zoom_blur")(to_torch(images), severity, scale=scale))
        assert np.array_equal(got, expected), (scale, severity)


def test_zoom_blur_equals_imagecorruptions_at_224_px():
    """imagecorruptions crops [:S, :S] instead of trimming; at 224 px every trim is 0, so the bytes agree."""
    icc = pytest.importorskip("imagecorruptions.corruptions")
    images = random_images(1, 224, seed=11)
    for severity in (2, 4):
        theirs = np.uint8(icc.zoom_blur(images[0], severity))
        assert np.array_equal(to_hwc(corrupt(to_torch(images), "zoom_blur", severity))[0], theirs)


def test_clipped_zoom_rejects_bad_arguments():
    with pytest.raises(ValueError, match="float tensor"):
        clipped_zoom(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), 2.0)
    with pytest.raises(ValueError, match="≥ 1"):
        clipped_zoom(torch.zeros(1, 3, 32, 32), 0.5)


# ---- invariants of all three, every severity and scale ---------------------------------------------

def smooth_images(scale: str, batch: int = 2) -> torch.Tensor:
    size = SCALE_SIZE[scale]
    return to_torch(random_images(batch + 1, size, seed=12)[1:batch + 1])


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", ["glass_blur", "motion_blur", "zoom_blur"])
def test_invariants_at_every_severity(name, scale):
    corruption = get_corruption(name)
    images = smooth_images(scale)
    pair = torch.cat([images[:1], images[:1]])
    kept = images.clone()
    for severity in SEVERITIES:
        out = corruption(images, severity, scale=scale, generator=seeded(severity))
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
        assert torch.equal(images, kept)                       # the input is untouched
        assert not torch.equal(out, images)
        again = corruption(images, severity, scale=scale, generator=seeded(severity))
        assert torch.equal(out, again)                         # same seed, same bytes
        twins = corruption(pair, severity, scale=scale, generator=seeded(severity))
        if corruption.stochastic:                              # each image draws its own randomness
            assert not torch.equal(twins[0], twins[1])
            other = corruption(images, severity, scale=scale, generator=seeded(severity + 100))
            assert not torch.equal(out, other)
        else:
            assert torch.equal(twins[0], twins[1])


def test_generated_draws_are_the_documented_injectable_ones():
    images = smooth_images("cifar", batch=3)
    glass = get_corruption("glass_blur")
    offsets = shuffle_offsets(images, seeded(3), max_delta=1, iterations=2)
    assert torch.equal(glass(images, 5, scale="cifar", generator=seeded(3)),
                       glass(images, 5, scale="cifar", draws=offsets))
    angles = motion_blur_angles(images, seeded(4), -45.0, 45.0)
    assert angles.dtype == torch.float64 and bool(((angles >= -45) & (angles < 45)).all())
    assert torch.equal(get_corruption("motion_blur")(images, 2, scale="cifar", generator=seeded(4)),
                       motion_blur(images, 6, 1.5, angles))


def test_results_do_not_depend_on_the_batch_size():
    """The CPU path works in chunks of images; a big batch gives each image the bytes it gets alone."""
    images = to_torch(random_images(200, 32, seed=13))
    angles = torch.from_numpy(np.random.default_rng(14).uniform(-45, 45, 200))
    whole = motion_blur(images, 9, 2.5, angles)
    assert torch.equal(whole[150:], motion_blur(images[150:], 9, 2.5, angles[150:]))
    zoomed = corrupt(images, "zoom_blur", 3)
    assert torch.equal(zoomed[100:101], corrupt(images[100:101], "zoom_blur", 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["glass_blur", "motion_blur", "zoom_blur"])
def test_cuda_matches_the_cpu(name):
    images = smooth_images("cifar", batch=3)
    corruption = get_corruption(name)
    for severity in SEVERITIES:
        if corruption.stochastic:  # same injected draws on both devices
            if name == "glass_blur":
                sigma, delta, iterations = GLASS_BLUR_SIGMA_DELTA_ITERATIONS["cifar"][severity - 1]
                draws = shuffle_offsets(images, seeded(0), delta, iterations)
            else:
                draws = motion_blur_angles(images, seeded(0), -45.0, 45.0)
            cpu = corruption(images, severity, scale="cifar", draws=draws)
            gpu = corruption(images.cuda(), severity, scale="cifar", draws=draws.cuda())
        else:
            cpu = corruption(images, severity, scale="cifar")
            gpu = corruption(images.cuda(), severity, scale="cifar")
        assert gpu.device.type == "cuda"
        assert (gpu.cpu().int() - cpu.int()).abs().max() <= 1 and (gpu.cpu() != cpu).float().mean() < 1e-3
