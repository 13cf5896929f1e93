"""Batched PIL-equivalent ops: every op equals Pillow's result byte for byte, per image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from corrbench.augment import ops, per_image
from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError


def _sample_images(count: int, side: int, seed: int) -> np.ndarray:
    """Noise, smooth ramps, a low-contrast and a constant image (N×S×S×3 uint8)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, side, side, 3), dtype=np.uint8)
    half = count // 2
    images[:half] = np.cumsum(rng.integers(0, 4, size=(half, side, side, 3)), axis=2).clip(0, 255)
    images[half] = images[half] // 5 + 90
    images[-1] = 37
    return images


IMAGES = _sample_images(6, 32, seed=0)
ODD = _sample_images(6, 17, seed=1)     # odd size: the rotation centre falls on a pixel centre


def _batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _assert_matches_pil(ours: torch.Tensor, images: np.ndarray, pil_op) -> None:
    for i, image in enumerate(images):
        expected = np.asarray(pil_op(Image.fromarray(image), i))
        np.testing.assert_array_equal(ours[i].permute(1, 2, 0).numpy(), expected, err_msg=f"image {i}")


@pytest.mark.parametrize("name, pil_op", [
    ("autocontrast", ImageOps.autocontrast),
    ("equalize", ImageOps.equalize),
    ("invert", ImageOps.invert),
])
def test_plain_ops_match_pil(name, pil_op):
    _assert_matches_pil(ops.apply_op(name, _batch(IMAGES)), IMAGES, lambda image, i: pil_op(image))


def test_posterize_and_solarize_match_pil_with_per_image_magnitudes():
    bits = torch.tensor([1, 2, 3, 4, 7, 8])
    _assert_matches_pil(ops.posterize(_batch(IMAGES), bits), IMAGES,
                        lambda image, i: ImageOps.posterize(image, int(bits[i])))
    thresholds = torch.tensor([0.0, 1.5, 128.0, 246.5, 255.0, 256.0], dtype=torch.float64)
    _assert_matches_pil(ops.solarize(_batch(IMAGES), thresholds), IMAGES,
                        lambda image, i: ImageOps.solarize(image, float(thresholds[i])))


@pytest.mark.parametrize("name, enhancer", [
    ("color", ImageEnhance.Color), ("contrast", ImageEnhance.Contrast),
    ("brightness", ImageEnhance.Brightness), ("sharpness", ImageEnhance.Sharpness),
])
def test_enhancements_match_pil_including_extrapolation(name, enhancer):
    factors = torch.tensor([0.0, 0.1, 0.37, 1.0, 1.55, 1.99], dtype=torch.float64)
    _assert_matches_pil(ops.apply_op(name, _batch(IMAGES), factors), IMAGES,
                        lambda image, i: enhancer(image).enhance(float(factors[i])))


RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR}


@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
@pytest.mark.parametrize("images", [IMAGES, ODD], ids=["32px", "17px"])
def test_rotate_matches_pil(resample, images):
    degrees = torch.tensor([0.0, 4.5, -9.0, 90.0, 180.0, -103.7144], dtype=torch.float64)
    _assert_matches_pil(ops.rotate(_batch(images), degrees, resample), images,
                        lambda image, i: image.rotate(float(degrees[i]), resample=RESAMPLE[resample]))


@pytest.mark.parametrize("resample", ["nearest", "bilinear"])
def test_shear_and_translate_match_pil_transform(resample):
    shears = torch.tensor([0.0, 0.3, -0.3, 0.99, -0.7, 0.1234], dtype=torch.float64)
    shifts = torch.tensor([0.0, 3.0, -3.0, 10.0, -32.0, 14.0], dtype=torch.float64)
    batch = _batch(IMAGES)

    def transform(data):
        return lambda image, i: image.transform(image.size, Image.AFFINE, data(i), resample=RESAMPLE[resample])

    _assert_matches_pil(ops.shear_x(batch, shears, resample), IMAGES, transform(lambda i: (1, float(shears[i]), 0, 0, 1, 0)))
    _assert_matches_pil(ops.shear_y(batch, shears, resample), IMAGES, transform(lambda i: (1, 0, 0, float(shears[i]), 1, 0)))
    _assert_matches_pil(ops.translate_x(batch, shifts, resample), IMAGES, transform(lambda i: (1, 0, float(shifts[i]), 0, 1, 0)))
    _assert_matches_pil(ops.translate_y(batch, shifts, resample), IMAGES, transform(lambda i: (1, 0, 0, 0, 1, float(shifts[i]))))


