"""frost and fog (spec A.9, A.10, G7): fidelity to the reference with recorded draws, textures, invariants.

The references below are the reference generators' per-image NumPy code rewritten from the spec
(`cv2.imread` / `cv2.resize` for the textures), run on the same images with the same NumPy random
stream; corrbench gets those draws injected and must match byte for byte.
"""
from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from corrbench.corruptions import SCALE_SIZE, SCALES, corrupt, get_corruption, severity_parameters
from corrbench.corruptions import frost_textures
from corrbench.corruptions.frost_textures import (
    FROST_FILES, USED_TEXTURES, frost_texture, frost_texture_path, opencv_linear_resize, scaled_frost_texture,
    texture_sizes,
)
from corrbench.corruptions.plasma import plasma_fractal, plasma_uniform_count
from corrbench.corruptions.weather import PLASMA_MAPSIZE, FrostDraws, draw_fog, draw_frost
from corrbench.errors import MissingDataError
from image_helpers import noise_and_ramps, seeded, to_hwc, to_torch

SEVERITIES = (1, 2, 3, 4, 5)
NAMES = ("frost", "fog")
FROST_DIR = Path(importlib.util.find_spec("imagecorruptions").origin).parent / "frost"  # found, not imported


# ---- the reference, in NumPy ------------------------------------------------------------------------

RESCALE = {"cifar": 0.2, "tiny": 0.3, "imagenet": None}


def reference_texture_bgr(index: int, scale: str) -> np.ndarray:
    bgr = cv2.imread(str(FROST_DIR / FROST_FILES[index]))
    factor = RESCALE[scale]
    return bgr if factor is None else cv2.resize(bgr, (0, 0), fx=factor, fy=factor)


def reference_frost(u: np.ndarray, c: tuple, scale: str, rs: np.random.RandomState) -> np.ndarray:
    size = u.shape[0]
    texture = reference_texture_bgr(rs.randint(5), scale)
    top, left = rs.randint(0, texture.shape[0] - size), rs.randint(0, texture.shape[1] - size)
    crop = texture[top:top + size, left:left + size][..., [2, 1, 0]]
    return np.uint8(np.clip(c[0] * np.array(u) + c[1] * crop, 0, 255))


def recorded_frost_draws(batch: int, size: int, scale: str, seed: int) -> FrostDraws:
    """The (idx, x_start, y_start) each reference call above draws, image after image."""
    rs = np.random.RandomState(seed)
    draws = []
    for _ in range(batch):
        index = rs.randint(5)
        height, width = reference_texture_bgr(index, scale).shape[:2]
        draws.append((index, rs.randint(0, height - size), rs.randint(0, width - size)))
    return FrostDraws(*(torch.tensor(column) for column in zip(*draws)))


