"""The metric catalog: Brier and adaptive ECE by hand, every computed metric equals its function."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corrbench import metric_catalog
from corrbench.metrics import (brier_score, calibration_error_equal_mass, sample_stats)


def test_brier_score_equals_the_one_hot_formula_in_float64():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 7, (50,), generator=generator)
    stats = sample_stats(logits, labels)
    probs = torch.softmax(logits, dim=1).numpy()
    expected = ((probs - np.eye(7)[labels.numpy()]) ** 2).sum(axis=1).mean()
    assert brier_score(stats.nll, stats.prob_sq_sum) == pytest.approx(expected, abs=1e-13)


def test_brier_score_of_certain_predictions_is_zero_or_two():
    assert brier_score(np.array([0.0]), np.array([1.0])) == 0.0                  # p_y = 1
    assert brier_score(np.array([np.inf]), np.array([1.0])) == pytest.approx(2.0)  # all mass on a wrong class


def test_equal_mass_ece_by_hand():
    # sorted confidences split 3 + 2: bin 1 conf 0.2, acc 1/3, weight 3/5; bin 2 conf 0.925, acc 1, weight 2/5
    confidence = np.array([0.9, 0.1, 0.95, 0.3, 0.2])
    correct = np.array([1, 0, 1, 1, 0])
    expected = 3 / 5 * abs(1 / 3 - 0.2) + 2 / 5 * abs(1 - 0.925)
    assert calibration_error_equal_mass(confidence, correct, n_bins=2) == pytest.approx(expected, abs=1e-15)
    assert np.isnan(calibration_error_equal_mass(np.zeros(0), np.zeros(0)))


def test_catalog_values_equal_the_metric_functions_and_columns_are_unique():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (300,), generator=generator)
    stats = sample_stats(logits, labels)
    values = metric_catalog.metric_values(stats)
    assert values["error"] == pytest.approx(1 - stats.correct.mean(), abs=1e-15)
    assert values["brier"] == brier_score(stats.nll, stats.prob_sq_sum)
    assert values["ece_adaptive"] == calibration_error_equal_mass(stats.confidence, stats.correct, 15)
    columns = [m.column for m in metric_catalog.ROW_METRICS]
    assert len(columns) == len(set(columns))
    assert all(text for _, text in metric_catalog.definitions())
    assert metric_catalog.metric("error").format(0.1234) == "12.34"
