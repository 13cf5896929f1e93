"""MAGN, MAGN+AugMix and DeepAugment's Noise2Net (the CIFAR baseline of MAGN's code)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from corrbench.config import RunConfig
from corrbench.engine.train import train
from corrbench.errors import InvalidValueError
from corrbench.methods import create_method
from corrbench.methods.deepaugment import noise2net
from corrbench.methods.gaussian_noise import per_example_gaussian_noise
from corrbench.methods.magn import kl_per_example
from corrbench.models import create_model


def small_model(train_mode: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("mnist_cnn", num_classes=10, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    return model.train(train_mode)


def batch(count: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randint(0, 256, (count, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    return images, torch.arange(count) % 10


def test_kl_per_example_hand_computed():
    p = torch.tensor([[0.0, 0.0]])                 # (1/2, 1/2)
    q = torch.tensor([[math.log(3.0), 0.0]])       # (3/4, 1/4)
    assert kl_per_example(p, q).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert kl_per_example(q, q).item() == 0.0


@pytest.mark.parametrize("forward", ["separate", "joint"])
def test_sigma_max_zero_is_plain_cross_entropy(forward):
    model = small_model()                          # train-mode BatchNorm: identical inputs, identical outputs
    images, labels = batch()
    method = create_method("magn", {"sigma_max": 0.0, "forward": forward, "n_samples": 2})
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(1))
    expected = F.cross_entropy(model(images.float() / 255), labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-6)
    assert logs["kl"].item() == pytest.approx(0.0, abs=1e-6)


def test_magn_augmix_with_sigma_max_zero_is_ce_plus_jsd():
    from corrbench.augment.augmix import augmix
    from corrbench.methods.losses import jensen_shannon

    model = small_model()
    images, labels = batch()
    method = create_method("magn+augmix", {"sigma_max": 0.0})
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(2)   # AugMix views are drawn first
    aug1, aug2 = augmix(images, generator, severity=3), augmix(images, generator, severity=3)
    logits = model(images.float() / 255)
    expected = F.cross_entropy(logits, labels) + 12.0 * jensen_shannon(logits, model(aug1), model(aug2))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["js"].item() > 0


def test_regulariser_is_confidence_weighted_kl_to_the_noisy_copy():
    model = small_model(train_mode=False)
    images, labels = batch()
    method = create_method("magn", {"lambda1": 3.0, "sigma_max": 0.5})
    loss, logs = method.loss(model, images, labels, torch.Generator().manual_seed(3))

    x = images.float() / 255
    delta = per_example_gaussian_noise(torch.zeros_like(x), 0.5, torch.Generator().manual_seed(3))
    logits, noisy = model(x), model(x + delta)                        # noise on [0, 1] pixels, unclipped
    p_true = F.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
    kl = kl_per_example(logits, noisy)
    expected = F.cross_entropy(logits, labels) + 3.0 * (p_true * kl).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["kl"].item() > 0

    unweighted, _ = create_method("magn", {"lambda1": 3.0, "sigma_max": 0.5, "confidence_weight": False}).loss(
        model, images, labels, torch.Generator().manual_seed(3))
    assert unweighted.item() == pytest.approx((F.cross_entropy(logits, labels) + 3.0 * kl.mean()).item(), rel=1e-6)


def test_detaching_the_weight_keeps_the_value_and_changes_the_gradient():
    images, labels = batch()
    grads = []
    for detach in (False, True):
        model = small_model(train_mode=False)
        loss, _ = create_method("magn", {"sigma_max": 0.5, "detach_weight": detach}).loss(
            model, images, labels, torch.Generator().manual_seed(3))
        loss.backward()
        grads.append((loss.item(), model.head.fc.weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-7)
    assert not torch.allclose(grads[0][1], grads[1][1])


def test_normalized_space_adds_noise_after_normalisation():
    model = small_model(train_mode=False)
    images, labels = batch()
    loss, _ = create_method("magn", {"sigma_max": 0.5, "space": "normalized"}).loss(
        model, images, labels, torch.Generator().manual_seed(3))
    x = images.float() / 255
    delta = per_example_gaussian_noise(torch.zeros_like(x), 0.5, torch.Generator().manual_seed(3))
    logits = model(x)
    noisy = model.forward_from_normalized(model.normalize(x) + delta)
    p_true = F.softmax(logits, 1).gather(1, labels[:, None]).squeeze(1)
    expected = F.cross_entropy(logits, labels) + 3.0 * (p_true * kl_per_example(logits, noisy)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_joint_forward_equals_separate_when_batchnorm_is_frozen():
    model = small_model(train_mode=False)
    images, labels = batch()
    values = [create_method("magn", {"forward": forward, "n_samples": 3}).loss(
        model, images, labels, torch.Generator().manual_seed(5))[0].item() for forward in ("separate", "joint")]
    assert values[0] == pytest.approx(values[1], rel=1e-5)


def test_invalid_settings():
    with pytest.raises(InvalidValueError, match="space"):
        create_method("magn", {"space": "latent"})
    with pytest.raises(InvalidValueError, match="n_samples"):
        create_method("magn", {"n_samples": 0})
    with pytest.raises(InvalidValueError, match="lambda2"):
        create_method("magn+augmix", {"lambda2": -1.0})
    with pytest.raises(InvalidValueError, match="fraction"):
        create_method("deepaugment", {"fraction": 1.5})


# ---- DeepAugment (Noise2Net) ------------------------------------------------------------------------

def test_noise2net_keeps_shape_and_leaves_a_quarter_of_the_batch_untouched():
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out, eps = noise2net(x, torch.Generator().manual_seed(1), eps_max=0.4)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert torch.equal(out[6:], x[6:])                                   # 25 % untouched
    assert all(not torch.allclose(out[i], x[i]) for i in range(6))
    assert 0.2 <= eps <= 0.4
    # every block moves each (image, channel) map by ε in RMS (its output is standardised): ≤ 4ε in all
    rms = (out[:6] - x[:6]).pow(2).mean(dim=(2, 3)).sqrt()
    assert (rms <= 4 * eps + 1e-4).all() and (rms > 0).all()
    again, eps_again = noise2net(x, torch.Generator().manual_seed(1), eps_max=0.4)
    assert torch.equal(out, again) and eps == eps_again
    other, _ = noise2net(x, torch.Generator().manual_seed(2), eps_max=0.4)
    assert not torch.equal(out, other)


def test_one_noise2net_block_moves_each_map_by_exactly_eps():
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out, eps = noise2net(x, torch.Generator().manual_seed(3), eps_max=0.6, fraction=1.0, blocks=1)
    rms = (out - x).pow(2).mean(dim=(2, 3)).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, eps), rtol=1e-3, atol=0)
    assert 0.3 <= eps <= 0.6


@pytest.mark.parametrize("method", ["magn", "magn+augmix", "deepaugment"])
def test_trains_one_epoch_on_mnist5k(tmp_path, method):
    # holdout keeps 600 of the 4,000 training images (3 steps) so the suite stays fast
    result = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method=method, epochs=1, batch_size=200,
                             holdout=3400), runs_dir=tmp_path)
    log = pd.read_parquet(result.run_dir / "train_log.parquet")
    assert result.epochs_completed == 1 and math.isfinite(log["loss"].iloc[0])
    expected_columns = {"magn": {"kl"}, "magn+augmix": {"kl", "js"}, "deepaugment": {"eps"}}[method]
    assert expected_columns <= set(log.columns)
