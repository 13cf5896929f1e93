"""elastic_transform (spec A.13, G11, G12): each step against OpenCV / SciPy, the whole corruption
against the reference run on the same NumPy random stream, and the usual invariants.

OpenCV 5.0 is installed, whose warpAffine uses float coordinates; the released files were made with
OpenCV ≤ 4.x (1/32-px fixed point), corrbench's default. That variant is checked against a NumPy
port of 4.x's integer arithmetic written out below; the float variant against cv2.warpAffine itself.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from skimage.filters import gaussian

from corrbench.corruptions import SCALE_SIZE, SCALES, corrupt, get_corruption, severity_parameters
from corrbench.corruptions.elastic import (
    ElasticDraws, draw_elastic, get_affine_transform, invert_affine, map_coordinates_reflect, smooth_field,
    source_points, warp_affine_opencv4, warp_affine_opencv5,
)
from image_helpers import noise_and_ramps, seeded, to_hwc, to_torch

SEVERITIES = (1, 2, 3, 4, 5)


# ---- OpenCV 4.x warpAffine (G11) in NumPy integers ------------------------------------------------

def reflect101(i: np.ndarray, n: int) -> np.ndarray:
    i = np.abs(i)
    while (i >= n).any():  # fold back and forth until inside (…c b | a b c … | b a …)
        i = np.where(i >= n, 2 * (n - 1) - i, i)
        i = np.abs(i)
    return i


def numpy_warp_affine_opencv4(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """warpAffine(float32 H×W×3, M, INTER_LINEAR, BORDER_REFLECT_101) as OpenCV 4.x computes it."""
    size = image.shape[0]
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22, a12, a21 = m[1, 1] * det, m[0, 0] * det, -m[0, 1] * det, -m[1, 0] * det
    b1 = -a11 * m[0, 2] - a12 * m[1, 2]
    b2 = -a21 * m[0, 2] - a22 * m[1, 2]
    xs = np.arange(size)
    adelta = np.rint(a11 * xs * 1024).astype(np.int64)
    bdelta = np.rint(a21 * xs * 1024).astype(np.int64)
    fraction = np.arange(32, dtype=np.float32) / np.float32(32)  # OpenCV's 1-D table: (1 − f, f), f = i/32
    out = np.empty_like(image)
    for y in range(size):
        big_x = (int(np.rint((a12 * y + b1) * 1024)) + 16 + adelta) >> 5
        big_y = (int(np.rint((a22 * y + b2) * 1024)) + 16 + bdelta) >> 5
        ix, iy, fx, fy = big_x >> 5, big_y >> 5, fraction[big_x & 31], fraction[big_y & 31]
        x0, x1, y0, y1 = reflect101(ix, size), reflect101(ix + 1, size), reflect101(iy, size), reflect101(iy + 1, size)
        gx, gy = np.float32(1) - fx, np.float32(1) - fy
        w = ((gy * gx)[:, None], (gy * fx)[:, None], (fy * gx)[:, None], (fy * fx)[:, None])  # float32 products
        p = image[y0, x0], image[y0, x1], image[y1, x0], image[y1, x1]
        out[y] = ((p[0] * w[0] + p[1] * w[1]) + p[2] * w[2]) + p[3] * w[3]
    return out


# ---- the reference elastic_transform --------------------------------------------------------------

def reference_elastic(u: np.ndarray, c: tuple, rs: np.random.RandomState, warp: str) -> np.ndarray:
    image = np.array(u, dtype=np.float32) / 255.
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rs.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    if warp == "opencv5":
        image = cv2.warpAffine(image, m, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    else:
        image = numpy_warp_affine_opencv4(image, m)
    dx = (gaussian(rs.uniform(-1, 1, size=shape[:2]), c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
    dy = (gaussian(rs.uniform(-1, 1, size=shape[:2]), c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    out = np.clip(ndi.map_coordinates(image, indices, order=1, mode='reflect').reshape(shape), 0, 1) * 255
    return np.uint8(out)


def recorded_draws(batch: int, size: int, seed: int) -> ElasticDraws:
    """The uniforms the reference consumes per image: (3, 2), then (S, S) twice."""
    rs = np.random.RandomState(seed)
    parts = [(rs.random_sample((3, 2)), rs.random_sample((size, size)), rs.random_sample((size, size)))
             for _ in range(batch)]
    return ElasticDraws(*(torch.from_numpy(np.stack(p)) for p in zip(*parts)))


# ---- whole corruption -------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
def test_float_warp_variant_matches_the_reference_on_opencv5(scale):
    size = SCALE_SIZE[scale]
    batch = 4 if scale == "cifar" else (2 if scale == "tiny" else 1)
    for severity, c in zip(SEVERITIES, severity_parameters("elastic_transform", scale)):
        images = noise_and_ramps(batch, size, seed=severity)
        rs = np.random.RandomState(severity)
        expected = np.stack([reference_elastic(u, c, rs, "opencv5") for u in images])
        ours = get_corruption("elastic_transform").fn(
            to_torch(images), severity, scale=scale, draws=recorded_draws(batch, size, severity), warp="opencv5")
        assert np.array_equal(to_hwc(ours), expected), (scale, severity)


@pytest.mark.parametrize("scale", SCALES)
def test_default_fixed_point_variant_matches_the_numpy_opencv4_port(scale):
    size = SCALE_SIZE[scale]
    batch = 2 if scale == "cifar" else 1
    for severity, c in zip(SEVERITIES, severity_parameters("elastic_transform", scale)):
        images = noise_and_ramps(batch, size, seed=20 + severity)
        rs = np.random.RandomState(severity)
        expected = np.stack([reference_elastic(u, c, rs, "opencv4") for u in images])
        ours = get_corruption("elastic_transform")(to_torch(images), severity, scale=scale,
                                                   draws=recorded_draws(batch, size, severity))
        assert np.array_equal(to_hwc(ours), expected), (scale, severity)


def test_fixed_point_warp_matches_the_numpy_port_at_224_with_large_jitter():
    """ImageNet severity 2 jitters the control points by up to 48.8 px, so sources fall far outside."""
    image = noise_and_ramps(2, 224, seed=3)[1].astype(np.float32) / np.float32(255)
    pts1 = np.float32(source_points(224))
    pts2 = (pts1 + np.random.RandomState(0).uniform(-48.8, 48.8, (3, 2)).astype(np.float32)).astype(np.float32)
    m = cv2.getAffineTransform(pts1, pts2)
    ours = warp_affine_opencv4(to_torch(image[None]), invert_affine(torch.from_numpy(m)[None]))
    assert np.array_equal(to_hwc(ours)[0], numpy_warp_affine_opencv4(image, m))


# ---- each step against the library it reproduces ----------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
def test_affine_matrices_are_bit_identical_to_opencv(scale):
    size = SCALE_SIZE[scale]
    jitter = max(c[2] for c in severity_parameters("elastic_transform", scale))
    pts1 = np.float32(source_points(size))
    assert pts1.tolist() == {32: [[26, 26], [26, 6], [6, 6]], 64: [[53, 53], [53, 11], [11, 11]],
                             224: [[186, 186], [186, 38], [38, 38]]}[size]
    pts2 = (pts1 + np.random.RandomState(1).uniform(-jitter, jitter, (300, 3, 2)).astype(np.float32))
    pts2 = pts2.astype(np.float32)
    expected = np.stack([cv2.getAffineTransform(pts1, p) for p in pts2])
    ours = get_affine_transform(size, torch.from_numpy(pts2).double())
    assert np.array_equal(ours.numpy(), expected)
    assert np.array_equal(invert_affine(ours).numpy(), np.stack([cv2.invertAffineTransform(m) for m in expected]))


@pytest.mark.parametrize("size, jitter", [(32, 2.56), (64, 5.12), (224, 48.8)])
def test_float_warp_is_bit_identical_to_cv2_warp_affine(size, jitter):
    rng = np.random.default_rng(size)
    batch = 6 if size < 224 else 2
    images = rng.integers(0, 256, (batch, size, size, 3)).astype(np.float32) / np.float32(255)
    pts1 = np.float32(source_points(size))
    pts2 = (pts1 + rng.uniform(-jitter, jitter, (batch, 3, 2)).astype(np.float32)).astype(np.float32)
    m = np.stack([cv2.getAffineTransform(pts1, p) for p in pts2])
    expected = np.stack([cv2.warpAffine(im, mm, (size, size), borderMode=cv2.BORDER_REFLECT_101)
                         for im, mm in zip(images, m)])
    ours = warp_affine_opencv5(to_torch(images), invert_affine(torch.from_numpy(m)))
    assert np.array_equal(to_hwc(ours), expected)


def test_fixed_point_warp_quantises_positions_to_a_32nd_by_hand():
    """A shift by 1/3 px: OpenCV 4.x samples at rint(1024/3) = 341 → (341 + 16) >> 5 = 11/32 px,
    so out = p·(1 − 11/32) + q·11/32 in float32. The float variant samples at float32(4 + float32(1/3))
    and computes fma(α, q − p, p) with one rounding (exact in float64 here, then rounded once)."""
    ramp = (np.arange(32, dtype=np.float32) ** 2 / np.float32(1024))[None, :].repeat(32, 0)
    image = torch.from_numpy(np.repeat(ramp[None, None], 3, axis=1))
    inverse = torch.tensor([[[1.0, 0.0, 1 / 3], [0.0, 1.0, 0.0]]], dtype=torch.float64)  # src = dst + 1/3
    fixed, floating = warp_affine_opencv4(image, inverse), warp_affine_opencv5(image, inverse)
    p, q = ramp[0, 4], ramp[0, 5]
    assert fixed[0, 0, 7, 4].item() == np.float32(p * (np.float32(1) - np.float32(11 / 32)) + q * np.float32(11 / 32))
    alpha = np.float32(4 + np.float64(np.float32(1 / 3))) - np.float32(4)
    assert floating[0, 0, 7, 4].item() == np.float32(np.float64(alpha) * np.float64(q - p) + np.float64(p))
    assert fixed[0, 0, 7, 4].item() > floating[0, 0, 7, 4].item()  # 11/32 > 1/3 on a rising ramp


@pytest.mark.parametrize("size, sigma", [(32, 6.4), (32, 0.96), (64, 19.2), (224, 170.8), (224, 2.44)])
def test_field_smoothing_matches_scipy_reflect_to_the_float32_the_reference_keeps(size, sigma):
    fields = np.random.default_rng(0).uniform(-1, 1, (4 if size < 224 else 2, size, size))
    expected = np.stack([ndi.gaussian_filter(f, sigma, mode="reflect", truncate=3) for f in fields])
    ours = smooth_field(torch.from_numpy(fields), sigma).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-15)
    alpha = 29.28
    assert np.array_equal((ours * alpha).astype(np.float32), (expected * alpha).astype(np.float32))
    assert torch.equal(smooth_field(torch.from_numpy(fields), 0.0), torch.from_numpy(fields))


@pytest.mark.parametrize("size, spreads", [(32, (0.3, 2.0)), (32, (0.3, 2.0, 40.0, 700.0)), (224, (0.5, 3.0)),
                                           (224, (0.3, 2.0, 40.0, 700.0))])
def test_map_coordinates_is_bit_identical_to_scipy_reflect_far_outside_too(size, spreads):
    """Displacements within one reflection, and far beyond it (several periods out)."""
    rng = np.random.default_rng(size + len(spreads))
    image = rng.uniform(0, 1, (2, size, size, 3)).astype(np.float32)
    spread = rng.choice(spreads, (2, 2, size, size))
    dy, dx = (rng.normal(0, 1, (2, 2, size, size)) * spread).astype(np.float32)
    dy[0, 0, :5] = [-1e-17, -0.0, -1.0, -float(size), size]  # folding edge cases
    if len(spreads) > 2:
        dx[0, 0, :2] = [-2.0 * size - 0.25, 6.0 * size + 0.75]
    expected = []
    for b in range(2):
        x, y, z = np.meshgrid(np.arange(size), np.arange(size), np.arange(3))
        indices = (np.reshape(y + dy[b][..., None], (-1, 1)), np.reshape(x + dx[b][..., None], (-1, 1)),
                   np.reshape(z, (-1, 1)))
        expected.append(ndi.map_coordinates(image[b], indices, order=1, mode="reflect").reshape(size, size, 3))
    grid = torch.arange(size, dtype=torch.float64)
    ours = map_coordinates_reflect(to_torch(image), grid[:, None] + torch.from_numpy(dy).double(),
                                   grid[None, :] + torch.from_numpy(dx).double())
    assert np.array_equal(to_hwc(ours), np.stack(expected))


# ---- constants, draws, invariants -------------------------------------------------------------------

def test_severity_constants_are_the_reference_products():
    assert severity_parameters("elastic_transform", "cifar")[1] == (32 * 0.05, 32 * 0.2, 32 * 0.07)
    assert severity_parameters("elastic_transform", "tiny")[4] == (64 * 0.16, 64 * 0.03, 64 * 0.02)
    assert severity_parameters("elastic_transform", "imagenet")[0] == (244 * 2, 244 * 0.7, 244 * 0.1)  # 244 kept
    assert severity_parameters("elastic_transform", "cifar")[0] == (0, 0, 32 * 0.08)


def test_severity_one_is_the_affine_warp_alone():
    """α = σ = 0: no displacement, but the two fields are still drawn (their draws change nothing)."""
    images = to_torch(noise_and_ramps(2, 32, seed=1))
    draws = draw_elastic(images, seeded(0))
    other = ElasticDraws(draws.affine, torch.rand_like(draws.dx), torch.rand_like(draws.dy))
    elastic = get_corruption("elastic_transform")
    assert torch.equal(elastic(images, 1, scale="cifar", draws=draws), elastic(images, 1, scale="cifar", draws=other))
    jitter = severity_parameters("elastic_transform", "cifar")[0][2]
    targets = torch.tensor(source_points(32)) + (-jitter + (jitter - -jitter) * draws.affine).float()
    warped = warp_affine_opencv4(images.float() / 255, invert_affine(get_affine_transform(32, targets.double())))
    assert torch.equal(elastic(images, 1, scale="cifar", draws=draws), (warped.clamp(0, 1) * 255).floor().byte())


@pytest.mark.parametrize("scale", SCALES)
def test_invariants_for_every_severity(scale):
    size = SCALE_SIZE[scale]
    images = to_torch(noise_and_ramps(2, size, seed=3))
    before = images.clone()
    for severity in SEVERITIES:
        out = corrupt(images, "elastic_transform", severity, scale=scale, generator=seeded(severity))
        assert out.dtype == torch.uint8 and out.shape == images.shape and out.device == images.device
        assert not torch.equal(out, images)
        assert torch.equal(out, corrupt(images, "elastic_transform", severity, scale=scale, generator=seeded(severity)))
        assert not torch.equal(out, corrupt(images, "elastic_transform", severity, scale=scale,
                                            generator=seeded(severity + 10)))
    assert torch.equal(images, before), "the input was modified in place"


def test_channels_last_input_gives_the_same_bytes():
    images = to_torch(noise_and_ramps(2, 32, seed=4))
    strided = images.contiguous(memory_format=torch.channels_last)
    for severity in (1, 4):
        assert torch.equal(corrupt(images, "elastic_transform", severity, generator=seeded(1)),
                           corrupt(strided, "elastic_transform", severity, generator=seeded(1)))


def test_identical_images_get_independent_draws_and_injection_equals_generation():
    one = to_torch(noise_and_ramps(1, 32, seed=0))
    batch = one.expand(3, -1, -1, -1).contiguous()
    out = corrupt(batch, "elastic_transform", 4, generator=seeded(0))
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[1], out[2])
    elastic = get_corruption("elastic_transform")
    assert torch.equal(out, elastic(batch, 4, scale="cifar", draws=draw_elastic(batch, seeded(0))))
    draws = draw_elastic(batch, seeded(0))
    assert draws.affine.shape == (3, 3, 2) and draws.dx.shape == (3, 32, 32) and draws.dy.shape == (3, 32, 32)
    assert draws.dx.dtype == torch.float64


def test_bad_draws_and_warp_names_are_rejected():
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    elastic = get_corruption("elastic_transform")
    with pytest.raises(ValueError, match=r"affine \(2, 3, 2\)"):
        bad = ElasticDraws(torch.rand(2, 6), torch.rand(2, 32, 32), torch.rand(2, 32, 32))
        elastic(images, 2, scale="cifar", draws=bad)
    with pytest.raises(ValueError, match="opencv4"):
        elastic.fn(images, 2, scale="cifar", generator=seeded(0), warp="opencv3")


def test_elastic_never_touches_the_global_rng():
    state = torch.random.get_rng_state()
    corrupt(to_torch(noise_and_ramps(2, 32, seed=0)), "elastic_transform", 5, generator=seeded(0))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_at_224_it_is_a_content_preserving_warp_like_imagecorruptions():
    """imagecorruptions' elastic is another formula (no affine, σ = 0.01·S; spec A.13): only a sanity
    check that both keep the image's mean and contrast and that, at severities 3–5 (where our
    affine jitter is 4.88 px), ours moves pixels by the same order of magnitude."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import imagecorruptions
    rng = np.random.default_rng(0)
    noise = np.stack([ndi.gaussian_filter(a, (6, 6, 0)) for a in rng.normal(0, 1, (2, 224, 224, 3))])
    images = (40 + 175 * (noise - noise.min()) / (noise.max() - noise.min())).astype(np.uint8)
    for severity in (3, 4, 5):
        np.random.seed(severity)
        theirs = np.stack([imagecorruptions.corrupt(im, severity=severity, corruption_name="elastic_transform")
                           for im in images]).astype(float)
        ours = to_hwc(corrupt(to_torch(images), "elastic_transform", severity, generator=seeded(severity))).astype(float)
        for out in (ours, theirs):
            assert abs(out.mean() - images.mean()) < 2 and 0.9 < out.std() / images.std() < 1.1
        moved_ours, moved_theirs = np.abs(ours - images).mean(), np.abs(theirs - images).mean()
        assert 0.5 < moved_ours / moved_theirs < 4, (severity, moved_ours, moved_theirs)  # measured 1.4–1.7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_given_the_same_draws():
    images = to_torch(noise_and_ramps(4, 32, seed=1))
    draws = draw_elastic(images, seeded(0))
    on_cpu = get_corruption("elastic_transform")(images, 4, scale="cifar", draws=draws)
    cuda_draws = ElasticDraws(*(d.cuda() for d in draws))
    on_gpu = get_corruption("elastic_transform")(images.cuda(), 4, scale="cifar", draws=cuda_draws)
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)
