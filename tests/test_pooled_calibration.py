"""Poolable calibration bins (MAGN Table 3's RMS: 16 equal-width bins over the pooled corrupted set)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from corrbench import metrics as M
from corrbench.errors import InvalidValueError


def dign_calibration(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 16) -> tuple[float, float]:
    """(ECE, RMSE) as TheoT1/DiGN test-cal-c.py computes them: a loop over (low, high] bins, float64."""
    edges = np.linspace(0, 1, n_bins + 1)
    n = len(confidence)
    ece = rmse = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.sum():
            gap = correct[inside].mean() - confidence[inside].mean()
            ece += inside.sum() / n * abs(gap)
            rmse += inside.sum() / n * gap**2
    return ece, math.sqrt(rmse)


def test_bins_are_right_closed_like_the_reference():
    bins = M.calibration_bin_sums([1 / 16, 0.07, 0.5, 1.0, 0.5000001], [1, 0, 1, 1, 0])
    assert bins.count.tolist() == [1, 1] + [0] * 5 + [1, 1] + [0] * 6 + [1]
    assert bins.correct_sum.tolist() == [1, 0] + [0] * 5 + [1, 0] + [0] * 6 + [1]
    assert bins.confidence_sum[7] == 0.5 and bins.confidence_sum[15] == 1.0


def test_hand_worked_rms_and_ece():
    # bin 7 (0.4375, 0.5]: confidences 0.5, 0.5, correct 1, 0 -> gap 0; bin 15: 0.95, 0.95 both wrong -> gap 0.95
    bins = M.calibration_bin_sums([0.5, 0.5, 0.95, 0.95], [1, 0, 0, 0])
    assert M.binned_calibration_error(bins, "l1") == pytest.approx(0.5 * 0.95, rel=1e-12)
    assert M.binned_calibration_error(bins, "l2") == pytest.approx(math.sqrt(0.5 * 0.95**2), rel=1e-12)
    assert M.binned_calibration_error(bins, "max") == pytest.approx(0.95, rel=1e-12)


def test_pooled_parts_equal_the_reference_on_the_union():
    rng = np.random.default_rng(3)
    parts = []
    for _ in range(6):
        confidence = rng.uniform(0.1, 1.0, 700)
        correct = rng.uniform(size=700) < confidence**2
        parts.append((confidence, correct))
    pooled = M.pool_calibration_bins([M.calibration_bin_sums(c, k) for c, k in parts])
    union_confidence = np.concatenate([c for c, _ in parts])
    union_correct = np.concatenate([k for _, k in parts]).astype(np.float64)
    ece, rmse = dign_calibration(union_confidence, union_correct)
    tolerance = 64 * np.finfo(np.float64).eps
    assert M.binned_calibration_error(pooled, "l2") == pytest.approx(rmse, rel=tolerance)
    assert M.binned_calibration_error(pooled, "l1") == pytest.approx(ece, rel=tolerance)


def test_json_round_trip_is_exact():
    rng = np.random.default_rng(0)
    bins = M.calibration_bin_sums(rng.uniform(0.2, 1, 500), rng.uniform(size=500) < 0.7)
    again = M.CalibrationBins.from_json(bins.to_json())
    assert np.array_equal(again.count, bins.count) and np.array_equal(again.correct_sum, bins.correct_sum)
    assert np.array_equal(again.confidence_sum, bins.confidence_sum)
    with pytest.raises(InvalidValueError):
        M.CalibrationBins.from_json('{"count": [1]}')
    with pytest.raises(InvalidValueError):
        M.pool_calibration_bins([bins, M.calibration_bin_sums([0.5], [1], n_bins=4)])


def test_perfectly_calibrated_model_scores_below_one_percent_pooled():
    """The floor that made MAGN's printed 0.6–1.4 % impossible under per-set equal-count bins (issue 13)."""
    rng = np.random.default_rng(13)
    per_set_hendrycks, parts = [], []
    for _ in range(18 * 5):
        confidence = 0.1 + 0.9 * rng.beta(4.0, 1.0, 10000)          # CIFAR-10-like: mostly confident
        correct = rng.uniform(size=10000) < confidence                # perfectly calibrated by construction
        per_set_hendrycks.append(M.rms_calibration_error_adaptive(confidence, correct, beta=100))
        parts.append(M.calibration_bin_sums(confidence, correct))
    pooled = M.binned_calibration_error(M.pool_calibration_bins(parts), "l2")
    assert pooled < 0.01
    assert 0.02 < float(np.mean(per_set_hendrycks)) < 0.05