def reference_plasma(mapsize: int, wibbledecay: float, rs: np.random.RandomState) -> np.ndarray:
    """The reference's plasma_fractal, line for line, drawing from `rs`."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * rs.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum)
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = (drgrid + np.roll(drgrid, 1, axis=0)) + (ulgrid + np.roll(ulgrid, -1, axis=1))
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = (drgrid + np.roll(drgrid, 1, axis=1)) + (ulgrid + np.roll(ulgrid, -1, axis=0))
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def reference_fog(u: np.ndarray, c: tuple, mapsize: int, rs: np.random.RandomState) -> np.ndarray:
    size = u.shape[0]
    x = np.array(u) / 255.
    max_val = x.max()
    x += c[0] * reference_plasma(mapsize, c[1], rs)[:size, :size][..., np.newaxis]
    return np.uint8(np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255)


# ---- textures ---------------------------------------------------------------------------------------

def test_textures_come_from_the_installed_wheel_decoded_as_opencv_reads_them():
    for index, name in enumerate(FROST_FILES):
        assert frost_texture_path(index) == FROST_DIR / name
        expected = cv2.imread(str(FROST_DIR / name))[..., ::-1]
        assert np.array_equal(frost_texture(index), expected), name


def test_rescaled_textures_match_opencv_resize_and_the_spec_sizes():
    sizes = {  # spec A.9, H×W per texture: CIFAR ×0.2, Tiny ×0.3
        "cifar": ((120, 180), (63, 112), (63, 112), (70, 105), (99, 132), (65, 97)),
        "tiny": ((180, 270), (94, 168), (94, 168), (105, 158), (148, 198), (97, 146)),
    }
    for scale, expected in sizes.items():
        for index in range(len(FROST_FILES)):
            ours = scaled_frost_texture(index, scale)
            assert ours.shape[:2] == expected[index]
            assert np.array_equal(ours, reference_texture_bgr(index, scale)[..., ::-1]), (scale, index)
    for index in range(len(FROST_FILES)):  # CIFAR's ×0.2 is exact subsampling F[2::5, 2::5]
        assert np.array_equal(scaled_frost_texture(index, "cifar"), frost_texture(index)[2::5, 2::5])
        assert scaled_frost_texture(index, "imagenet") is frost_texture(index)
    assert texture_sizes("imagenet") == ((600, 900), (315, 560), (315, 560), (350, 527), (495, 660))


def test_opencv_linear_resize_matches_opencv_on_other_factors():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for factor in (0.3, 0.45, 0.7):
        assert np.array_equal(opencv_linear_resize(image, factor),
                              cv2.resize(image, (0, 0), fx=factor, fy=factor)), factor


def test_a_missing_texture_is_a_one_line_missing_data_error(monkeypatch):
    frost_texture_path.cache_clear()
    monkeypatch.setattr(frost_textures.importlib.metadata, "files", lambda package: [])
    try:
        with pytest.raises(MissingDataError, match="frost texture frost1.png is missing.*reinstall") as error:
            frost_texture_path(0)
        assert "\n" not in str(error.value)
    finally:
        frost_texture_path.cache_clear()


def clear_texture_caches() -> None:
    for cached in (frost_texture_path, frost_texture, scaled_frost_texture, frost_textures._texture_stack):
        cached.cache_clear()


def test_frost_without_the_package_is_a_one_line_missing_data_error(monkeypatch):
    def not_installed(package):
        raise frost_textures.importlib.metadata.PackageNotFoundError(package)

    clear_texture_caches()
    monkeypatch.setattr(frost_textures.importlib.metadata, "files", not_installed)
    try:
        with pytest.raises(MissingDataError, match="pip install imagecorruptions") as error:
            corrupt(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "frost", 1, generator=seeded(0))
        assert "\n" not in str(error.value)
    finally:
        clear_texture_caches()


# ---- frost ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
def test_frost_matches_the_reference_with_recorded_draws(scale):
    size = SCALE_SIZE[scale]
    batch = 6 if scale != "imagenet" else 2
    for severity, c in zip(SEVERITIES, severity_parameters("frost", scale)):
        images = noise_and_ramps(batch, size, seed=severity)
        rs = np.random.RandomState(severity)
        expected = np.stack([reference_frost(u, c, scale, rs) for u in images])
        draws = recorded_frost_draws(batch, size, scale, seed=severity)
        ours = get_corruption("frost")(to_torch(images), severity, scale=scale, draws=draws)
        assert np.array_equal(to_hwc(ours), expected), (scale, severity)


def test_frost_blend_by_hand():
    """On a black image the output is trunc(c1·F): CIFAR severity 3 has c1 = 0.4 and F = texture[2::5, 2::5]."""
    black = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    draws = FrostDraws(torch.tensor([3]), torch.tensor([7]), torch.tensor([11]))
    out = get_corruption("frost")(black, 3, scale="cifar", draws=draws)
    texel = frost_texture(3)[2 + 5 * 7, 2 + 5 * 11]  # RGB of the crop's top-left pixel
    assert out[0, :, 0, 0].tolist() == [math.floor(0.4 * int(v)) for v in texel]
    white = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)  # 0.75·255 + 0.45·F clips at 255 once F ≥ 142
    out = get_corruption("frost")(white, 5, scale="cifar", draws=draws)
    crop = torch.from_numpy(frost_texture(3)[2::5, 2::5][7:39, 11:43].copy()).permute(2, 0, 1).double()
    assert torch.equal(out[0], (0.75 * 255 + 0.45 * crop).clamp(0, 255).floor().to(torch.uint8))


@pytest.mark.parametrize("scale", SCALES)
def test_frost_draws_only_the_first_five_textures_and_valid_crops(scale):
    images = torch.zeros(400, 3, SCALE_SIZE[scale], SCALE_SIZE[scale], dtype=torch.uint8)
    draws = draw_frost(images, scale, seeded(0))
    assert set(draws.texture.tolist()) == set(range(USED_TEXTURES))  # all five, never frost6 (index 5)
    heights = torch.tensor([h for h, _ in texture_sizes(scale)])[draws.texture]
    widths = torch.tensor([w for _, w in texture_sizes(scale)])[draws.texture]
    side = SCALE_SIZE[scale]
    assert bool((draws.row >= 0).all() and (draws.row < heights - side).all())
    assert bool((draws.col >= 0).all() and (draws.col < widths - side).all())
    # the crops cover their whole range: the largest offsets seen are near the top of it
    assert int((heights - side - draws.row).min()) <= 5 and int((widths - side - draws.col).min()) <= 5


def test_frost_rejects_draws_outside_the_reference_range():
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    frost = get_corruption("frost")
    with pytest.raises(ValueError, match="0..4"):  # frost6 is never drawn
        frost(images, 1, scale="cifar", draws=FrostDraws(torch.tensor([5]), torch.tensor([0]), torch.tensor([0])))
    with pytest.raises(ValueError, match="crop offsets"):  # frost2 at CIFAR is 63 px high: rows 0..30
        frost(images, 1, scale="cifar", draws=FrostDraws(torch.tensor([1]), torch.tensor([31]), torch.tensor([0])))
    with pytest.raises(ValueError, match="three integer tensors"):
        frost(images, 1, scale="cifar", draws=(torch.tensor([0]), torch.tensor([0])))


def test_frost_at_224_agrees_with_imagecorruptions_in_distribution():
    """imagecorruptions' frost rescales the texture ×1.1 (bicubic) before cropping; with the texture
    matched (same NumPy seed → same index), the recovered frost layer out/c1 of a black image has
    the same mean and spread as corrbench's, pooled over 30 draws."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions
    black = np.zeros((224, 224, 3), np.uint8)
    ours_layers, their_layers = [], []
    for seed in range(30):
        severity = seed % 5 + 1
        weight = severity_parameters("frost", "imagenet")[severity - 1][1]
        np.random.seed(seed)
        index = np.random.randint(5)
        np.random.seed(seed)
        their_layers.append(imagecorruptions.corrupt(black, severity=severity, corruption_name="frost") / weight)
        height, width = texture_sizes("imagenet")[index]
        g = seeded(seed)
        draws = FrostDraws(torch.tensor([index]), torch.randint(0, height - 224, (1,), generator=g),
                           torch.randint(0, width - 224, (1,), generator=g))
        out = get_corruption("frost")(to_torch(black[None]), severity, scale="imagenet", draws=draws)
        ours_layers.append(to_hwc(out)[0] / weight)
    ours, theirs = np.stack(ours_layers), np.stack(their_layers)
    assert abs(ours.mean() - theirs.mean()) < 15          # measured: 165.2 vs 170.4
    assert 0.75 < ours.std() / theirs.std() < 1.33


