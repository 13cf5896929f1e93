"""ESP, L2-noise and AugMix+ESP: the smoothing function, ξ rule, radii, soft labels, end-to-end training."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from corrbench.augment.l2 import l2_perturb
from corrbench.augment.smoothing import soft_cross_entropy, true_class_targets, uniform_smoothed_targets
from corrbench.config import RunConfig
from corrbench.engine.train import train
from corrbench.errors import InvalidValueError, UserError
from corrbench.methods import create_method
from corrbench.methods.esp import (esp_decay_rate, esp_true_probability, paper_gamma, truncated_normal,
                                   xi_from_gamma)
from corrbench.models import create_model


def small_model(num_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("mnist_cnn", num_classes=num_classes, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3).eval()


def test_smoothing_function_endpoints():
    for num_classes, epsilon, tau, xi in [(10, 2.0, 2.0, 0.426), (100, 1.0, 0.5, 0.158), (200, 3.0, 3.0, 0.496)]:
        rate = esp_decay_rate(num_classes, epsilon, tau, xi)
        radii = torch.tensor([0.0, epsilon / 2, epsilon, epsilon + tau])
        s = esp_true_probability(radii, epsilon, rate)
        assert s[:3].tolist() == [1.0, 1.0, 1.0]                     # s = 1 up to ε
        assert s[3].item() == pytest.approx(1 / num_classes + xi, rel=1e-6)   # s(ε + τ) = 1/C + ξ
        mid = esp_true_probability(torch.tensor([epsilon + tau / 2]), epsilon, rate).item()
        assert mid == pytest.approx(math.sqrt(1 / num_classes + xi), rel=1e-6)   # exponential in between


def test_algorithm_rule_is_the_printed_formula_and_singular_at_tau_equal_epsilon():
    assert esp_decay_rate(10, 2.0, 1.0, 0.426, rule="algorithm") == pytest.approx(
        math.log(10 / (1 + 0.426 * 10)) / (1.0 - 2.0))
    with pytest.raises(InvalidValueError, match="τ − ε"):
        esp_decay_rate(10, 2.0, 2.0, 0.426, rule="algorithm")
    assert esp_decay_rate(10, 2.0, 0.0, 0.426) == 0.0            # τ = 0: every radius is ε, s = 1


def test_xi_rule_reproduces_the_papers_values():
    # ESP §4.2: γ {10, 20} → ξ {0.426, 0.590} (C = 10); {20, 50, 100} → {0.158, 0.326, 0.493} (C = 100);
    # 200 → 0.496 (C = 200)
    cases = [(10, 10, 0.426), (10, 20, 0.590), (100, 20, 0.158), (100, 50, 0.326), (100, 100, 0.493),
             (200, 200, 0.496)]
    for num_classes, gamma, xi in cases:
        assert round(xi_from_gamma(gamma, num_classes), 3) == xi
    assert [paper_gamma(c) for c in (10, 100, 200)] == [10.0, 20.0, 200.0]


def test_soft_labels_sum_to_one_and_put_s_on_the_true_class():
    labels = torch.tensor([3, 0, 9])
    targets = true_class_targets(labels, 10, torch.tensor([0.55, 1.0, 0.1]))
    torch.testing.assert_close(targets.sum(1), torch.ones(3))
    assert targets[0, 3].item() == pytest.approx(0.55) and targets[0, 0].item() == pytest.approx(0.05)
    assert targets[1].tolist() == [1.0] + [0.0] * 9
    assert targets[2].tolist() == pytest.approx([0.1] * 10)
    uniform = uniform_smoothed_targets(labels, 10, torch.tensor([0.5, 0.0, 1.0]))
    assert uniform[0, 3].item() == pytest.approx(0.55) and uniform[0, 1].item() == pytest.approx(0.05)
    torch.testing.assert_close(uniform.sum(1), torch.ones(3))
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    expected = -(0.8 * math.log(math.e**2 / (math.e**2 + 2)) + 0.2 * math.log(1 / (math.e**2 + 2)))
    assert soft_cross_entropy(logits, torch.tensor([[0.8, 0.1, 0.1]])).item() == pytest.approx(expected, rel=1e-6)


def test_truncated_normal_bounds_centre_and_seed():
    draws = truncated_normal(20000, 2.0, 1.0, 0.0, 4.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert draws.min() >= 0 and draws.max() <= 4
    assert draws.mean().item() == pytest.approx(2.0, abs=0.03)
    assert draws.std().item() == pytest.approx(0.880, abs=0.02)   # std of N(0,1) truncated at ±2 is 0.8796
    again = truncated_normal(20000, 2.0, 1.0, 0.0, 4.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(draws, again)


def test_esp_perturbation_has_the_sampled_radius_and_stays_in_range():
    method = create_method("esp", {"epsilon": 1.5})
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    perturbed, radius = method.perturb(x, torch.Generator().manual_seed(7))
    sampled = truncated_normal(6, 1.5, 0.75, 0.0, 3.0, torch.Generator().manual_seed(7), torch.device("cpu"))
    torch.testing.assert_close(radius.double(), sampled, rtol=1e-5, atol=1e-6)
    assert perturbed.min() >= 0 and perturbed.max() <= 1
    torch.testing.assert_close((perturbed - x).flatten(1).norm(dim=1), radius, rtol=1e-5, atol=1e-6)


def test_esp_loss_is_soft_ce_on_the_perturbed_batch():
    method = create_method("esp", {"epsilon": 1.0, "gamma": 20.0})
    model = small_model()
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(8) % 10
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(5))

    perturbed, radius = method.perturb(images.float() / 255, torch.Generator().manual_seed(5))
    xi = xi_from_gamma(20.0, 10)
    s = esp_true_probability(radius, 1.0, math.log(10 / (1 + 10 * xi)) / 1.0)
    expected = soft_cross_entropy(model(perturbed), true_class_targets(labels, 10, s))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["true_label"].item() == pytest.approx(s.mean().item(), rel=1e-6)
    assert 1 / 10 + xi <= logs["true_label"].item() <= 1


def test_l2_noise_uses_the_fixed_radius_and_hard_labels():
    method = create_method("l2-noise", {"epsilon": 0.75})
    model = small_model()
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 2, 3, 4])
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(9))
    x = images.float() / 255
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    perturbed, radius = l2_perturb(x, direction, 0.75)
    torch.testing.assert_close(radius, torch.full((4,), 0.75), rtol=1e-5, atol=1e-6)
    expected = torch.nn.functional.cross_entropy(model(perturbed), labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["radius"].item() == pytest.approx(0.75, rel=1e-5)


def test_settings_are_validated_and_none_defaults_come_from_the_paper():
    method = create_method("esp", {"epsilon": "3", "tau": "1.5", "gamma": "none"})
    assert (method.resolved_tau, method.resolved_sigma, method.gamma) == (1.5, 0.75, None)
    assert method.resolved_xi(10) == pytest.approx(xi_from_gamma(10, 10))
    assert create_method("esp").resolved_tau == 2.0 and create_method("esp").resolved_sigma == 1.0
    with pytest.raises(InvalidValueError, match="tau must be between 0 and epsilon"):
        create_method("esp", {"tau": 5.0})
    with pytest.raises(InvalidValueError, match="lambda_rule"):
        create_method("esp", {"lambda_rule": "paper"})
    with pytest.raises(InvalidValueError, match="number or 'none'"):
        create_method("esp", {"tau": "wide"})
    with pytest.raises(InvalidValueError, match="xi must be in"):
        create_method("esp", {"xi": 0.95}).resolved_xi(10)
    with pytest.raises(UserError, match="no hyperparameter"):
        create_method("l2-noise", {"tau": 1.0})


def test_augmix_esp_adds_the_jsd_of_the_esp_view_and_two_augmix_views():
    from corrbench.augment.augmix import augmix
    from corrbench.methods.losses import jensen_shannon

    method = create_method("augmix+esp", {"epsilon": 1.0})
    model = small_model()
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 2, 3, 4])
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(11))

    generator = torch.Generator().manual_seed(11)
    aug1, aug2 = augmix(images, generator), augmix(images, generator)
    perturbed, radius = method.perturb(images.float() / 255, generator)
    logits, logits1, logits2 = model(perturbed), model(aug1), model(aug2)
    expected_ce = soft_cross_entropy(logits, method.targets(labels, radius, 10))
    expected = expected_ce + 12.0 * jensen_shannon(logits, logits1, logits2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["js"].item() > 0


@pytest.mark.parametrize("method", ["esp", "l2-noise", "augmix+esp"])
def test_trains_one_epoch_on_mnist5k(tmp_path, method):
    # holdout keeps 600 of the 4,000 training images (3 steps) so the suite stays fast
    result = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method=method, epochs=1, batch_size=200,
                             holdout=3400), runs_dir=tmp_path)
    log = pd.read_parquet(result.run_dir / "train_log.parquet")
    assert result.epochs_completed == 1 and math.isfinite(log["loss"].iloc[0])
    assert 0 < log["radius"].iloc[0] <= 4.0   # ε = 2, radii in [0, 2ε]
