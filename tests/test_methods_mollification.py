"""Mollification: schedules, heat-dissipation blur = Gaussian blur, roles, soft labels, end-to-end training."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from corrbench.augment.smoothing import soft_cross_entropy, uniform_smoothed_targets
from corrbench.config import RunConfig
from corrbench.engine.train import train
from corrbench.errors import InvalidValueError
from corrbench.methods import create_method
from corrbench.methods.mollification import (BLUR, CLEAN, NOISE, blur_gamma, blur_sigma, heat_dissipation_blur,
                                             noise_gamma, sample_beta)
from corrbench.models import create_model


def gaussian_blur_reference(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable convolution with the sampled continuous Gaussian of std `sigma` px, on the half-sample
    symmetric extension (… b a | a b c … y z | z y …), wide enough to wrap around small images."""
    radius = int(math.ceil(8 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))

    def along(x: torch.Tensor, dim: int) -> torch.Tensor:
        size = x.shape[dim]
        positions = torch.arange(size)[:, None] - offsets.long()[None, :]   # output i reads i − n
        folded = positions % (2 * size)
        folded = torch.where(folded >= size, 2 * size - 1 - folded, folded)
        gathered = x.movedim(dim, -1)[..., folded]                            # … × size × taps
        return (gathered * kernel).sum(-1).movedim(-1, dim)

    return along(along(images.double(), 2), 3)


def test_heat_dissipation_equals_gaussian_blur_of_the_stated_sigma():
    images = torch.rand(3, 2, 12, 16, generator=torch.Generator().manual_seed(0))
    sigmas = [2.0, 3.5, 12.0]
    blurred = heat_dissipation_blur(images, torch.tensor(sigmas))
    for index, sigma in enumerate(sigmas):
        reference = gaussian_blur_reference(images[index:index + 1], sigma)
        torch.testing.assert_close(blurred[index:index + 1].double(), reference, rtol=0, atol=2e-6)
    flat = torch.full((1, 3, 8, 8), 0.37)
    torch.testing.assert_close(heat_dissipation_blur(flat, 5.0), flat, rtol=0, atol=1e-6)   # constants stay


def test_schedules_endpoints():
    ends = torch.tensor([0.0, 1.0])
    assert noise_gamma(ends).tolist() == pytest.approx([0.0, 1.0], abs=1e-7)
    assert blur_gamma(ends).tolist() == [0.0, 1.0]
    assert noise_gamma(torch.tensor([0.5])).item() == pytest.approx(0.5)          # sin²(π/4)
    assert noise_gamma(torch.tensor([0.5]), 2.0).item() == pytest.approx(0.25)
    assert blur_sigma(ends, 32).tolist() == pytest.approx([0.3, 32.0])
    assert blur_sigma(torch.tensor([0.5]), 32).item() == pytest.approx(math.sqrt(0.3 * 32))   # log-linear
    sequential = create_method("mollification", {"both_mode": "sequential"})
    gammas = sequential.label_gamma(torch.full((3,), NOISE), torch.tensor([0.0, 0.5, 1.0]))
    assert gammas.tolist() == pytest.approx([0.0, 1 - 0.5 * 0.5, 1.0], abs=1e-7)


def test_soft_labels_sum_to_one_per_role():
    method = create_method("mollification")
    roles = torch.tensor([CLEAN, NOISE, BLUR, NOISE])
    t = torch.tensor([0.0, 0.5, 0.25, 1.0])
    gamma = method.label_gamma(roles, t)
    assert gamma.tolist() == pytest.approx([0.0, 0.5, 0.25, 1.0], abs=1e-7)
    targets = uniform_smoothed_targets(torch.tensor([0, 1, 2, 3]), 10, gamma)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    assert targets[0].tolist() == [1.0] + [0.0] * 9
    assert targets[1, 1].item() == pytest.approx(0.55) and targets[1, 0].item() == pytest.approx(0.05)
    assert targets[3].tolist() == pytest.approx([0.1] * 10)


def test_beta_samples_have_the_right_moments_and_reproduce():
    for alpha, beta in [(1.0, 2.0), (2.0, 5.0), (0.5, 0.5)]:
        draws = sample_beta(alpha, beta, 20000, torch.Generator().manual_seed(0), torch.device("cpu"))
        mean = alpha / (alpha + beta)
        var = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
        assert ((draws >= 0) & (draws <= 1)).all()
        assert draws.mean().item() == pytest.approx(mean, abs=0.01)
        assert draws.var().item() == pytest.approx(var, rel=0.05)
        again = sample_beta(alpha, beta, 20000, torch.Generator().manual_seed(0), torch.device("cpu"))
        assert torch.equal(draws, again)


