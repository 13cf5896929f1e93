"""MNIST-C: each corruption against a NumPy/scipy/skimage port of the reference (google-research/mnist-c
`corruptions.py`, spec Part C) given the same draws; invariants; the official layout; evaluation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from skimage import feature, transform

from corrbench.data.imageset import grey28_to_rgb32
from corrbench.data.mnistc import (IMAGES_FILE, LABELS_FILE, clean_digits, generate_mnistc_chunk, make_mnistc,
                                   open_mnistc_suite)
from corrbench.data.datasets import load_dataset
from corrbench.errors import InvalidValueError, LayoutError, UnknownNameError
from corrbench.mnistc import MNISTC, MNISTC_CORRUPTIONS, corrupt_digits
from corrbench.mnistc.geometry import rotation_matrix, scale_matrix, shear_matrix
from corrbench.mnistc.lines import line_layer


def reference_round(x: np.ndarray) -> np.ndarray:
    """The reference returns float32; the released data is np.round(x).astype(uint8)."""
    return np.round(np.asarray(x).astype(np.float32)).astype(np.uint8)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """Six real mnist5k test digits plus an all-black and an all-white one."""
    real = clean_digits(load_dataset("mnist5k", "test"))[:6]
    return torch.cat([real, torch.zeros(1, 28, 28, dtype=torch.uint8), torch.full((1, 28, 28), 255, dtype=torch.uint8)])


def gaussian_rows(x: np.ndarray, sigma: float) -> np.ndarray:
    # skimage gaussian(x, σ, multichannel=True) on a 2-D image: σ on axis 0 only
    return ndi.gaussian_filter(x, (sigma, 0), mode="nearest", truncate=4.0)


def test_registry_has_the_15_corruptions_and_rejects_bad_input(digits):
    assert sorted(MNISTC.names()) == sorted(MNISTC_CORRUPTIONS) and len(MNISTC_CORRUPTIONS) == 15
    with pytest.raises(UnknownNameError, match="shot_noise"):
        corrupt_digits(digits, "shot_nois", generator=torch.Generator())
    with pytest.raises(LayoutError):
        corrupt_digits(grey28_to_rgb32(digits), "stripe")
    with pytest.raises(ValueError, match="Generator"):
        corrupt_digits(digits, "shear")


def test_shot_and_impulse_noise_given_draws(digits):
    x = digits.numpy() / 255.0
    rng = np.random.default_rng(0)
    counts = rng.poisson(x * 3)
    expected = reference_round(np.clip(counts / 3.0, 0, 1) * 255)
    got = corrupt_digits(digits, "shot_noise", draws=torch.from_numpy(counts))
    assert np.array_equal(got.numpy(), expected)
    flip, salt = rng.random(x.shape), rng.random(x.shape)
    out = x.copy()
    out[(flip <= 0.17) & (salt <= 0.5)] = 1
    out[(flip <= 0.17) & (salt > 0.5)] = 0
    got = corrupt_digits(digits, "impulse_noise", draws=(torch.from_numpy(flip), torch.from_numpy(salt)))
    assert np.array_equal(got.numpy(), reference_round(np.clip(out, 0, 1) * 255))


def glass_reference(image: np.ndarray, coins: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The reference loop on a 2-D array (a true swap: indexing a 2-D array gives scalars)."""
    x = np.uint8(gaussian_rows(image / 255.0, 0.7) * 255)
    for it in range(2):
        for h in range(27, 1, -1):
            for w in range(27, 1, -1):
                if coins[it, 27 - h, 27 - w]:
                    dx, dy = offsets[it, 27 - h, 27 - w]
                    x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
    return reference_round(np.clip(gaussian_rows(x / 255.0, 0.7), 0, 1) * 255)


def test_glass_blur_matches_the_reference_loop(digits):
    rng = np.random.default_rng(1)
    b = digits.shape[0]
    coins = rng.random((b, 2, 26, 26)) < 0.5
    offsets = rng.integers(-1, 1, (b, 2, 26, 26, 2))
    got = corrupt_digits(digits, "glass_blur", draws=(torch.from_numpy(coins), torch.from_numpy(offsets)))
    for i in range(b):
        assert np.array_equal(got[i].numpy(), glass_reference(digits[i].numpy(), coins[i], offsets[i]))


