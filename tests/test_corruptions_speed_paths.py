"""The fast paths of jpeg_compression, shot_noise and elastic_transform against what they replace.

- jpeg_compression: torchvision's batched codec must give Pillow's `save(quality=q)` + decode bytes
  at every quality of the tables, on photo-like, noisy, flat and odd-sized images (4:2:0 chroma and
  fancy upsampling are exercised by the colour edges and odd sizes).
- shot_noise: the alias-table sampler draws each output byte from the exact law of
  trunc(255·clip(k/c, 0, 1)), k ~ Poisson(x·c) (scipy.stats.poisson), checked by its tables and by
  chi-square on samples; injected counts still go through the reference formula.
- elastic_transform: the tight REFLECT_101 pad gathers the same values as the whole-period extension.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from corrbench.corruptions import get_corruption
from corrbench.corruptions.digital import (JPEG_QUALITY, _jpeg_round_trip, _torchvision_round_trip,
                                          torchvision_matches_pillow)
from corrbench.corruptions.names import SCALE_SIZE
from corrbench.corruptions.noise import SHOT_NOISE_RATE, sample_shot_noise, shot_noise_tables

QUALITIES = sorted({q for table in JPEG_QUALITY.values() for q in table})


def pillow_jpeg(image_hwc: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image_hwc).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def jpeg_probe_images(side: int, seed: int) -> np.ndarray:
    """Smooth colour gradients with edges (photo-like), uniform noise, and a flat image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    smooth = np.stack([128 + 100 * np.sin(6 * xx + 2 * c) * np.cos(4 * yy - c) for c in range(3)], -1)
    smooth[side // 3:, : side // 2, 0] = 250  # a hard red edge: chroma subsampling shows here
    photo_like = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    flat = np.full((side, side, 3), 77, np.uint8)
    return np.stack([photo_like, noise, flat])


def test_jpeg_compression_equals_pillow_at_every_table_quality():
    jpeg = get_corruption("jpeg_compression")
    for scale, qualities in JPEG_QUALITY.items():
        images = jpeg_probe_images(SCALE_SIZE[scale], seed=len(scale))
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        for severity, quality in enumerate(qualities, start=1):
            ours = jpeg(batch, severity, scale=scale).permute(0, 2, 3, 1).numpy()
            expected = np.stack([pillow_jpeg(image, quality) for image in images])
            assert np.array_equal(ours, expected), (scale, severity)


@pytest.mark.parametrize("side", [8, 17, 31, 33])
def test_torchvision_codec_equals_pillow_on_odd_sizes(side):
    """Partial 16×16 MCUs: edge padding of the 4:2:0 chroma and the upsampler's borders."""
    images = jpeg_probe_images(side, seed=side)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    for quality in QUALITIES:
        ours = _torchvision_round_trip(batch, quality).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(ours, np.stack([pillow_jpeg(image, quality) for image in images])), quality


def test_torchvision_codec_is_used_here_and_reproduces_pillow():
    """This environment's torchvision and Pillow agree, so the fast path is taken at every quality."""
    assert all(torchvision_matches_pillow(q) for q in QUALITIES)
    image = jpeg_probe_images(32, seed=3)[0]
    assert np.array_equal(_jpeg_round_trip(image, 50), pillow_jpeg(image, 50))


def output_byte_law(value: int, rate: int) -> np.ndarray:
    """P(trunc(255·clip(k/c, 0, 1)) = b) for b = 0..255, k ~ Poisson(value/255·c), from scipy."""
    counts = np.arange(rate + 1)
    pmf = stats.poisson.pmf(counts, value / 255.0 * rate)
    pmf[-1] = stats.poisson.sf(rate - 1, value / 255.0 * rate)  # k ≥ c all give 255
    law = np.zeros(256)
    np.add.at(law, np.uint8(np.clip(counts / rate, 0, 1) * 255), pmf)
    return law


@pytest.mark.parametrize("rate", [500, 50, 3])
def test_alias_tables_hold_the_exact_poisson_byte_law(rate):
    threshold, alias = shot_noise_tables(rate)
    threshold, alias = threshold.reshape(256, 256).numpy(), alias.reshape(256, 256).numpy().astype(int)
    for value in (0, 1, 37, 128, 254, 255):
        # Alias method: bin i keeps mass threshold[i]/256 and hands (1 − threshold[i])/256 to alias[i].
        law = threshold[value] / 256.0
        np.add.at(law, alias[value], (1.0 - threshold[value]) / 256.0)
        assert np.allclose(law, output_byte_law(value, rate), rtol=1e-9, atol=1e-14), (rate, value)


@pytest.mark.parametrize("rate, value", [(500, 200), (100, 30), (50, 128), (15, 5), (3, 250)])
def test_shot_noise_samples_pass_chi_square_against_scipy_poisson(rate, value):
    images = torch.full((20, 3, 32, 32), value, dtype=torch.uint8)   # 61,440 draws of one rate
    out = sample_shot_noise(images, rate, torch.Generator().manual_seed(rate + value)).flatten().numpy()
    law = output_byte_law(value, rate)
    expected = law * out.size
    support = expected >= 5  # pool the thin tail into one cell, as chi-square needs
    observed = np.bincount(out, minlength=256)
    cells_observed = np.append(observed[support], observed[~support].sum())
    cells_expected = np.append(expected[support], expected[~support].sum())
    if cells_expected[-1] < 5:
        cells_observed[-2] += cells_observed[-1]
        cells_expected[-2] += cells_expected[-1]
        cells_observed, cells_expected = cells_observed[:-1], cells_expected[:-1]
    _, p_value = stats.chisquare(cells_observed, cells_expected * observed.sum() / cells_expected.sum())
    assert p_value > 1e-3, (rate, value, p_value)
    # and the mean byte E[trunc(255·min(k, c)/c)] within 4 standard errors
    assert out.mean() == pytest.approx((law * np.arange(256)).sum(), abs=4 * out.std() / np.sqrt(out.size))


def test_shot_noise_is_reproducible_per_seed_and_varies_with_it():
    images = torch.randint(0, 256, (3, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    shot = get_corruption("shot_noise")
    a = shot(images, 2, scale="cifar", generator=torch.Generator().manual_seed(5))
    b = shot(images, 2, scale="cifar", generator=torch.Generator().manual_seed(5))
    c = shot(images, 2, scale="cifar", generator=torch.Generator().manual_seed(6))
    assert a.dtype == torch.uint8 and a.shape == images.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(shot(torch.zeros_like(images), 2, scale="cifar", generator=torch.Generator()),
                       torch.zeros_like(images))  # Poisson(0) is 0


def test_shot_noise_injected_counts_still_follow_the_formula():
    images = torch.full((2, 3, 32, 32), 100, dtype=torch.uint8)
    rate = SHOT_NOISE_RATE["cifar"][2]
    counts = torch.arange(2 * 3 * 32 * 32, dtype=torch.float64).reshape(images.shape) % (rate + 20)
    out = get_corruption("shot_noise")(images, 3, scale="cifar", draws=counts)
    expected = np.uint8(np.clip(counts.numpy() / rate, 0, 1) * 255)
    assert np.array_equal(out.numpy(), expected)


def test_elastic_tight_reflect_pad_gathers_the_whole_period_extension_values():
    """elastic_transform pads only as far as the positions reach; the values must be those of the
    full REFLECT_101 extension, including positions a whole image width outside (the fallback)."""
    from corrbench.corruptions.elastic import _corner_indices, _gather_pixels, _reflect101_corners, _unfold_reflect101
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=generator)
    for reach in (0, 3, 31, 40):  # 40: beyond one reflection, the whole-period path
        col = torch.randint(-reach, 31 + reach, (2, 32, 32), generator=generator)
        row = torch.randint(-reach, 31 + reach, (2, 32, 32), generator=generator)
        extended, corner, width = _reflect101_corners(x, col, row)
        full_corner, full_width = _corner_indices(x, col, row)
        full = _unfold_reflect101(x)
        for offset, full_offset in ((0, 0), (1, 1), (width, full_width), (width + 1, full_width + 1)):
            assert torch.equal(_gather_pixels(extended, corner, offset), _gather_pixels(full, full_corner, full_offset))
