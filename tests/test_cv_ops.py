"""corrbench's batched OpenCV primitives (spec G13–G15) against OpenCV itself and hand-computed cases.

The installed cv2 is OpenCV 5.0. Canny, equalizeHist, blur and filter2D must match it byte for byte.
distanceTransform changed in 5.0 (float32 costs 1, 1.4f, 2.1969f instead of the 16.16 fixed point of
every OpenCV up to 4.x, which the reference generators ran on), so the chamfer distance is checked
exactly against a plain-Python transcription of the fixed-point two-pass algorithm of spec G14, and
against cv2 5.0 to within its float32 rounding.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from corrbench.corruptions import cv_ops

EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))
SHAPES = [(3, 32, 32), (2, 64, 64), (1, 224, 224), (4, 7, 11)]


def per_map(fn, maps: np.ndarray) -> np.ndarray:
    return np.stack([fn(m) for m in maps])


def liquid_maps(count: int, size: int, mean: float, std: float, blur: float, threshold: float,
                seed: int) -> np.ndarray:
    """uint8 maps shaped like spatter's thresholded liquid layer (blobs of 178–255, some wrapped)."""
    rng = np.random.default_rng(seed)
    layers = np.stack([ndi.gaussian_filter(rng.normal(mean, std, (size, size)), blur, mode="nearest")
                       for _ in range(count)])
    layers[layers < threshold] = 0
    return (layers * 255).astype(np.uint8)


# ---- borders and small helpers ----------------------------------------------------------------------

@pytest.mark.parametrize("radius", [1, 2])
def test_pads_match_numpy(radius):
    x = np.random.default_rng(0).integers(0, 100, (2, 5, 6)).astype(np.int32)
    t = torch.from_numpy(x)
    width = ((0, 0), (radius, radius), (radius, radius))
    assert np.array_equal(cv_ops.pad_reflect101(t, radius).numpy(), np.pad(x, width, mode="reflect"))
    assert np.array_equal(cv_ops.pad_replicate(t, radius).numpy(), np.pad(x, width, mode="edge"))