def _warp_reference(image: np.ndarray, m: tuple[float, ...]) -> np.ndarray:
    params = np.array([[m[0], m[1], m[2]], [m[3], m[4], m[5]], [0, 0, 1]])
    out = transform.warp(image / 255.0, inverse_map=transform.AffineTransform(matrix=params))
    return reference_round(np.clip(out, 0, 1) * 255)


def test_geometric_transforms_match_skimage_warp(digits):
    signs = torch.tensor([1, -1, 1, -1, -1, 1, 1, -1])
    for name, matrix in (("shear", shear_matrix), ("rotate", rotation_matrix)):
        got = corrupt_digits(digits, name, draws=signs)
        for i in range(digits.shape[0]):
            assert np.array_equal(got[i].numpy(), _warp_reference(digits[i].numpy(), matrix(0.4 * int(signs[i]))))
    got = corrupt_digits(digits, "scale")
    for i in range(digits.shape[0]):
        assert np.array_equal(got[i].numpy(), _warp_reference(digits[i].numpy(), scale_matrix(1 / .7)))
    # old skimage's shear matrix, and the fixed centre
    assert shear_matrix(0.4)[:2] == (1.0, -math.sin(0.4)) and shear_matrix(0.4)[4] == math.cos(0.4)
    pairs = torch.tensor([[1, -1], [-1, 1], [1, 1], [-1, -1]] * 2)
    got = corrupt_digits(digits, "translate", draws=pairs)
    for i in range(digits.shape[0]):
        dx, dy = 3 * int(pairs[i, 0]), 3 * int(pairs[i, 1])
        expected = np.zeros((28, 28), np.uint8)
        # output (r, c) = input (r + dy, c + dx), zero outside
        for r in range(28):
            for c in range(28):
                if 0 <= r + dy < 28 and 0 <= c + dx < 28:
                    expected[r, c] = digits[i, r + dy, c + dx]
        assert np.array_equal(got[i].numpy(), expected)


def test_brightness_stripe_and_canny_match_the_reference():
    from skimage import color
    every = torch.arange(256, dtype=torch.uint8).repeat(4)[:28 * 28].view(1, 28, 28)
    x = every[0].numpy() / 255.0
    hsv = color.rgb2hsv(color.gray2rgb(x))
    hsv[:, :, 2] = np.clip(hsv[:, :, 2] + 0.5, 0, 1)
    expected = reference_round(np.clip(color.rgb2gray(color.hsv2rgb(hsv)), 0, 1) * 255)
    assert np.array_equal(corrupt_digits(every, "brightness")[0].numpy(), expected)
    striped = every[0].numpy().astype(np.float32)
    striped[:, :7] = 255 - striped[:, :7]
    striped[:, 21:] = 255 - striped[:, 21:]
    assert np.array_equal(corrupt_digits(every, "stripe")[0].numpy(), reference_round(striped))
    digit = clean_digits(load_dataset("mnist5k", "test"))[:2]
    edges = corrupt_digits(digit, "canny_edges")
    for i in range(2):
        assert np.array_equal(edges[i].numpy(), feature.canny(digit[i].numpy() / 255.0).astype(np.uint8) * 255)
    assert set(edges.unique().tolist()) <= {0, 255} and edges.any()