def test_roles_and_temperatures():
    x = torch.zeros(3000, 3, 2, 2)
    roles, t, noise = create_method("mollification").draw(x, torch.Generator().manual_seed(1))
    shares = torch.bincount(roles, minlength=3).float() / 3000
    assert shares.tolist() == pytest.approx([1 / 3] * 3, abs=0.03)      # clean / noise / blur (authors' code)
    assert (t[roles == CLEAN] == 0).all() and (t[roles != CLEAN] > 0).all()
    assert noise.shape == x.shape
    roles, _, _ = create_method("mollification", {"variant": "noise"}).draw(x, torch.Generator().manual_seed(1))
    assert set(roles.tolist()) == {CLEAN, NOISE}
    roles, _, _ = create_method("mollification", {"variant": "blur", "clean_role": False}).draw(
        x, torch.Generator().manual_seed(1))
    assert set(roles.tolist()) == {BLUR}
    roles, t, _ = create_method("mollification", {"both_mode": "sequential"}).draw(x, torch.Generator().manual_seed(1))
    assert (t > 0).all()                                                # README: every example mollified


def test_mollify_applies_noise_and_blur_by_role():
    method = create_method("mollification")
    h = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(h.shape, generator=torch.Generator().manual_seed(3))
    roles = torch.tensor([CLEAN, NOISE, NOISE, BLUR])
    t = torch.tensor([0.0, 0.0, 1.0, 0.5])
    out = method.mollify(h, roles, t, noise)
    assert torch.equal(out[0], h[0]) and torch.equal(out[1], h[1])     # t = 0: cos = 1, sin = 0
    torch.testing.assert_close(out[2], noise[2], rtol=0, atol=1e-6)     # t = 1: pure noise
    torch.testing.assert_close(out[3:], heat_dissipation_blur(h[3:], math.sqrt(0.3 * 8)))
    sequential = create_method("mollification", {"both_mode": "sequential"})
    t = torch.full((4,), 0.5)
    expected = math.cos(math.pi / 4) * heat_dissipation_blur(h, blur_sigma(t, 8)) + math.sin(math.pi / 4) * noise
    torch.testing.assert_close(sequential.mollify(h, roles, t, noise), expected)


def test_loss_is_soft_ce_on_the_mollified_normalised_input():
    torch.manual_seed(0)
    model = create_model("mnist_cnn", num_classes=10, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3).eval()
    method = create_method("mollification")
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    labels = torch.arange(6)
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(8))
    x = images.float() / 255
    roles, t, noise = method.draw(x, torch.Generator().manual_seed(8))
    logits = model.forward_from_normalized(method.mollify(model.normalize(x), roles, t, noise))
    gamma = method.label_gamma(roles, t)
    expected = soft_cross_entropy(logits, uniform_smoothed_targets(labels, 10, gamma))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["gamma"].item() == pytest.approx(gamma.mean().item())


def test_invalid_settings():
    with pytest.raises(InvalidValueError, match="variant"):
        create_method("mollification", {"variant": "jpeg"})
    with pytest.raises(InvalidValueError, match="both_mode"):
        create_method("mollification", {"both_mode": "mixed"})
    with pytest.raises(InvalidValueError, match="beta must be > 0"):
        create_method("mollification", {"beta": 0.0})


@pytest.mark.parametrize("params, augment", [({}, "none"), ({"both_mode": "sequential"}, "augmix")])
def test_trains_one_epoch_on_mnist5k(tmp_path, params, augment):
    # holdout keeps 600 of the 4,000 training images (3 steps) so the suite stays fast
    result = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method="mollification", augment=augment,
                             method_params=params, epochs=1, batch_size=200, holdout=3400), runs_dir=tmp_path)
    log = pd.read_parquet(result.run_dir / "train_log.parquet")
    assert result.epochs_completed == 1 and math.isfinite(log["loss"].iloc[0])
    expected_clean = 0.0 if params else 1 / 3
    assert log["clean_share"].iloc[0] == pytest.approx(expected_clean, abs=0.1)
