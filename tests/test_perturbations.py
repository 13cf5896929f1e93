"""-P perturbation sequences (spec B.2): frame counts, frame-0 rules, byte-exactness against Pillow, NumPy,
scikit-image and integer ports of the reference libraries, injected draws, seeds."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian

from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError
from corrbench.perturbations import (P_PERTURBATIONS, P_TEST_PERTURBATIONS, P_VALIDATION_PERTURBATIONS,
                                     PERTURBATIONS, generate_sequences, get_perturbation, list_perturbations)
from corrbench.perturbations.blur import gaussian_blur_sigma, motion_blur_angle, zoom_coefficients
from corrbench.perturbations.brightness import brightness_shift
from corrbench.perturbations.geometric import (rotate_coefficients, scale_coefficients, shear_coefficients,
                                               torchvision02_inverse_affine)
from corrbench.perturbations.tilt import opencv_invert3, tilt_degrees, tilt_matrix

# B.2's table: frames per sequence.
FRAMES = {"gaussian_noise": 31, "shot_noise": 31, "speckle_noise": 31, "motion_blur": 21, "zoom_blur": 31,
          "snow": 31, "brightness": 31, "translate": 16, "rotate": 31, "tilt": 31, "scale": 31,
          "gaussian_blur": 31, "spatter": 31, "shear": 31}


@pytest.fixture(scope="module")
def hwc() -> np.ndarray:
    """Four random 32×32 RGB images, HWC uint8 (the reference's layout), plus a flat grey and a white one."""
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    images[4] = 128
    images[5] = 255
    return images


@pytest.fixture(scope="module")
def images(hwc) -> torch.Tensor:
    return torch.from_numpy(hwc).permute(0, 3, 1, 2).contiguous()


def frames_hwc(videos: torch.Tensor) -> np.ndarray:
    return videos.permute(0, 1, 3, 4, 2).numpy()


def to_draws(per_frame_hwc: np.ndarray) -> torch.Tensor:
    """Reference-layout draws (B, 30, 32, 32, 3) as the generators' B×30×3×32×32."""
    return torch.from_numpy(np.ascontiguousarray(per_frame_hwc.transpose(0, 1, 4, 2, 3)))


def pillow_affine(image: np.ndarray, coefficients, resample) -> np.ndarray:
    return np.asarray(Image.fromarray(image).transform((32, 32), Image.AFFINE, coefficients, resample))


def test_registry_names_frame_counts_and_schedules():
    assert set(PERTURBATIONS.names()) == set(P_PERTURBATIONS) == set(FRAMES)
    assert list_perturbations("test") == list(P_TEST_PERTURBATIONS)
    assert list_perturbations("validation") == list(P_VALIDATION_PERTURBATIONS)
    for name, frames in FRAMES.items():
        assert get_perturbation(name).frames == frames, name
    assert [motion_blur_angle(t) for t in (0, 1, 20)] == [-180, -171, 0]
    assert [tilt_degrees(t) for t in (0, 15, 30)] == [-11.25, 0.0, 11.25]
    assert gaussian_blur_sigma(0) == 0.3 and gaussian_blur_sigma(30) == pytest.approx(0.75)
    assert brightness_shift(0) == pytest.approx(-0.225) and brightness_shift(15) == 0.0
    assert brightness_shift(30) == pytest.approx(0.225)
    with pytest.raises(UnknownNameError, match="Did you mean 'rotate'"):
        get_perturbation("rotat")


def test_every_sequence_has_its_shape_and_frame_zero_rule(images):
    generator = torch.Generator().manual_seed(0)
    for name in list_perturbations():
        videos = generate_sequences(images[:2], name, generator)
        assert videos.dtype == torch.uint8 and tuple(videos.shape) == (2, FRAMES[name], 3, 32, 32), name
        clean_first = name in ("gaussian_noise", "shot_noise", "speckle_noise", "zoom_blur")
        assert get_perturbation(name).clean_first == clean_first
        if clean_first:
            assert torch.equal(videos[:, 0], images[:2]), name
        # only the first frame is clean: every sequence changes the image somewhere
        assert not torch.equal(videos[:, 1], images[:2]), name


@pytest.mark.parametrize("name, identity_frame", [("translate", 7), ("rotate", 15), ("scale", 15), ("shear", 15)])
def test_geometric_sequences_pass_through_the_clean_image(images, name, identity_frame):
    videos = generate_sequences(images, name)
    assert torch.equal(videos[:, identity_frame], images)


def test_translate_matches_pillow_nearest_and_the_shift_rule(hwc, images):
    videos = frames_hwc(generate_sequences(images, "translate"))
    for t in range(16):
        shift = t - 7
        expected = np.zeros_like(hwc)
        columns = np.arange(32)
        valid = (columns - shift >= 0) & (columns - shift < 32)
        expected[:, :, valid] = hwc[:, :, (columns - shift)[valid]]
        assert np.array_equal(videos[:, t], expected), t
        coefficients = torchvision02_inverse_affine(translate=(shift, 0))
        for b in range(len(hwc)):
            assert np.array_equal(videos[b, t], pillow_affine(hwc[b], coefficients, Image.NEAREST)), (t, b)


@pytest.mark.parametrize("name, coefficients", [("rotate", rotate_coefficients), ("scale", scale_coefficients),
                                                ("shear", shear_coefficients)])
def test_affine_sequences_are_pillow_bilinear_bytes(hwc, images, name, coefficients):
    videos = frames_hwc(generate_sequences(images, name))
    for t in range(31):
        for b in range(len(hwc)):
            expected = pillow_affine(hwc[b], coefficients(t), Image.BILINEAR)
            assert np.array_equal(videos[b, t], expected), (name, t, b)


def test_torchvision02_matrices():
    """Inverse linear parts from spec §0.6 / B.2, and the centre (16.5, 16.5) stays fixed."""
    def linear(c):
        return np.array([[c[0], c[1]], [c[3], c[4]]])

    def fixed_point(c):
        return (c[0] * 16.5 + c[1] * 16.5 + c[2], c[3] * 16.5 + c[4] * 16.5 + c[5])

    a = math.radians(10)
    rotation = torchvision02_inverse_affine(angle=10)
    assert linear(rotation) == pytest.approx(np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]))
    s = math.radians(12)
    assert linear(torchvision02_inverse_affine(shear=12)) == pytest.approx(np.array([[1, math.tan(s)],
                                                                                     [0, 1 / math.cos(s)]]))
    assert linear(torchvision02_inverse_affine(scale=1.25)) == pytest.approx(np.eye(2) / 1.25)
    for c in (rotation, torchvision02_inverse_affine(scale=0.7), torchvision02_inverse_affine(shear=-15)):
        assert fixed_point(c) == pytest.approx((16.5, 16.5))
    assert torchvision02_inverse_affine(translate=(3, 0)) == (1.0, 0.0, -3.0, -0.0, 1.0, 0.0)