def plasma_reference(uniforms: np.ndarray, mapsize: int = 256, decay: float = 1.4) -> np.ndarray:
    m = np.zeros((mapsize, mapsize))
    step, wibble, used = mapsize, 100.0, 0

    def wibbled(total):
        nonlocal used
        r = uniforms[used:used + total.size].reshape(total.shape)
        used += total.size
        return total / 4 + wibble * (-wibble + 2 * wibble * r)

    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        squares = corners + np.roll(corners, -1, 0)
        squares = squares + np.roll(squares, -1, 1)
        m[half::step, half::step] = wibbled(squares)
        centres, corners = m[half::step, half::step], m[0::step, 0::step]
        m[0::step, half::step] = wibbled((centres + np.roll(centres, 1, 0)) + (corners + np.roll(corners, -1, 1)))
        m[half::step, 0::step] = wibbled((centres + np.roll(centres, 1, 1)) + (corners + np.roll(corners, -1, 0)))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def test_fog_and_spatter_given_draws(digits):
    rng = np.random.default_rng(2)
    sample = digits[:3]
    uniforms = rng.random((3, 256 * 256 - 1))
    got = corrupt_digits(sample, "fog", draws=torch.from_numpy(uniforms))
    for i in range(3):
        x = sample[i].numpy() / 255.0
        peak = x.max()
        x = x + 3.0 * plasma_reference(uniforms[i])[:28, :28]
        assert np.array_equal(got[i].numpy(), reference_round(np.clip(x * peak / (peak + 3.0), 0, 1) * 255))
    z = rng.standard_normal((8, 28, 28))
    got = corrupt_digits(digits, "spatter", draws=torch.from_numpy(z))
    for i in range(8):
        x = digits[i].numpy().astype(np.float32) / 255.0
        liquid = ndi.gaussian_filter(0.65 + 0.3 * z[i], 1, mode="nearest", truncate=4.0)
        liquid[liquid < 0.65] = 0
        m = ndi.gaussian_filter(np.where(liquid > 0.65, 1, 0).astype(np.float32), 1.5, mode="nearest", truncate=4.0)
        m[m < 0.8] = 0
        colour = 63 / 255.0 * np.ones_like(x) * m
        x *= 1 - m
        assert np.array_equal(got[i].numpy(), reference_round(np.clip(x + colour, 0, 1) * 255))
    assert (got[:6] != digits[:6]).any()


