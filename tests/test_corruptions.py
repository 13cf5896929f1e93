"""The corruption engine's contract: API, tables, invariants, seeding, errors."""
from __future__ import annotations

import math

import pytest
import torch

from corrbench.corruptions import (
    ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, SCALE_SIZE, SCALES, Corruption,
    corrupt, get_corruption, list_corruptions, scale_family_for, scale_for_size, severity_parameters,
)
from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError

IMPLEMENTED = list(ALL_CORRUPTIONS)
NOISES = ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]
# Random draws beyond noise: shuffle positions, blur angles, snow layers, frost crops, plasma, warps, liquid layers.
STOCHASTIC = NOISES + ["glass_blur", "motion_blur", "snow", "frost", "fog", "elastic_transform", "spatter"]


def images_for(scale: str, batch: int | None = None, seed: int = 0) -> torch.Tensor:
    """Smooth-ish uint8 test images (a gradient plus mild noise), B×3×S×S."""
    size = SCALE_SIZE[scale]
    batch = batch or (2 if scale == "imagenet" else 3)
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(40, 215, size)
    base = (ramp.view(1, 1, size, 1) + ramp.view(1, 1, 1, size)) / 2
    noise = torch.randint(-25, 26, (batch, 3, size, size), generator=g)
    return (base + noise).clamp(0, 255).to(torch.uint8)


def seeded(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# ---- names, registry, tables ----------------------------------------------------------------------

def test_names_follow_hendrycks():
    assert SCALES == ("cifar", "tiny", "imagenet")
    assert SCALE_SIZE == {"cifar": 32, "tiny": 64, "imagenet": 224}
    assert BENCHMARK_CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
        "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
        "jpeg_compression")
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert ALL_CORRUPTIONS == BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS and len(ALL_CORRUPTIONS) == 19


def test_listing_keeps_the_canonical_order_and_subsets():
    assert list_corruptions() == [n for n in ALL_CORRUPTIONS if n in IMPLEMENTED]
    assert sorted(CORRUPTIONS.names()) == sorted(IMPLEMENTED)
    assert list_corruptions("benchmark") == list(BENCHMARK_CORRUPTIONS)
    assert list_corruptions("extra") == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    assert list_corruptions("noise") == ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]
    assert list_corruptions("blur") == ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"]
    assert list_corruptions("weather") == ["snow", "frost", "fog", "brightness", "spatter"]
    assert list_corruptions("digital") == ["contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"]
    with pytest.raises(UnknownNameError, match="Did you mean 'noise'"):
        list_corruptions("nosie")


def test_records_describe_each_corruption():
    for name in IMPLEMENTED:
        c = get_corruption(name)
        assert isinstance(c, Corruption) and c.name == name
        assert c.stochastic == (name in STOCHASTIC)
        assert c.family in ("noise", "blur", "weather", "digital") and c.parameters and c.spec.startswith("A.")
        for scale in SCALES:
            assert len(severity_parameters(name, scale)) == 5


@pytest.mark.parametrize("name, scale, table", [
    ("gaussian_noise", "cifar", (0.04, 0.06, 0.08, 0.09, 0.10)),
    ("gaussian_noise", "imagenet", (0.08, 0.12, 0.18, 0.26, 0.38)),
    ("shot_noise", "tiny", (250, 100, 50, 30, 15)),
    ("impulse_noise", "tiny", (0.01, 0.02, 0.05, 0.08, 0.14)),
    ("speckle_noise", "cifar", (0.06, 0.10, 0.12, 0.16, 0.20)),
    ("defocus_blur", "imagenet", ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))),
    ("gaussian_blur", "tiny", (0.5, 0.75, 1, 1.25, 1.5)),
    ("brightness", "cifar", (0.05, 0.1, 0.15, 0.2, 0.3)),
    ("contrast", "cifar", (0.75, 0.5, 0.4, 0.3, 0.15)),
    ("saturate", "tiny", ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2))),
    ("saturate", "imagenet", ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))),
    ("jpeg_compression", "imagenet", (25, 18, 15, 10, 7)),
    ("pixelate", "cifar", (0.95, 0.9, 0.85, 0.75, 0.65)),
])
def test_severity_tables_are_the_reference_constants(name, scale, table):
    assert severity_parameters(name, scale) == table


def test_tables_differ_by_scale_where_the_reference_does():
    assert severity_parameters("contrast", "cifar") != severity_parameters("contrast", "tiny")
    assert severity_parameters("pixelate", "tiny") != severity_parameters("pixelate", "imagenet")