def test_zoom_blur_is_the_float32_running_mean_of_pillow_zooms(hwc, images):
    videos = frames_hwc(generate_sequences(images, "zoom_blur"))
    for b in range(len(hwc)):
        running = hwc[b].astype(np.float32) / 255
        for t in range(1, 31):
            running += pillow_affine(hwc[b], zoom_coefficients(t), Image.BILINEAR).astype(np.float32) / 255
            assert np.array_equal(videos[b, t], (running / (t + 1) * 255).astype(np.uint8)), (b, t)


def opencv4_warp_perspective_port(image: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """NumPy port of spec B.2's OpenCV 4.x integer warpPerspective (INTER_LINEAR, constant 0)."""
    m = inverse.ravel()
    out = np.zeros_like(image)
    padded = np.zeros((34 + 64, 34 + 64, 3), dtype=np.int64)   # zeros far around the image
    padded[32:64, 32:64] = image
    for y in range(32):
        for x in range(32):
            w = 32 / ((m[7] * y + m[8]) + m[6] * x)
            fixed_x = int(np.rint(((m[1] * y + m[2]) + m[0] * x) * w))
            fixed_y = int(np.rint(((m[4] * y + m[5]) + m[3] * x) * w))
            sx, sy, fx, fy = fixed_x >> 5, fixed_y >> 5, fixed_x & 31, fixed_y & 31
            weights = np.array([[(32 - fx) * (32 - fy), fx * (32 - fy)], [(32 - fx) * fy, fx * fy]]) * 32
            assert weights.sum() == 1 << 15
            block = padded[sy + 32:sy + 34, sx + 32:sx + 34]
            out[y, x] = ((block * weights[..., None]).sum((0, 1)) + (1 << 14)) >> 15
    return out


def test_tilt_is_the_opencv4_integer_warp(hwc, images):
    import cv2

    videos = frames_hwc(generate_sequences(images[:3], "tilt"))
    differences = []
    for t in (0, 4, 15, 22, 30):
        matrix = tilt_matrix(tilt_degrees(t))
        inverse = cv2.invert(matrix)[1]
        assert np.array_equal(np.array(opencv_invert3(matrix)).reshape(3, 3), inverse)  # OpenCV's own 3×3 inverse
        for b in range(3):
            assert np.array_equal(videos[b, t], opencv4_warp_perspective_port(hwc[b], inverse)), (t, b)
            # OpenCV 5.0 samples at float coordinates: close to, not equal to, the 4.x bytes (spec §0.6)
            opencv5 = cv2.warpPerspective(hwc[b], matrix, (32, 32))
            differences.append(np.abs(opencv5.astype(int) - videos[b, t]))
    differences = np.stack(differences)
    assert differences.max() <= 7 and differences.mean() < 1.5


def test_brightness_is_the_a11_transform_at_each_shift(hwc, images):
    videos = frames_hwc(generate_sequences(images, "brightness"))
    for t in range(31):
        for b in range(len(hwc)):
            hsv = rgb2hsv(hwc[b] / 255.0)
            hsv[:, :, 2] = np.clip(hsv[:, :, 2] + (t - 15) * 1.5 / 100.0, 0, 1)
            assert np.array_equal(videos[b, t], np.uint8(hsv2rgb(hsv) * 255)), (t, b)


def test_gaussian_blur_is_scikit_image_with_truncate_7(hwc, images):
    videos = frames_hwc(generate_sequences(images, "gaussian_blur"))
    for t in (0, 7, 19, 30):
        for b in range(len(hwc)):
            expected = np.uint8(255 * gaussian(hwc[b] / 255.0, sigma=0.3 + 0.015 * t, channel_axis=-1,
                                               truncate=7.0, mode="nearest"))
            assert np.array_equal(videos[b, t], expected), (t, b)


@pytest.mark.parametrize("difficulty", [1, 3])
def test_noise_sequences_with_injected_draws(hwc, images, difficulty):
    rng = np.random.default_rng(difficulty)
    shape = (len(hwc), 30, 32, 32, 3)                  # the reference's per-frame (32, 32, 3) arrays
    eps = rng.standard_normal(shape).astype(np.float32)
    counts = rng.poisson(np.repeat(hwc[:, None] / 255.0 * 700, 30, axis=1)).astype(np.float64)
    z = rng.standard_normal(shape)
    sigma, rate, speckle = (0.02, 0.04, 0.06)[difficulty - 1], (700, 400, 200)[difficulty - 1], \
        (0.05, 0.07, 0.10)[difficulty - 1]
    gaussian_videos = frames_hwc(generate_sequences(images, "gaussian_noise", difficulty=difficulty,
                                                    draws=to_draws(eps)))
    shot_videos = frames_hwc(generate_sequences(images, "shot_noise", difficulty=difficulty, draws=to_draws(counts)))
    speckle_videos = frames_hwc(generate_sequences(images, "speckle_noise", difficulty=difficulty,
                                                   draws=to_draws(z)))
    x32 = hwc.astype(np.float32) / 255
    x = hwc / 255.0
    for t in range(1, 31):
        expected = (np.clip(x32 + sigma * eps[:, t - 1], 0, 1) * 255).astype(np.uint8)
        assert np.array_equal(gaussian_videos[:, t], expected), t
        assert np.array_equal(shot_videos[:, t], np.uint8(255 * np.clip(counts[:, t - 1] / rate, 0, 1))), t
        expected = np.uint8(255 * np.clip(x + x * (speckle * z[:, t - 1]), 0, 1))
        assert np.array_equal(speckle_videos[:, t], expected), t
    for videos in (gaussian_videos, shot_videos, speckle_videos):
        assert np.array_equal(videos[:, 0], hwc)


def test_seeds_reproduce_bytes_and_images_draw_independently(images):
    for name in ("gaussian_noise", "shot_noise", "speckle_noise"):
        first = generate_sequences(images, name, torch.Generator().manual_seed(5))
        again = generate_sequences(images, name, torch.Generator().manual_seed(5))
        other = generate_sequences(images, name, torch.Generator().manual_seed(6))
        assert torch.equal(first, again) and not torch.equal(first, other)
    # two copies of the same image get different noise
    twins = images[:1].repeat(2, 1, 1, 1)
    videos = generate_sequences(twins, "gaussian_noise", torch.Generator().manual_seed(0))
    assert not torch.equal(videos[0, 1:], videos[1, 1:])


def test_spatter_layer_and_drip_follow_the_reference(hwc, images):
    from corrbench.corruptions.spatter import spatter_water
    from corrbench.perturbations.weather import drip, spatter_liquid

    z = np.random.default_rng(3).standard_normal((len(hwc), 32, 32))
    liquid = spatter_liquid(torch.from_numpy(z))
    for b in range(len(hwc)):
        expected = gaussian(0.6 + 0.265 * z[b], sigma=1.75, mode="nearest")
        expected[expected < 0.7] = 0
        assert np.array_equal(liquid[b].numpy(), expected)
    dripped = drip(liquid).numpy()
    for b in range(len(hwc)):
        reference = np.apply_along_axis(lambda column: np.convolve(column, np.array([0.2, 0.8]), mode="same"),
                                        axis=0, arr=liquid[b].numpy())
        assert np.array_equal(dripped[b], reference)
    videos = generate_sequences(images, "spatter", draws=torch.from_numpy(z))
    layer = liquid
    for t in range(31):
        assert torch.equal(videos[:, t], spatter_water(images, layer, 0.6)), t
        layer = drip(layer)


def test_snow_composite_follows_the_reference():
    """The frame-independent part and the compositing of a blurred layer (spec B.2 snow)."""
    from corrbench.perturbations.weather import snow_base, snow_frame

    rng = np.random.default_rng(4)
    hwc = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    streaks = rng.integers(0, 256, size=(3, 32, 32), dtype=np.uint8)
    images = torch.from_numpy(hwc).permute(0, 3, 1, 2)
    frames = frames_hwc(snow_frame(snow_base(images), torch.from_numpy(streaks)[:, None]).unsqueeze(1))[:, 0]
    x = hwc / 255.0
    x32 = x.astype(np.float32)
    gray = (x32[..., 0] * np.float32(0.299) + x32[..., 1] * np.float32(0.587)) + x32[..., 2] * np.float32(0.114)
    base = 0.85 * x + (1 - 0.85) * np.maximum(x, (gray * np.float32(1.5) + np.float32(0.5))[..., None])
    light = (streaks / 255.0)[..., None]
    expected = np.uint8(np.clip(base + light + np.rot90(light, k=2, axes=(1, 2)), 0, 1) * 255)
    assert np.array_equal(frames, expected)


def test_motion_blur_sweeps_the_angle_with_no_clean_frame(images):
    from corrbench.corruptions.motion import motion_blur

    videos = generate_sequences(images, "motion_blur")
    for t in (0, 9, 20):
        angles = torch.full((len(images),), float(motion_blur_angle(t)), dtype=torch.float64)
        assert torch.equal(videos[:, t], motion_blur(images, 6.0, 1.8, angles)), t
    assert not torch.equal(videos[:, 0], images)


def test_snow_layer_and_frames_follow_the_reference(images):
    from scipy.ndimage import zoom

    from corrbench.corruptions.motion import motion_blur
    from corrbench.perturbations.weather import snow_base, snow_frame, snow_layer

    z = np.random.default_rng(5).standard_normal((len(images), 32, 32))
    layer = snow_layer(torch.from_numpy(z))
    for b in range(len(images)):
        # clipped_zoom(·, 2) at 32 px: crop side 16 at offset 8, scipy zoom ×2 (order 1) to 32, no trim (spec B.2)
        zoomed = zoom((0.05 + 0.3 * z[b])[8:24, 8:24, None], (2, 2, 1), order=1)[..., 0]
        zoomed[zoomed < 0.5] = 0
        assert np.array_equal(layer[b, 0].numpy(), (np.clip(zoomed, 0, 1) * 255).astype(np.uint8))
    videos = generate_sequences(images, "snow", draws=torch.from_numpy(z))
    base = snow_base(images)
    for t in (0, 12, 30):
        angles = torch.full((len(images),), float(4 * t - 150), dtype=torch.float64)
        assert torch.equal(videos[:, t], snow_frame(base, motion_blur(layer, 10.0, 2.0, angles))), t


def test_bad_input_is_a_clear_error(images):
    with pytest.raises(LayoutError, match="32×32"):
        generate_sequences(torch.zeros(1, 3, 28, 28, dtype=torch.uint8), "rotate")
    with pytest.raises(LayoutError, match="uint8"):
        generate_sequences(images.float(), "rotate")
    with pytest.raises(InvalidValueError, match="noise difficulty"):
        generate_sequences(images, "gaussian_noise", torch.Generator(), difficulty=4)
    with pytest.raises(ValueError, match="stochastic"):
        generate_sequences(images, "shot_noise")
    with pytest.raises(ValueError, match="shape"):
        generate_sequences(images, "gaussian_noise", draws=torch.zeros(1, 30, 3, 32, 32))
    assert generate_sequences(images[:0], "tilt").shape == (0, 31, 3, 32, 32)