def test_hand_computed_values():
    pixel = torch.tensor([0, 100, 127, 128, 200, 255], dtype=torch.uint8).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    # Blend truncates: 255·0.5 = 127.5 -> 127, 127·0.5 = 63.5 -> 63; factor 2 clips at 255.
    assert ops.brightness(pixel, 0.5)[0, 0, 0].tolist() == [0, 50, 63, 64, 100, 127]
    assert ops.brightness(pixel, 2.0)[0, 0, 0].tolist() == [0, 200, 254, 255, 255, 255]
    # Solarize at 128: values ≥ 128 are inverted.
    assert ops.solarize(pixel, 128)[0, 0, 0].tolist() == [0, 100, 127, 127, 55, 0]
    # Posterize to 3 bits keeps the top three bits (mask 0b11100000).
    assert ops.posterize(pixel, 3)[0, 0, 0].tolist() == [0, 96, 96, 128, 192, 224]
    # Autocontrast of 100..200: int(i·2.55 − 100·2.55) in floating point, as Pillow's LUT: 150 -> 127, and
    # 200 -> int(254.99999999999997) = 254 (Pillow's own result: the top level is not always 255).
    ramp = torch.tensor([100, 150, 200], dtype=torch.uint8).view(1, 1, 1, 3)
    assert ops.autocontrast(ramp)[0, 0, 0].tolist() == [0, 127, 254]
    # Greyscale is ITU-R 601-2 in Pillow's fixed point: (19595·R + 38470·G + 7471·B + 2^15) >> 16.
    rgb = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    assert int(ops.luminance(rgb)) == (255 * 19595 + 2 ** 15) >> 16 == 76


def test_equalize_top_level_is_clipped_to_255_like_pil():
    # 511 black pixels and one white one: the white level's LUT entry is (1 + 511) // 2 = 256.
    image = np.zeros((16, 32, 3), np.uint8)
    image[0, 0] = 255
    ours = ops.equalize(torch.from_numpy(image).permute(2, 0, 1)[None].contiguous())
    np.testing.assert_array_equal(ours[0].permute(1, 2, 0).numpy(), np.asarray(ImageOps.equalize(Image.fromarray(image))))
    assert ours[0, :, 0, 0].tolist() == [255, 255, 255]


def test_apply_per_image_gives_each_image_its_own_op_and_magnitude():
    batch = _batch(IMAGES)
    names = ["rotate", "solarize", "equalize", "shear_x"]
    op_index = torch.tensor([0, 1, -1, 2, 3, 0])
    magnitude = torch.tensor([30.0, 100.0, 5.0, 0.0, 0.2, -45.0], dtype=torch.float64)
    out = per_image.apply_per_image(batch, op_index, magnitude, names, resample="bilinear")
    for i in range(len(batch)):
        one = batch[i:i + 1]
        expected = one if op_index[i] < 0 else ops.apply_op(names[op_index[i]], one, magnitude[i:i + 1], "bilinear")
        assert torch.equal(out[i:i + 1], expected), f"image {i}"
    assert torch.equal(out[2], batch[2])     # −1: unchanged


def test_scalar_magnitude_equals_the_same_value_per_image():
    batch = _batch(IMAGES)
    assert torch.equal(ops.rotate(batch, 12.0), ops.rotate(batch, torch.full((6,), 12.0)))
    assert torch.equal(ops.contrast(batch, 0.4), ops.contrast(batch, torch.full((6,), 0.4)))


def test_user_errors():
    batch = _batch(IMAGES)
    with pytest.raises(LayoutError, match="uint8"):
        per_image.apply_per_image(batch.float(), torch.zeros(6, dtype=torch.long), torch.zeros(6), ["invert"])
    with pytest.raises(UnknownNameError, match="Did you mean 'rotate'"):
        ops.apply_op("rotat", batch)
    with pytest.raises(UnknownNameError, match="bilinear"):
        ops.rotate(batch, 10.0, resample="bicubic")
    with pytest.raises(InvalidValueError, match="one value per image"):
        ops.rotate(batch, torch.zeros(5))
    with pytest.raises(InvalidValueError, match="0 to 8 bits"):
        ops.posterize(batch, 9)