# ---- plasma and fog ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mapsize, decay", [(32, 3), (32, 1.75), (64, 2.5), (256, 1.4)])
def test_plasma_fractal_is_exact_given_the_same_uniform_stream(mapsize, decay):
    seeds = (0, 1) if mapsize < 256 else (0,)
    uniforms = torch.from_numpy(np.stack([np.random.RandomState(s).random_sample(plasma_uniform_count(mapsize))
                                          for s in seeds]))
    ours = plasma_fractal(uniforms, mapsize, decay).numpy()
    for i, s in enumerate(seeds):
        assert np.array_equal(ours[i], reference_plasma(mapsize, decay, np.random.RandomState(s)))


def test_plasma_uniform_count_and_range():
    assert [plasma_uniform_count(m) for m in (2, 32, 64, 256)] == [3, 1023, 4095, 65535]
    maps = plasma_fractal(torch.rand(3, 1023, dtype=torch.float64, generator=seeded(0)), 32, 2)
    assert maps.shape == (3, 32, 32)
    assert torch.equal(maps.amin(dim=(1, 2)), torch.zeros(3)) and torch.equal(maps.amax(dim=(1, 2)), torch.ones(3))
    with pytest.raises(ValueError, match="B×1023"):
        plasma_fractal(torch.rand(3, 1000, dtype=torch.float64), 32, 2)
    with pytest.raises(ValueError, match="power of two"):
        plasma_fractal(torch.rand(3, 899, dtype=torch.float64), 30, 2)