def test_box_sum3_by_hand():
    x = torch.tensor([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
    # REFLECT_101: the corner (0, 0) sees rows 1,0,1 and columns 1,0,1.
    corner = 5 + 4 + 5 + 2 + 1 + 2 + 5 + 4 + 5
    out = cv_ops.box_sum3(x)
    assert out[0, 0, 0].item() == corner
    assert out[0, 1, 1].item() == 45


@pytest.mark.parametrize("divisor, largest", [(9, 180), (18, 4599), (7, 1000), (3, 65535)])
def test_floor_divide_is_exact_over_its_whole_range(divisor, largest):
    x = torch.arange(largest + 1, dtype=torch.int32)
    assert torch.equal(cv_ops.floor_divide(x, divisor, largest), torch.div(x, divisor, rounding_mode="floor"))


# ---- G15: blurs, filter2D, equalizeHist -------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_blurs_and_filter2d_match_opencv(shape):
    rng = np.random.default_rng(sum(shape))
    u8 = rng.integers(0, 256, shape, dtype=np.uint8)
    f32 = rng.random(shape, dtype=np.float32)
    distances = (rng.integers(0, 20 * 65536 + 1, shape) / 65536).astype(np.float32)  # spatter's capped map
    distances[:, : shape[1] // 2] = 20.0
    assert np.array_equal(cv_ops.blur3_uint8(torch.from_numpy(u8)).numpy(), per_map(lambda m: cv2.blur(m, (3, 3)), u8))
    for floats in (f32, distances):
        assert np.array_equal(cv_ops.blur3_float32(torch.from_numpy(floats)).numpy(),
                              per_map(lambda m: cv2.blur(m, (3, 3)), floats))
    for kernel in (EMBOSS, ((0, -1, 0), (-1, 4, -1), (0, -1, 0)), ((1, 2, 1), (2, 4, 2), (1, 2, 1))):
        expected = per_map(lambda m: cv2.filter2D(m, cv2.CV_8U, np.array(kernel)), u8)
        assert np.array_equal(cv_ops.filter2d_uint8(torch.from_numpy(u8), kernel).numpy(), expected), kernel


def test_equalize_hist_matches_opencv():
    rng = np.random.default_rng(1)
    full = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    few_levels = rng.integers(3, 21, (3, 64, 64), dtype=np.uint8)  # like spatter's blurred distance
    skewed = np.where(rng.random((2, 32, 32)) < 0.97, 20, rng.integers(0, 20, (2, 32, 32))).astype(np.uint8)
    two_levels = np.zeros((1, 8, 8), np.uint8)
    two_levels[0, :3] = 200
    for maps in (full, few_levels, skewed, two_levels):
        assert np.array_equal(cv_ops.equalize_hist(torch.from_numpy(maps)).numpy(), per_map(cv2.equalizeHist, maps))


def test_equalize_hist_of_a_constant_map_is_that_constant():
    """OpenCV's special case: a one-level map stays at its level (there is nothing to spread)."""
    maps = torch.stack([torch.full((16, 16), v, dtype=torch.uint8) for v in (0, 7, 20, 255)])
    out = cv_ops.equalize_hist(maps)
    assert torch.equal(out, maps)
    assert np.array_equal(out.numpy(), per_map(cv2.equalizeHist, maps.numpy()))


# ---- G13: Canny -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_canny_matches_opencv_on_random_maps(shape):
    maps = np.random.default_rng(shape[1]).integers(0, 256, shape, dtype=np.uint8)
    expected = per_map(lambda m: cv2.Canny(m, 50, 150), maps) == 255
    assert np.array_equal(cv_ops.canny_l1(torch.from_numpy(maps), 50, 150).numpy(), expected)


@pytest.mark.parametrize("size, mean, std, blur, threshold", [
    (32, 0.62, 0.1, 0.7, 0.7), (32, 0.65, 0.1, 0.8, 0.7), (32, 0.65, 0.3, 1, 0.69),
    (64, 0.65, 0.3, 1, 0.69), (224, 0.65, 0.3, 2, 0.68),
])
def test_canny_matches_opencv_on_liquid_layers(size, mean, std, blur, threshold):
    maps = liquid_maps(6 if size < 224 else 1, size, mean, std, blur, threshold, seed=size)
    expected = per_map(lambda m: cv2.Canny(m, 50, 150), maps) == 255
    assert np.array_equal(cv_ops.canny_l1(torch.from_numpy(maps), 50, 150).numpy(), expected)


def test_canny_smooth_ramps_need_the_hysteresis_flood():
    """Gentle ramps give long chains of weak candidates that only hysteresis can keep or drop."""
    rng = np.random.default_rng(3)
    ramp = np.add.outer(np.arange(32), np.arange(32)) * 2.0
    maps = np.stack([np.clip(ramp * rng.uniform(0.5, 1.5) + rng.normal(0, 6, (32, 32)), 0, 255)
                     for _ in range(6)]).astype(np.uint8)
    maps[:, 10:20, 10:20] = 255  # a plateau: strong edges joined to the weak ones
    expected = per_map(lambda m: cv2.Canny(m, 50, 150), maps) == 255
    edges = cv_ops.canny_l1(torch.from_numpy(maps), 50, 150)
    assert np.array_equal(edges.numpy(), expected)
    assert expected.any()


def test_canny_of_a_flat_map_has_no_edges():
    flat = torch.full((2, 16, 16), 180, dtype=torch.uint8)
    assert not cv_ops.canny_l1(flat, 50, 150).any()


def test_hysteresis_keeps_weak_chains_touching_a_strong_pixel():
    candidates = torch.zeros(1, 6, 8, dtype=torch.bool)
    strong = torch.zeros_like(candidates)
    candidates[0, 1, 1:5] = True      # a weak row …
    candidates[0, 2, 5] = True        # … continued diagonally …
    strong[0, 1, 1] = True            # … anchored by one strong pixel at its start
    candidates[0, 4, 7] = True        # isolated weak pixel: dropped
    strong[0, 4, 0] = True            # "strong" but not a candidate: not an edge
    edges = cv_ops.hysteresis(candidates, strong)
    expected = torch.zeros_like(candidates)
    expected[0, 1, 1:5] = True
    expected[0, 2, 5] = True
    assert torch.equal(edges, expected)


def test_dilate8_by_hand():
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 0, 0] = True
    mask[0, 3, 4] = True
    out = cv_ops.dilate8(mask)
    assert out.sum().item() == 8
    assert out[0, :2, :2].all() and out[0, 2:, 3:].all()


# ---- G14: the chamfer distance ----------------------------------------------------------------------

def chamfer_reference(src: np.ndarray) -> np.ndarray:
    """Spec G14 (OpenCV ≤ 4.x `distanceTransform(src, DIST_L2, 5)`): two raster passes over 16.16 fixed
    point, costs a = 65536, b = 91750, c = 143976, INT_MAX outside; result capped at INT_MAX >> 2."""
    a, b, c = 65536, 91750, 143976
    h, w = src.shape
    t = [[2 ** 31 - 1] * (w + 4) for _ in range(h + 4)]
    zero = (src == 0).tolist()
    for i in range(h):
        r0, r1, r2 = t[i + 2], t[i + 1], t[i]
        for j in range(2, w + 2):
            r0[j] = 0 if zero[i][j - 2] else min(
                r2[j - 1] + c, r2[j + 1] + c, r1[j - 2] + c, r1[j - 1] + b, r1[j] + a, r1[j + 1] + b,
                r1[j + 2] + c, r0[j - 1] + a)
    for i in range(h - 1, -1, -1):
        r0, r1, r2 = t[i + 2], t[i + 3], t[i + 4]
        for j in range(w + 1, 1, -1):
            if r0[j] > a:
                r0[j] = min(r0[j], r2[j + 1] + c, r2[j - 1] + c, r1[j + 2] + c, r1[j + 1] + b, r1[j] + a,
                            r1[j - 1] + b, r1[j - 2] + c, r0[j + 1] + a)
    return np.minimum(np.array([row[2:w + 2] for row in t[2:h + 2]], dtype=np.int64), (2 ** 31 - 1) >> 2)


def test_chamfer_costs_by_hand():
    src = np.full((1, 7, 7), 255, np.uint8)
    src[0, 3, 3] = 0
    fixed = cv_ops.chamfer_distance_fixed(torch.from_numpy(src == 0))[0]
    assert fixed[3, 3].item() == 0
    assert fixed[3, 4].item() == fixed[2, 3].item() == 65536       # one step: 1
    assert fixed[2, 2].item() == fixed[4, 4].item() == 91750       # one diagonal: 1.4
    assert fixed[1, 2].item() == fixed[4, 5].item() == 143976      # one knight move: 2.1969
    assert fixed[0, 0].item() == 3 * 91750                          # three diagonals
    assert fixed[0, 3].item() == 3 * 65536


@pytest.mark.parametrize("shape", [(32, 32), (64, 64), (7, 11), (40, 17)])
@pytest.mark.parametrize("density", [0.002, 0.03, 0.3])
def test_chamfer_matches_the_fixed_point_two_pass_algorithm(shape, density):
    rng = np.random.default_rng(int(density * 1000) + shape[1])
    src = np.where(rng.random((3,) + shape) < density, 0, 255).astype(np.uint8)
    src[0, 0, 0] = 0  # at least one source in the first map
    expected = per_map(chamfer_reference, src)
    assert np.array_equal(cv_ops.chamfer_distance_fixed(torch.from_numpy(src == 0)).numpy(), expected)


def test_chamfer_on_spatter_edges_at_224():
    edges = cv_ops.canny_l1(torch.from_numpy(liquid_maps(1, 224, 0.65, 0.3, 3, 0.68, seed=9)), 50, 150)
    expected = chamfer_reference(np.where(edges[0].numpy(), 0, 255).astype(np.uint8))
    assert np.array_equal(cv_ops.chamfer_distance_fixed(edges)[0].numpy(), expected)


def test_chamfer_cap_is_exact_and_no_source_means_the_cap():
    rng = np.random.default_rng(4)
    src = np.where(rng.random((2, 32, 32)) < 0.01, 0, 255).astype(np.uint8)
    src[1] = 255  # no source at all
    sources = torch.from_numpy(src == 0)
    full = cv_ops.chamfer_distance_fixed(sources)
    assert (full[1] == cv_ops.CHAMFER_MAX).all()
    for cap in (20 * 65536, 3 * 65536 + 5):
        assert torch.equal(cv_ops.chamfer_distance_fixed(sources, cap=cap), full.clamp(max=cap))


def test_distance_transform_is_the_fixed_point_scaled_and_close_to_opencv5():
    rng = np.random.default_rng(5)
    src = np.where(rng.random((3, 32, 32)) < 0.02, 0, 255).astype(np.uint8)
    src[:, 0, 0] = 0
    ours = cv_ops.distance_transform_l2_mask5(torch.from_numpy(src)).numpy()
    fixed = per_map(chamfer_reference, src)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, fixed.astype(np.float32) * np.float32(2.0 ** -16))
    opencv5 = per_map(lambda m: cv2.distanceTransform(m, cv2.DIST_L2, 5), src)
    np.testing.assert_allclose(ours, opencv5, rtol=3e-5, atol=0)
