"""corrbench.corruptions.jpeg_torch against Pillow: the same bytes as `Image.save(buf, "JPEG",
quality=q)` + decode (digital._jpeg_round_trip) on noise, gradients, flat and extreme images,
checkerboards, DCT-basis sign patterns (the largest coefficients) and crops of scikit-image's
photographs, at every table quality and a sweep of others; plus the pieces (quantization tables,
the reciprocal quantizer) and the CUDA path where there is one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import corrbench.corruptions.jpeg_torch as jpeg_torch
from corrbench.corruptions.digital import JPEG_QUALITY, _jpeg_round_trip
from corrbench.corruptions.jpeg_torch import compute_reciprocal, jpeg_round_trip, quant_tables, supports

TABLE_QUALITIES = sorted({q for table in JPEG_QUALITY.values() for q in table})
SWEEP = sorted(set(TABLE_QUALITIES) | {1, 100} | set(range(5, 100, 5)))


def to_bchw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(0, 3, 1, 2).contiguous()


def pillow(images_hwc: np.ndarray, quality: int) -> np.ndarray:
    return np.stack([_jpeg_round_trip(image, quality) for image in images_hwc])


def ours(images_hwc: np.ndarray, quality: int) -> np.ndarray:
    return jpeg_round_trip(to_bchw(images_hwc), quality).permute(0, 2, 3, 1).numpy()


def photo_crops(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """n uint8 crops of scikit-image's photographs resized to height×width (as benchmarks'
    photo_batch, any aspect)."""
    from PIL import Image
    from skimage import data

    photos = [getattr(data, name)()[..., :3] for name in ("astronaut", "chelsea", "coffee", "rocket")]
    rng = np.random.default_rng(seed)
    out = np.empty((n, height, width, 3), np.uint8)
    for index in range(n):
        photo = photos[index % len(photos)]
        crop = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
        top = int(rng.integers(0, photo.shape[0] - crop + 1))
        left = int(rng.integers(0, photo.shape[1] - crop + 1))
        window = Image.fromarray(photo[top:top + crop, left:left + crop])
        out[index] = np.asarray(window.resize((width, height), Image.BILINEAR))
    return out


def patterns(height: int, width: int, seed: int) -> np.ndarray:
    """Noise, gradients, flat 0/128/255, 1- and 8-pixel checkerboards (grey and colour), DCT-basis
    sign patterns for luma and for chroma, and photo crops: uint8 B×H×W×3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    images += [np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), 255 - xx * 255 // (width - 1)], -1),
               np.stack([(xx * 5 + yy * 3) % 256, (xx * 2 + yy * 7) % 256, (xx * 11 + yy) % 256], -1)]
    images += [np.full((height, width, 3), value) for value in (0, 128, 255)]
    for period in (1, 8):
        board = ((yy // period + xx // period) % 2) * 255
        images += [np.stack([board] * 3, -1), np.stack([board, 255 - board, board], -1)]
    cosines = np.cos((2 * np.arange(8)[:, None] + 1) * np.arange(8)[None, :] * np.pi / 16)   # [x, frequency]
    for fv, fu in ((0, 7), (7, 0), (7, 7), (3, 5)):
        sign = np.outer(cosines[:, fv], cosines[:, fu]) >= 0
        luma = np.tile(sign, (height // 8, width // 8)) * 255
        chroma = np.tile(np.kron(sign, np.ones((2, 2), bool)), (height // 16, width // 16)) * 255
        images += [np.stack([luma, 255 - luma, luma], -1), np.stack([chroma, 255 - chroma, 0 * chroma], -1)]
    images = np.stack(images).astype(np.uint8)
    return np.concatenate([images, photo_crops(4, height, width, seed)])


@pytest.mark.parametrize("side", [16, 32, 48, 64])
def test_equals_pillow_on_patterns_at_every_quality(side):
    images = patterns(side, side, seed=side)
    for quality in SWEEP:
        assert np.array_equal(ours(images, quality), pillow(images, quality)), quality


def test_equals_pillow_on_photo_crops_at_the_table_qualities():
    for scale, side, n in (("cifar", 32, 96), ("tiny", 64, 24)):
        images = photo_crops(n, side, side, seed=side)
        for quality in JPEG_QUALITY[scale]:
            assert np.array_equal(ours(images, quality), pillow(images, quality)), (scale, quality)


def test_equals_pillow_at_224_pixels():
    images = np.concatenate([photo_crops(2, 224, 224, seed=224), patterns(224, 224, seed=1)[[0, 10]]])
    for quality in JPEG_QUALITY["imagenet"] + (50, 90):
        assert np.array_equal(ours(images, quality), pillow(images, quality)), quality


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (32, 64), (80, 96)])
def test_equals_pillow_on_non_square_images(shape):
    images = patterns(*shape, seed=sum(shape))
    for quality in (7, 25, 50, 80, 95):
        assert np.array_equal(ours(images, quality), pillow(images, quality)), quality


def test_chunks_and_input_layouts_change_nothing(monkeypatch):
    images = photo_crops(12, 32, 48, seed=5)
    expected = pillow(images, 40)
    monkeypatch.setattr(jpeg_torch, "CHUNK_PIXELS", 5 * 32 * 48)     # chunks of 5, 5 and 2 images
    assert np.array_equal(ours(images, 40), expected)
    batch = to_bchw(images)
    for layout in (batch.to(memory_format=torch.channels_last), torch.from_numpy(images).permute(0, 3, 1, 2)):
        assert np.array_equal(jpeg_round_trip(layout, 40).permute(0, 2, 3, 1).numpy(), expected)
    assert jpeg_round_trip(batch[:0], 40).shape == (0, 3, 32, 48)


def test_quant_tables_are_pillows():
    from PIL import Image
    import io

    for quality in (1, 7, 25, 50, 65, 80, 99, 100):
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "JPEG", quality=quality)
        saved = Image.open(io.BytesIO(buffer.getvalue())).quantization
        luma, chroma = quant_tables(quality)
        assert list(saved[0]) == list(luma) and list(saved[1]) == list(chroma), quality


def test_reciprocal_quantizer_rounds_half_away_from_zero():
    """jcdctmgr.c's ((|c| + corr)·recip) >> r is round(|c|/d) (halves up) for every baseline divisor
    d = 8·quantval and every 16-bit |c|: what the emulation's torch.round step relies on."""
    magnitudes = np.arange(1 << 15, dtype=np.int64)
    for quantval in range(1, 256):
        divisor = quantval << 3
        reciprocal, correction, shift = compute_reciprocal(divisor)
        assert reciprocal < 1 << 16 and correction < 1 << 16
        quotient = ((magnitudes + correction) * reciprocal) >> shift
        assert np.array_equal(quotient, (magnitudes + divisor // 2) // divisor), quantval


def test_supports_and_rejects():
    assert supports(32, 32) and supports(224, 160) and not supports(33, 32) and not supports(8, 16)
    with pytest.raises(ValueError, match="multiples of 16"):
        jpeg_round_trip(torch.zeros((1, 3, 24, 32), dtype=torch.uint8), 50)
    with pytest.raises(ValueError, match="uint8"):
        jpeg_round_trip(torch.zeros((1, 3, 32, 32)), 50)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_bytes():
    images = np.concatenate([patterns(32, 32, seed=3), photo_crops(8, 64, 32, seed=4)[:, :32]])
    batch = to_bchw(images)
    for quality in (1, 7, 25, 40, 65, 80, 100):
        gpu = jpeg_round_trip(batch.cuda(), quality)
        assert gpu.device.type == "cuda"
        assert torch.equal(gpu.cpu(), jpeg_round_trip(batch, quality)), quality
    assert np.array_equal(jpeg_round_trip(batch.cuda(), 40).cpu().permute(0, 2, 3, 1).numpy(), pillow(images, 40))
