"""corrbench's ImageNet-scale (224 px) corruptions beside `imagecorruptions.corrupt`, the maintained
per-image reference generator, on four natural photographs (scikit-image's bundled images after
Resize(256) → CenterCrop(224), the ImageNet-C preparation).

What is compared, and why:
- **Bytes** for the deterministic corruptions both implement the same way at 224 px: brightness, contrast,
  saturate, jpeg_compression, pixelate (imagecorruptions upsamples with NEAREST where the reference uses
  BOX; for upsampling Pillow makes them identical, spec A.14) and defocus_blur. defocus_blur may differ by
  one level on a handful of pixels: OpenCV's filter2D, which imagecorruptions calls, sums a large kernel in
  another order than a direct correlation, which can flip a truncation (at most 1e-4 of the bytes here).
- **Distribution** for the stochastic ones with the same definition: gaussian_noise, shot_noise,
  impulse_noise, speckle_noise and spatter. The mean PSNR against the clean images must agree within
  0.5 dB, or, where the per-image spread of one draw makes 0.5 dB unresolvable with a few dozen draws
  (spatter at severity 1, whose drops sometimes barely touch an image), within four standard errors.
- **Not compared**: motion_blur, snow, frost, elastic_transform and zoom_blur, which imagecorruptions
  defines differently by design (its own motion-blur quantisation and kernel walk, a texture rescaled to
  cover the image, a different elastic formula, an untrimmed clipped zoom — spec A.6, A.9, A.13, §0.4);
  glass_blur, gaussian_blur and fog, which crash in imagecorruptions on current NumPy / scikit-image.
A corruption is compared once it is registered in corrbench, so new ones are picked up without edits.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from corrbench.corruptions import corrupt, list_corruptions
from corrbench.data.imageset import resize_center_crop

with warnings.catch_warnings():   # imagecorruptions imports pkg_resources, deprecated in setuptools
    warnings.simplefilter("ignore")
    from imagecorruptions import corrupt as reference_corrupt

DETERMINISTIC = ("brightness", "contrast", "saturate", "jpeg_compression", "pixelate", "defocus_blur")
STOCHASTIC = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "spatter")
ROUNDING_TOLERANT = {"defocus_blur": 1e-4}   # largest fraction of bytes allowed to differ, by at most 1
PSNR_TOLERANCE_DB = 0.5
DRAWS_PER_IMAGE = {"spatter": 8}             # × 4 photographs; noise PSNR hardly varies between draws: 2


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    from skimage import data
    names = ("astronaut", "chelsea", "coffee", "rocket")
    return np.stack([np.asarray(resize_center_crop(Image.fromarray(getattr(data, name)()))) for name in names])


def as_batch(images_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images_hwc)).permute(0, 3, 1, 2).contiguous()


def reference(images_hwc: np.ndarray, name: str, severity: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([reference_corrupt(image, severity, corruption_name=name) for image in images_hwc])


def psnr(corrupted: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB (peak 255)."""
    error = (corrupted.astype(np.float64) - clean.astype(np.float64)) ** 2
    return 10 * np.log10(255.0 ** 2 / error.reshape(len(error), -1).mean(axis=1))


def registered(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in list_corruptions()]


@pytest.mark.parametrize("name", registered(DETERMINISTIC))
def test_deterministic_corruptions_match_the_reference_bytes(photos, name):
    for severity in range(1, 6):
        ours = corrupt(as_batch(photos), name, severity, scale="imagenet").permute(0, 2, 3, 1).numpy()
        theirs = reference(photos, name, severity)
        difference = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
        tolerated = ROUNDING_TOLERANT.get(name, 0.0)
        assert difference.max() <= (1 if tolerated else 0), (name, severity, int(difference.max()))
        assert np.mean(difference > 0) <= tolerated, (name, severity, float(np.mean(difference > 0)))


@pytest.mark.parametrize("name", registered(STOCHASTIC))
def test_stochastic_corruptions_match_the_reference_psnr(photos, name):
    clean = np.concatenate([photos] * DRAWS_PER_IMAGE.get(name, 2))
    generator = torch.Generator().manual_seed(0)
    state = np.random.get_state()
    np.random.seed(0)   # imagecorruptions draws from NumPy's global RNG; restored below
    try:
        for severity in range(1, 6):
            ours = psnr(corrupt(as_batch(clean), name, severity, scale="imagenet", generator=generator)
                        .permute(0, 2, 3, 1).numpy(), clean)
            theirs = psnr(reference(clean, name, severity), clean)
            standard_error = np.sqrt(ours.var(ddof=1) / len(ours) + theirs.var(ddof=1) / len(theirs))
            tolerance = max(PSNR_TOLERANCE_DB, 4 * standard_error)
            gap = abs(ours.mean() - theirs.mean())
            assert gap <= tolerance, (name, severity, round(float(ours.mean()), 3), round(float(theirs.mean()), 3))
    finally:
        np.random.set_state(state)


def test_the_comparison_covers_the_implemented_corruptions_it_can():
    # Guards against an empty parametrisation passing silently: the engine's first corruptions are here.
    assert {"contrast", "brightness", "jpeg_compression"} <= set(registered(DETERMINISTIC))
    assert {"gaussian_noise", "shot_noise"} <= set(registered(STOCHASTIC))
