"""ESP Table 1's composed rows and the MNIST grey-window perturbation (d = 784)."""
from __future__ import annotations

import math

import pytest
import torch

from corrbench.data.imageset import grey28_to_rgb32
from corrbench.methods import create_method
from corrbench.methods.esp import perturb_window
from corrbench.models import create_model

TABLE1_ROWS = ["standard", "l2-noise", "esp", "augmix", "augmix+l2-noise", "augmix+esp", "deepaugment",
               "deepaugment+l2-noise", "deepaugment+esp", "augmix+deepaugment", "augmix+deepaugment+l2-noise",
               "augmix+deepaugment+esp"]


def test_every_table1_row_has_a_method():
    for name in TABLE1_ROWS:
        create_method(name)


def test_grey_window_perturbs_only_the_digit_once_per_pixel():
    g = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 256, (5, 28, 28), generator=g, dtype=torch.uint8)
    x = grey28_to_rgb32(digits).double() / 255
    out, radius = perturb_window(x, 1.5, 28, torch.Generator().manual_seed(1))
    change = out - x
    assert torch.equal(change[:, :, :2], torch.zeros_like(change[:, :, :2]))        # padding untouched
    assert torch.equal(change[..., 30:], torch.zeros_like(change[..., 30:]))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])  # still grey
    grey_norm = change[:, 0].reshape(5, -1).norm(dim=1)
    eps = 64 * torch.finfo(torch.float64).eps
    assert torch.allclose(grey_norm, torch.full((5,), 1.5, dtype=torch.float64), rtol=eps, atol=0)
    assert torch.allclose(radius, grey_norm, rtol=eps, atol=0)
    whole = change.reshape(5, -1).norm(dim=1)
    assert torch.allclose(whole, math.sqrt(3) * grey_norm, rtol=1e-12, atol=0)


def _loss(name: str, params: dict, seed: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    model = create_model("mnist_cnn", num_classes=10, image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (6,), generator=g)
    method = create_method(name, params)
    return method.loss(model, images, labels, torch.Generator().manual_seed(seed))[0]


def test_compositions_reduce_to_their_parts_when_noise2net_is_off():
    # Noise2Net with ε_max = 0 leaves every view as it is (its draws come after all others).
    assert torch.equal(_loss("augmix+deepaugment+esp", {"eps_max": 0.0}), _loss("augmix+esp", {}))
    assert torch.equal(_loss("deepaugment+l2-noise", {"eps_max": 0.0}), _loss("l2-noise", {}))
    assert torch.equal(_loss("deepaugment+esp", {"eps_max": 0.0}), _loss("esp", {}))
    assert not torch.equal(_loss("deepaugment+esp", {}), _loss("esp", {}))


def test_composition_validates_its_parts():
    from corrbench.errors import InvalidValueError
    with pytest.raises(InvalidValueError, match="augmix\\+deepaugment.fraction"):
        create_method("augmix+deepaugment", {"fraction": "2"})
    with pytest.raises(InvalidValueError, match="grey_size"):
        create_method("deepaugment+esp", {"grey_size": "-1"})