# ---- invariants for every corruption × severity × scale -------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", IMPLEMENTED)
def test_invariants(name, scale):
    images = images_for(scale)
    before = images.clone()
    for severity in range(1, 6):
        out = corrupt(images, name, severity, scale=scale, generator=seeded(severity))
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
        assert not torch.equal(out, images), f"{name} s{severity} left the images unchanged"
    assert torch.equal(images, before), "the input was modified in place"


def test_scale_is_inferred_from_the_size_only_when_not_given():
    images = images_for("tiny")
    assert torch.equal(corrupt(images, "contrast", 2), corrupt(images, "contrast", 2, scale="tiny"))
    assert scale_for_size(32) == "cifar" and scale_for_size(64) == "tiny" and scale_for_size(224) == "imagenet"


def test_deterministic_corruptions_ignore_the_generator():
    images = images_for("cifar")
    for name in IMPLEMENTED:
        if name not in STOCHASTIC:
            a = corrupt(images, name, 3, generator=seeded(1))
            b = corrupt(images, name, 3)
            assert torch.equal(a, b), name


def test_channels_last_and_views_give_the_same_bytes():
    images = images_for("cifar")
    strided = images.contiguous(memory_format=torch.channels_last)
    for name in IMPLEMENTED:
        assert torch.equal(corrupt(images, name, 4, generator=seeded(3)),
                           corrupt(strided, name, 4, generator=seeded(3))), name


def test_empty_batch_passes_through():
    empty = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    for name in IMPLEMENTED:
        assert corrupt(empty, name, 1, generator=seeded(0)).shape == (0, 3, 32, 32)


