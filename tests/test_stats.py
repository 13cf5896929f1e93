"""Intervals, paired comparisons, McNemar and Holm on hand-computable cases and against scipy."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from corrbench.errors import InvalidValueError
from corrbench.stats import (bootstrap_error, clustered_mcnemar_exact, holm, mcnemar_exact,
                             paired_bootstrap_difference, sample_std, t_interval)


def test_t_interval_of_three_seeds_by_hand():
    interval = t_interval([1.0, 2.0, 3.0])
    t_2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # Student's t quantile for 2 d.o.f.: (2p − 1) / √(2p(1 − p))
    half = t_2 * 1.0 / math.sqrt(3)             # t · s / √n with s = 1
    assert interval.estimate == 2.0 and interval.n == 3 and interval.method == "t"
    assert interval.low == pytest.approx(2.0 - half, rel=1e-12)
    assert interval.high == pytest.approx(2.0 + half, rel=1e-12)
    assert sample_std([1.0, 2.0, 3.0]) == pytest.approx(1.0, rel=1e-15)


def test_t_interval_of_one_seed_is_degenerate_and_marked():
    interval = t_interval([0.25])
    assert (interval.low, interval.estimate, interval.high, interval.method) == (0.25, 0.25, 0.25, "single")
    assert math.isnan(sample_std([0.25]))


def test_bootstrap_equals_a_direct_resampling_loop():
    correct = np.random.default_rng(5).random(200) < 0.7
    interval = bootstrap_error(correct, resamples=300, seed=11)
    rng = np.random.default_rng(11)
    errors = np.array([1.0 - correct[rng.integers(0, 200, size=200)].mean() for _ in range(300)])
    low, high = np.quantile(errors, [0.025, 0.975])
    assert interval.estimate == pytest.approx(1.0 - correct.mean(), abs=1e-15)
    assert (interval.low, interval.high) == (pytest.approx(low, abs=1e-15), pytest.approx(high, abs=1e-15))


def test_bootstrap_is_reproducible_and_has_the_binomial_width():
    correct = np.random.default_rng(0).random(4000) < 0.8
    first, second = bootstrap_error(correct, seed=3), bootstrap_error(correct, seed=3)
    assert first == second
    expected_half_width = 1.959964 * math.sqrt(0.2 * 0.8 / 4000)
    assert (first.high - first.low) / 2 == pytest.approx(expected_half_width, rel=0.1)
    assert first.contains(first.estimate)


def test_bootstrap_of_a_perfect_model_is_zero_and_parts_resample_images_jointly():
    assert bootstrap_error(np.ones(50, bool)).high == 0.0
    # Two parts over the same images: image i is wrong in both parts or in neither, so the per-image error
    # is 0 or 1 and the interval must equal the one of a single part with the same pattern.
    pattern = np.random.default_rng(1).random(300) < 0.6
    joint = bootstrap_error(np.stack([pattern, pattern]), seed=2)
    single = bootstrap_error(pattern, seed=2)
    assert (joint.low, joint.high) == (single.low, single.high)


def test_paired_difference_of_identical_models_is_exactly_zero():
    correct = np.random.default_rng(2).random(500) < 0.5
    interval = paired_bootstrap_difference(correct, correct)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)


def test_paired_difference_equals_a_direct_paired_loop_and_averages_seeds():
    rng = np.random.default_rng(3)
    a = rng.random((2, 150)) < 0.8           # two seeds of A
    b = rng.random(150) < 0.6                # one run of B
    interval = paired_bootstrap_difference(a, b, resamples=200, seed=4)
    per_image = (1 - a.mean(0)) - (1 - b.astype(float))
    draws_rng = np.random.default_rng(4)
    draws = np.array([per_image[draws_rng.integers(0, 150, size=150)].mean() for _ in range(200)])
    assert interval.estimate == pytest.approx(per_image.mean(), abs=1e-15)
    assert interval.low == pytest.approx(np.quantile(draws, 0.025), abs=1e-15)
    assert interval.high == pytest.approx(np.quantile(draws, 0.975), abs=1e-15)
    with pytest.raises(InvalidValueError, match="different images"):
        paired_bootstrap_difference(a, b[:100])


def test_mcnemar_exact_by_hand_and_against_scipy():
    # 10 images only A gets right, 2 only B: p = 2 · (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 158 / 4096.
    a = np.array([True] * 10 + [False] * 2 + [True] * 30 + [False] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 30 + [False] * 5)
    assert mcnemar_exact(a, b) == pytest.approx(158 / 4096, rel=1e-12)
    assert mcnemar_exact(a, b) == pytest.approx(binomtest(2, 12, 0.5).pvalue, rel=1e-12)
    assert mcnemar_exact(a, a) == 1.0
    rng = np.random.default_rng(9)
    for _ in range(5):
        x, y = rng.random(80) < 0.6, rng.random(80) < 0.5
        only_x, only_y = int((x & ~y).sum()), int((~x & y).sum())
        assert mcnemar_exact(x, y) == pytest.approx(binomtest(only_y, only_x + only_y, 0.5).pvalue, rel=1e-12)


def test_holm_on_a_known_case():
    rejected, adjusted = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
    assert rejected.tolist() == [True, False, False, True]
    assert holm([])[0].size == 0


def test_clustered_mcnemar_with_one_part_is_mcnemar():
    rng = np.random.default_rng(12)
    for _ in range(4):
        a, b = rng.random(120) < 0.7, rng.random(120) < 0.6
        assert clustered_mcnemar_exact(a, b) == pytest.approx(mcnemar_exact(a, b), rel=1e-12)
        assert clustered_mcnemar_exact(a[None], b[None]) == pytest.approx(mcnemar_exact(a, b), rel=1e-12)


def test_clustered_mcnemar_by_enumerating_every_sign_flip():
    # 4 images, 3 parts: d = (2, 1, -1, 3) → S = 5; enumerate the 16 sign patterns of (2, 1, 1, 3).
    a = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [1, 0, 0, 1]], bool)
    b = np.array([[0, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]], bool)
    d = (a & ~b).sum(0) - (~a & b).sum(0)
    assert d.tolist() == [2, 1, -1, 3]
    sums = [sum(s * m for s, m in zip(signs, np.abs(d))) for signs in itertools.product((-1, 1), repeat=4)]
    expected = sum(abs(total) >= 5 for total in sums) / 16
    assert clustered_mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)


def test_clustered_mcnemar_is_less_significant_than_pooling_dependent_parts():
    # The same discordant image repeated over 5 severities: pooling would count 5 independent pairs.
    rng = np.random.default_rng(3)
    a = np.tile(rng.random(60) < 0.7, (5, 1))
    b = np.tile(rng.random(60) < 0.6, (5, 1))
    pooled = mcnemar_exact(a.reshape(-1), b.reshape(-1))
    assert clustered_mcnemar_exact(a, b) == pytest.approx(mcnemar_exact(a[0], b[0]), rel=1e-9)
    assert clustered_mcnemar_exact(a, b) > pooled


def test_clustered_mcnemar_far_tail_is_a_valid_positive_bound():
    # 400 images where A is right and B wrong at both of 2 severities: exact p = 2·2^-400, far below the FFT floor.
    a, b = np.ones((2, 400), bool), np.zeros((2, 400), bool)
    b[:, 0] = True
    a[:, 0] = False                      # one image the other way, so magnitudes are all 2 and the FFT path runs
    a[0, 1] = False                      # and one magnitude-1 image
    p = clustered_mcnemar_exact(a, b)
    assert 0 < p <= 1e-12