def test_dotted_line_and_zigzag_match_the_reference_loops(digits):
    x = digits.numpy() / 255.0
    rows = torch.tensor([[0, 26], [26, 0], [13, 13], [5, 9], [20, 3], [1, 1], [7, 25], [11, 10]])
    got = corrupt_digits(digits, "dotted_line", draws=rows)
    for i, (r0, r1) in enumerate(rows.tolist()):
        layer = line_layer(0, r0, 27, r1)
        for j in range(1, 15, 2):
            layer[:, 2 * (j - 1):2 * j] = 0
        assert np.array_equal(got[i].numpy(), reference_round(np.clip(x[i] + layer, 0, 1) * 255))
    draws = torch.tensor([[0, -5], [26, 4], [13, 0], [5, -1], [20, 3], [1, -3], [7, 2], [11, 1]])
    got = corrupt_digits(digits, "zigzag", draws=draws)
    for i, (r0, k) in enumerate(draws.tolist()):
        theta = np.arctan(k / 23)
        d = 23 / np.cos(theta)
        points = [(0, 0)]
        for n in range(int((d - 2.0) // 4.0) + 1):
            r_n = (-1) ** n * 2.0
            points.append(((2 * n + 1) * 2.0, r_n))
        if d != 4.0 * (d // 4.0):
            points.append((d, r_n / (2 * (d - 4.0 * (d // 4.0)))))
        cs, rs = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]).dot(np.array(points).T)
        cs, rs = cs + 2, rs + r0
        y = x[i].copy()
        for s in range(1, len(cs)):
            y = np.clip(y + line_layer(cs[s - 1], rs[s - 1], cs[s], rs[s]), 0, 1)
        assert np.array_equal(got[i].numpy(), reference_round(y * 255))
    # the anti-aliased profile: full value on the line, zero beyond 1.454 px
    flat = line_layer(0, 10, 27, 10)
    assert flat[10, 5] == 1.0 and flat[12, 5] == 0.0 and 0 < flat[11, 5] < 1 and not flat[:, 27].any()


@pytest.mark.parametrize("name", [n for n in MNISTC_CORRUPTIONS if MNISTC.get(n).stochastic])
def test_seeds_reproduce_bytes_and_images_get_independent_draws(name, digits):
    same = digits[:1].expand(4, 28, 28).contiguous()
    one = corrupt_digits(same, name, generator=torch.Generator().manual_seed(5))
    two = corrupt_digits(same.unsqueeze(1), name, generator=torch.Generator().manual_seed(5))
    assert one.dtype == torch.uint8 and one.shape == (4, 28, 28) and two.shape == (4, 1, 28, 28)
    assert torch.equal(one, two.squeeze(1))
    many = torch.cat([same] * 4)   # 16 copies of one digit: not all the same output
    out = corrupt_digits(many, name, generator=torch.Generator().manual_seed(6))
    assert any(not torch.equal(out[0], out[i]) for i in range(1, 16))


def test_make_mnistc_layout_round_trips_and_suite_serves_32px_rgb(tmp_path):
    chosen = ["stripe", "translate"]
    written = make_mnistc("mnist5k", tmp_path / "mnist5k_c", seed=3, corruptions=chosen)
    clean = load_dataset("mnist5k", "test")
    digits = clean_digits(clean)
    for corruption in chosen:
        images = np.load(tmp_path / "mnist5k_c" / corruption / IMAGES_FILE)
        labels = np.load(tmp_path / "mnist5k_c" / corruption / LABELS_FILE)
        assert images.shape == (1000, 28, 28, 1) and images.dtype == np.uint8
        assert np.array_equal(labels, clean.labels.numpy())
        assert np.array_equal(images[..., 0], generate_mnistc_chunk(digits, corruption, 3, torch.device("cpu"), 0).numpy())
    assert written.images == 2000 and sorted(p.name for p in (tmp_path / "mnist5k_c").iterdir()) == sorted(chosen)
    with pytest.raises(Exception, match="not empty"):
        make_mnistc("mnist5k", tmp_path / "mnist5k_c", corruptions=chosen)
    files = open_mnistc_suite("mnist5k-mnistc", tmp_path, source="files", corruptions=chosen)
    generated = open_mnistc_suite("mnist5k-mnistc", tmp_path, source="generated", seed=3, corruptions=chosen)
    assert files.severities == [1] and len(files) == 3 and files.spec.kind == "c"
    for a, b in zip(files.parts(), generated.parts()):
        assert (a.corruption, a.severity) == (b.corruption, b.severity)
        assert torch.equal(torch.cat([x for x, _ in a.batches(300)]), torch.cat([x for x, _ in b.batches(1000)]))
    part = list(files.parts())[1]
    assert part.benchmark and next(part.batches(5))[0].shape == (5, 3, 32, 32)
    with pytest.raises(InvalidValueError, match="one fixed severity"):
        open_mnistc_suite("mnist5k-mnistc", tmp_path, severities=[2])
    with pytest.raises(LayoutError, match="missing"):
        open_mnistc_suite("mnist5k-mnistc", tmp_path, source="files")


def test_one_epoch_mnist_cnn_evaluated_on_mnist5k_mnistc(tmp_path):
    from corrbench.config import RunConfig
    from corrbench.engine.evaluate import collect_stats, metric_row
    from corrbench.progress import null_progress
    from corrbench.engine.runs import load_run
    from corrbench.engine.train import train
    result = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", epochs=1, batch_size=200, holdout=3000,
                             device="cpu"), runs_dir=tmp_path / "runs")
    run = load_run(result.run_dir, torch.device("cpu"))
    suite = open_mnistc_suite("mnist5k-mnistc", tmp_path, source="generated", corruptions=["stripe", "dotted_line"])
    progress = null_progress()
    rows = {}
    for part in suite.parts():
        stats = collect_stats(run, part, 500, torch.device("cpu"), progress, None)
        rows[part.corruption] = metric_row(stats)
    assert set(rows) == {"clean", "stripe", "dotted_line"} and all(r["n"] == 1000 for r in rows.values())
    assert rows["clean"]["error"] < 0.9   # one epoch learns something
    assert rows["stripe"]["error"] > rows["clean"]["error"]   # inverting 14 of 28 columns hurts