# ---- randomness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NOISES)
def test_same_seed_same_bytes_different_seed_different_bytes(name):
    images = images_for("cifar", batch=2)
    a = corrupt(images, name, 3, generator=seeded(7))
    b = corrupt(images, name, 3, generator=seeded(7))
    c = corrupt(images, name, 3, generator=seeded(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", NOISES)
def test_identical_images_in_one_batch_get_independent_noise(name):
    one = images_for("cifar", batch=1)
    out = corrupt(one.expand(2, -1, -1, -1).contiguous(), name, 3, generator=seeded(0))
    assert not torch.equal(out[0], out[1])


def test_corruptions_never_touch_the_global_rng():
    state = torch.random.get_rng_state()
    for name in NOISES:
        corrupt(images_for("cifar"), name, 5, generator=seeded(0))
    assert torch.equal(torch.random.get_rng_state(), state)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(255 ** 2 / mse)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", NOISES)
def test_noise_psnr_falls_with_severity(name, scale):
    """Every noise table grows strictly harder with severity at every scale, so PSNR strictly falls."""
    images = images_for(scale, batch=2)
    values = [psnr(corrupt(images, name, s, scale=scale, generator=seeded(s)), images) for s in range(1, 6)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_gaussian_noise_has_the_table_sigma():
    """Away from the clip, the per-pixel error is N(0, σ) in units of 1/255 (truncation adds −0.5 on average)."""
    images = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)
    out = corrupt(images, "gaussian_noise", 2, scale="tiny", generator=seeded(0))  # σ = 0.08
    error = (out.double() - 128) / 255
    assert error.std().item() == pytest.approx(0.08, rel=0.03)


def test_impulse_noise_replaces_the_table_fraction():
    images = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)
    out = corrupt(images, "impulse_noise", 5, scale="tiny", generator=seeded(0))  # amount 0.14
    replaced = (out != 128)
    assert replaced.double().mean().item() == pytest.approx(0.14, abs=0.01)
    assert set(out[replaced].unique().tolist()) == {0, 255}
    assert (out == 255).double().mean().item() == pytest.approx(0.07, abs=0.01)


def test_shot_noise_is_poisson():
    """Poisson(x·c)/c: mean x and variance x/c, here c = 50 at x = 128/255 (tiny, severity 3)."""
    images = torch.full((4, 3, 64, 64), 128, dtype=torch.uint8)
    out = corrupt(images, "shot_noise", 3, scale="tiny", generator=seeded(0))
    x = 128 / 255
    counts = (out.double() / 5.1).round()  # out = trunc(5.1·k) lies in (5.1·k − 1, 5.1·k]: rounding recovers k
    assert counts.mean().item() == pytest.approx(x * 50, rel=0.02)
    assert counts.var().item() == pytest.approx(x * 50, rel=0.06)


# ---- draws ----------------------------------------------------------------------------------------

def test_injected_draws_replace_the_generator():
    images = images_for("cifar", batch=2)
    z = torch.zeros(images.shape, dtype=torch.float64)
    assert torch.equal(get_corruption("gaussian_noise")(images, 5, scale="cifar", draws=z), images)
    counts = torch.full(images.shape, 500.0)  # k = c everywhere → every value becomes 1.0 → 255
    assert (get_corruption("shot_noise")(images, 1, scale="cifar", draws=counts) == 255).all()
    flip = torch.ones(images.shape)  # never ≤ amount
    assert torch.equal(get_corruption("impulse_noise")(images, 5, scale="cifar", draws=(flip, flip)), images)


def test_bad_draws_are_programming_errors():
    images = images_for("cifar", batch=2)
    with pytest.raises(ValueError, match="images' shape"):
        get_corruption("speckle_noise")(images, 1, scale="cifar", draws=torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="pair"):
        get_corruption("impulse_noise")(images, 1, scale="cifar", draws=torch.zeros(images.shape))
    with pytest.raises(ValueError, match="deterministic"):
        get_corruption("contrast")(images, 1, scale="cifar", draws=torch.zeros(images.shape))


# ---- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True, "3"])
def test_severity_outside_one_to_five(severity):
    with pytest.raises(InvalidValueError, match="severity must be an integer from 1 to 5"):
        corrupt(images_for("cifar"), "contrast", severity)


def test_unknown_corruption_suggests_the_closest_name():
    with pytest.raises(UnknownNameError, match="Did you mean 'gaussian_noise'") as info:
        corrupt(images_for("cifar"), "gausian_noise", 1)
    assert "valid corruptions" in str(info.value).lower() and "\n" not in str(info.value)


def test_unknown_scale():
    with pytest.raises(UnknownNameError, match="Did you mean 'cifar'"):
        corrupt(images_for("cifar"), "contrast", 1, scale="cifra")


def test_any_size_takes_the_family_nearest_to_its_shorter_side():
    # the constants of a family apply at any size; without `scale` the shorter side picks the family
    # nearest on a log scale (boundaries √(32·64) ≈ 45 px and √(64·224) ≈ 120 px)
    odd = torch.randint(0, 256, (1, 3, 28, 36), dtype=torch.uint8, generator=seeded(0))
    assert torch.equal(corrupt(odd, "contrast", 1), corrupt(odd, "contrast", 1, scale="cifar"))
    for (height, width), family in (((45, 300), "cifar"), ((46, 46), "tiny"), ((119, 200), "tiny"),
                                    ((120, 120), "imagenet"), ((32, 32), "cifar"), ((64, 64), "tiny"),
                                    ((224, 224), "imagenet")):
        assert scale_family_for(height, width) == family
    assert corrupt(images_for("tiny"), "contrast", 1, scale="imagenet").shape == (3, 3, 64, 64)
    with pytest.raises(InvalidValueError, match="sizes that fit"):
        scale_for_size(28)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 3, 32, 32), "must be uint8"),
    (torch.zeros(3, 32, 32, dtype=torch.uint8), "B×3×H×W"),
    (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), "B×3×H×W"),
    (torch.zeros(2, 3, 32, 15, dtype=torch.uint8), "at least 16×16 px"),
])
def test_wrong_layout(bad, message):
    with pytest.raises(LayoutError, match=message):
        corrupt(bad, "brightness", 1, scale="cifar")


def test_stochastic_corruption_requires_a_generator_on_the_images_device():
    images = images_for("cifar")
    with pytest.raises(ValueError, match="stochastic: pass a torch.Generator"):
        corrupt(images, "gaussian_noise", 1)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="the generator is on cuda"):
            corrupt(images, "gaussian_noise", 1, generator=seeded(0, "cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_keeps_the_device_and_matches_the_cpu_for_deterministic_corruptions():
    images = images_for("cifar")
    for name in IMPLEMENTED:
        out = corrupt(images.cuda(), name, 3, generator=seeded(0, "cuda"))
        assert out.device.type == "cuda" and out.dtype == torch.uint8
        if name not in STOCHASTIC:
            diff = (out.cpu().int() - corrupt(images, name, 3).int()).abs()
            assert diff.max() <= 1 and (diff > 0).double().mean() < 0.005, name
