"""Clipping-aware L2 rescaling (Rauber & Bethge 2020): exact norms, staying in [0, 1], batching."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from corrbench.augment.l2 import clipping_aware_rescaling, l2_perturb
from corrbench.errors import InvalidValueError, LayoutError


def max_reachable_norm(x: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """‖clip(x + ∞·δ) − x‖ per row: every coordinate that moves goes to the bound it points at."""
    space = np.where(delta > 0, 1 - x, x)
    return np.sqrt(np.where(delta != 0, space**2, 0).sum(axis=1))


def test_hand_computed_case_with_one_saturating_coordinate():
    # x = (0.5, 0.9), δ = (1, 1): coordinate 2 saturates at η = 0.1 (adding 0.01 to the squared norm);
    # then ‖·‖² = 0.01 + η², so k = 0.3 needs η² = 0.08.
    x = torch.tensor([[0.5, 0.9]], dtype=torch.float64)
    delta = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    eta = clipping_aware_rescaling(x, delta, 0.3)
    assert eta.item() == pytest.approx(math.sqrt(0.08), rel=1e-12)
    perturbed, achieved = l2_perturb(x, delta, 0.3)
    assert perturbed[0].tolist() == pytest.approx([0.5 + math.sqrt(0.08), 1.0], rel=1e-12)
    assert achieved.item() == pytest.approx(0.3, rel=1e-12)


def test_without_clipping_eta_is_norm_over_direction_length():
    x = torch.full((2, 3, 4, 4), 0.5, dtype=torch.float64)
    delta = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e-3
    eta = clipping_aware_rescaling(x, delta, torch.tensor([0.1, 0.2], dtype=torch.float64))
    expected = torch.tensor([0.1, 0.2], dtype=torch.float64) / delta.flatten(1).norm(dim=1)
    torch.testing.assert_close(eta, expected, rtol=1e-12, atol=0)


def test_unreachable_norm_gives_the_maximum_and_zero_direction_stays_put():
    x = torch.tensor([[0.25, 0.75], [0.3, 0.6]], dtype=torch.float64)
    delta = torch.tensor([[1.0, -2.0], [0.0, 0.0]], dtype=torch.float64)
    perturbed, achieved = l2_perturb(x, delta, 5.0)
    assert perturbed[0].tolist() == [1.0, 0.0]                 # both coordinates at their bounds
    assert achieved[0].item() == pytest.approx(math.hypot(0.75, 0.75), rel=1e-12)
    assert perturbed[1].tolist() == [0.3, 0.6] and achieved[1].item() == 0.0
    assert torch.isfinite(clipping_aware_rescaling(x, delta, 5.0)).all()


coordinate = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))
direction = st.one_of(st.just(0.0), st.floats(1e-3, 10.0), st.floats(-10.0, -1e-3))


@settings(max_examples=80, deadline=None)
@given(data=st.data(), batch=st.integers(1, 4), size=st.integers(1, 40))
def test_property_exact_norm_and_valid_range(data, batch, size):
    x = data.draw(hnp.arrays(np.float64, (batch, size), elements=coordinate))
    delta = data.draw(hnp.arrays(np.float64, (batch, size), elements=direction))
    fractions = np.array(data.draw(st.lists(st.floats(0.0, 1.3), min_size=batch, max_size=batch)))
    reachable = max_reachable_norm(x, delta)
    target = fractions * reachable

    x_t, delta_t = torch.from_numpy(x), torch.from_numpy(delta)
    eta = clipping_aware_rescaling(x_t, delta_t, torch.from_numpy(target))
    perturbed, achieved = l2_perturb(x_t, delta_t, torch.from_numpy(target))

    assert ((perturbed >= 0) & (perturbed <= 1)).all()
    expected = np.minimum(target, reachable)
    np.testing.assert_allclose(achieved.numpy(), expected, rtol=1e-9, atol=1e-12)
    # the result is the clipped ray x + η·δ, not some other point at that distance
    np.testing.assert_array_equal(perturbed.numpy(), np.clip(x + eta.numpy()[:, None] * delta, 0, 1))


def test_batched_equals_one_image_at_a_time_float32_keeps_dtype():
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(5, 3, 8, 8, generator=generator)
    x[:, :, :2] = 1.0                                       # a saturated band
    delta = torch.randn(x.shape, generator=generator)
    norms = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0])
    perturbed, achieved = l2_perturb(x, delta, norms)
    assert perturbed.dtype == torch.float32 and perturbed.shape == x.shape
    for index in range(5):
        single, single_norm = l2_perturb(x[index:index + 1], delta[index:index + 1], norms[index])
        torch.testing.assert_close(single[0], perturbed[index], rtol=0, atol=0)
        assert single_norm.item() == achieved[index].item()
    reachable = torch.from_numpy(max_reachable_norm(x.double().flatten(1).numpy(), delta.double().flatten(1).numpy()))
    torch.testing.assert_close(achieved.double(), torch.minimum(norms.double(), reachable), rtol=1e-6, atol=1e-6)
    # the float32 image itself is at the requested distance up to float32 rounding
    direct = (perturbed.double() - x.double()).flatten(1).norm(dim=1)
    torch.testing.assert_close(direct, torch.minimum(norms.double(), reachable), rtol=1e-6, atol=1e-6)


def test_bad_inputs_are_user_errors():
    x = torch.rand(2, 3)
    with pytest.raises(InvalidValueError, match="≥ 0"):
        clipping_aware_rescaling(x, torch.randn(2, 3), -1.0)
    with pytest.raises(LayoutError, match="same shape"):
        clipping_aware_rescaling(x, torch.randn(2, 4), 1.0)