@pytest.mark.parametrize("scale", SCALES)
def test_fog_matches_the_reference_with_recorded_draws(scale):
    size, mapsize = SCALE_SIZE[scale], PLASMA_MAPSIZE[scale]
    batch = 4 if scale != "imagenet" else 1
    for severity, c in zip(SEVERITIES, severity_parameters("fog", scale)):
        images = noise_and_ramps(batch, size, seed=10 + severity)
        rs = np.random.RandomState(severity)
        expected = np.stack([reference_fog(u, c, mapsize, rs) for u in images])
        rs = np.random.RandomState(severity)
        draws = torch.from_numpy(np.stack([rs.random_sample(plasma_uniform_count(mapsize)) for _ in images]))
        ours = get_corruption("fog")(to_torch(images), severity, scale=scale, draws=draws)
        assert np.array_equal(to_hwc(ours), expected), (scale, severity)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_fog_by_hand_on_black_and_white(severity):
    """Fog scales by M/(M + a), M the image's maximum: black stays black; white spans
    trunc(255/(1 + a)) (where the plasma is 0) to 255 (where it is 1)."""
    strength = severity_parameters("fog", "cifar")[severity - 1][0]
    black = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    assert torch.equal(corrupt(black, "fog", severity, generator=seeded(0)), black)
    white = torch.full((2, 3, 32, 32), 255, dtype=torch.uint8)
    out = corrupt(white, "fog", severity, generator=seeded(0))
    assert out.amin(dim=(1, 2, 3)).tolist() == [math.floor(min(1.0 * 1.0 / (1.0 + strength), 1.0) * 255)] * 2
    assert out.amax(dim=(1, 2, 3)).tolist() == [255, 255]
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])  # one map for all channels


def test_fog_rejects_draws_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"\(2, 1023\)"):
        get_corruption("fog")(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), 1, scale="cifar",
                              draws=torch.rand(2, 4095, dtype=torch.float64))


# ---- invariants, seeding, independence --------------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NAMES)
def test_invariants_for_every_severity(name, scale):
    size = SCALE_SIZE[scale]
    images = to_torch(noise_and_ramps(2, size, seed=3))
    before = images.clone()
    for severity in SEVERITIES:
        out = corrupt(images, name, severity, scale=scale, generator=seeded(severity))
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
        assert not torch.equal(out, images)
        assert torch.equal(out, corrupt(images, name, severity, scale=scale, generator=seeded(severity)))
        assert not torch.equal(out, corrupt(images, name, severity, scale=scale, generator=seeded(severity + 10)))
    assert torch.equal(images, before), "the input was modified in place"


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_input_and_large_chunked_batches_give_the_same_bytes(name):
    """Large CPU batches run in chunks; the draws are made for the whole batch first, so each
    image's bytes do not depend on the batch it came in."""
    images = to_torch(noise_and_ramps(200, 32, seed=4))
    whole = corrupt(images, name, 5, generator=seeded(2))
    assert torch.equal(whole, corrupt(images.contiguous(memory_format=torch.channels_last), name, 5,
                                      generator=seeded(2)))
    kernel = get_corruption(name)
    draws = draw_frost(images, "cifar", seeded(2)) if name == "frost" else draw_fog(images, "cifar", seeded(2))
    part = FrostDraws(*(d[150:] for d in draws)) if name == "frost" else draws[150:]
    assert torch.equal(kernel(images[150:], 5, scale="cifar", draws=part), whole[150:])


@pytest.mark.parametrize("name", NAMES)
def test_identical_images_get_independent_draws(name):
    one = to_torch(noise_and_ramps(1, 32, seed=0))
    out = corrupt(one.expand(3, -1, -1, -1).contiguous(), name, 3, generator=seeded(0))
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])


@pytest.mark.parametrize("scale", SCALES)
def test_drawn_and_injected_draws_give_the_same_bytes(scale):
    images = to_torch(noise_and_ramps(2, SCALE_SIZE[scale], seed=5))
    assert torch.equal(get_corruption("frost")(images, 2, scale=scale, generator=seeded(4)),
                       get_corruption("frost")(images, 2, scale=scale, draws=draw_frost(images, scale, seeded(4))))
    assert torch.equal(get_corruption("fog")(images, 2, scale=scale, generator=seeded(4)),
                       get_corruption("fog")(images, 2, scale=scale, draws=draw_fog(images, scale, seeded(4))))


def test_weather_kernels_never_touch_the_global_rng():
    state = torch.random.get_rng_state()
    for name in NAMES:
        corrupt(to_torch(noise_and_ramps(2, 32, seed=0)), name, 4, generator=seeded(0))
    assert torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu_given_the_same_draws(name):
    images = to_torch(noise_and_ramps(4, 32, seed=1))
    draws = draw_frost(images, "cifar", seeded(0)) if name == "frost" else draw_fog(images, "cifar", seeded(0))
    on_cpu = get_corruption(name)(images, 4, scale="cifar", draws=draws)
    cuda_draws = FrostDraws(*(d.cuda() for d in draws)) if name == "frost" else draws.cuda()
    on_gpu = get_corruption(name)(images.cuda(), 4, scale="cifar", draws=cuda_draws)
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)
    generated = corrupt(images.cuda(), name, 4, generator=torch.Generator(device="cuda").manual_seed(0))
    assert generated.device.type == "cuda"
