"""AugMix views, the Jensen–Shannon loss, and the augment-based methods end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

import corrbench.augment.augmix as augmix_module
from corrbench.augment import get_augmentation
from corrbench.augment.augmix import ALL_OPS, CIFAR_OPS, augmix, augmix_views, mixing_weights, quantize
from corrbench.augment.ops import apply_op
from corrbench.config import RunConfig
from corrbench.engine.train import train
from corrbench.errors import InvalidValueError
from corrbench.methods import create_method
from corrbench.methods.losses import jensen_shannon

rng = np.random.default_rng(0)
IMAGES = torch.from_numpy(np.cumsum(rng.integers(0, 6, size=(8, 3, 32, 32)), axis=3).clip(0, 255).astype(np.uint8))


# --- Jensen–Shannon ---------------------------------------------------------------------------------

def _js_reference(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """The AugMix formula in float64 numpy: mean over the batch of (1/3)·Σ_k Σ_j p_kj·(log p_kj − log M_j)."""
    probs = [np.exp(x - x.max(1, keepdims=True)) for x in (a, b, c)]
    probs = [p / p.sum(1, keepdims=True) for p in probs]
    mixture = np.clip(sum(probs) / 3, 1e-7, 1)
    return float(np.mean(sum((p * (np.log(p) - np.log(mixture))).sum(1) for p in probs) / 3))


def test_jensen_shannon_matches_the_formula():
    logits = [torch.randn(5, 4, generator=torch.Generator().manual_seed(k), dtype=torch.float64) for k in range(3)]
    assert float(jensen_shannon(*logits)) == pytest.approx(_js_reference(*(x.numpy() for x in logits)), rel=1e-5)


def test_jensen_shannon_of_disjoint_certain_predictions_is_ln3():
    eye = torch.eye(3) * 60.0           # three one-hot predictions on different classes
    value = jensen_shannon(eye[0:1], eye[1:2], eye[2:3])
    assert float(value) == pytest.approx(math.log(3), abs=1e-5)


logit_rows = st.lists(st.floats(-30, 30, allow_nan=False, width=32), min_size=4, max_size=4)
logit_batches = st.lists(logit_rows, min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(logit_batches, st.data())
def test_jensen_shannon_is_symmetric_bounded_and_zero_for_equal_inputs(first, data):
    rows = len(first)
    second = data.draw(st.lists(logit_rows, min_size=rows, max_size=rows))
    third = data.draw(st.lists(logit_rows, min_size=rows, max_size=rows))
    a, b, c = (torch.tensor(x) for x in (first, second, third))
    value = float(jensen_shannon(a, b, c))
    for permuted in ((b, a, c), (c, b, a), (a, c, b)):
        assert float(jensen_shannon(*permuted)) == pytest.approx(value, abs=1e-5)
    assert -1e-6 <= value <= math.log(3) + 1e-6
    assert abs(float(jensen_shannon(a, a, a))) <= 1e-6


# --- AugMix views ----------------------------------------------------------------------------------

def test_view_is_float_in_unit_range_and_seed_reproduces_bytes():
    view = augmix(IMAGES, torch.Generator().manual_seed(0))
    assert view.dtype == torch.float32 and view.shape == IMAGES.shape
    assert float(view.min()) >= 0 and float(view.max()) <= 1
    assert torch.equal(view, augmix(IMAGES, torch.Generator().manual_seed(0)))
    assert not torch.equal(view, augmix(IMAGES, torch.Generator().manual_seed(1)))


def test_view_keeps_the_channels_last_layout_and_values():
    channels_last = IMAGES.contiguous(memory_format=torch.channels_last)
    view = augmix(channels_last, torch.Generator().manual_seed(2))
    assert view.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(view, augmix(IMAGES, torch.Generator().manual_seed(2)))


def test_augmix_ops_differ_across_images_of_one_batch(monkeypatch):
    # Weight 1 on a single one-op chain: each output is exactly that image's chain, op(x).
    monkeypatch.setattr(augmix_module, "mixing_weights",
                        lambda batch, width, alpha, generator, device: (torch.ones(batch, width), torch.ones(batch)))
    batch = IMAGES[:1].expand(64, -1, -1, -1).contiguous()
    chains = quantize(augmix(batch, torch.Generator().manual_seed(0), width=1, depth=1))
    assert len({bytes(c.numpy()) for c in chains}) >= 10     # a batch-wide op would give one result
    # Every result is one of the CIFAR ops applied to the image with its own level.
    autocontrast, equalize = apply_op("autocontrast", batch[:1]), apply_op("equalize", batch[:1])
    assert any(torch.equal(c, autocontrast[0]) for c in chains) and any(torch.equal(c, equalize[0]) for c in chains)


def test_mixing_weights_follow_dirichlet_and_beta():
    chain, skip = mixing_weights(20000, 3, 1.0, torch.Generator().manual_seed(0), "cpu")
    assert torch.allclose(chain.sum(1), torch.ones(20000))
    # Dirichlet(1,1,1): mean 1/3, variance (1/3)(2/3)/4 = 1/18; Beta(1,1) = U(0,1): mean 1/2, variance 1/12.
    assert chain.mean(0).tolist() == pytest.approx([1 / 3] * 3, abs=0.01)
    assert chain.var(0).tolist() == pytest.approx([1 / 18] * 3, abs=0.003)
    assert float(skip.mean()) == pytest.approx(0.5, abs=0.01) and float(skip.var()) == pytest.approx(1 / 12, abs=0.003)
    _, skip_half = mixing_weights(20000, 3, 0.5, torch.Generator().manual_seed(1), "cpu")
    assert float(skip_half.var()) == pytest.approx(1 / 8, abs=0.004)   # Beta(α,α): 1 / (4(2α + 1))


def test_op_magnitudes_follow_the_reference_formulas():
    level = torch.tensor([3.0, 0.1, 2.5], dtype=torch.float64)
    by_name = {op.name: op for op in ALL_OPS}
    expected = {
        "posterize": [3, 4, 3],            # 4 − int(level·4/10)
        "rotate": [9, 0, 7],               # int(level·30/10)
        "solarize": [180, 254, 192],       # 256 − int(level·256/10)
        "shear_x": [0.09, 0.003, 0.075],   # level·0.3/10
        "translate_x": [3, 0, 2],          # int(level·(32/3)/10)
        "color": [0.64, 0.118, 0.55],      # level·1.8/10 + 0.1
    }
    for name, values in expected.items():
        assert by_name[name].magnitude(level, 32).tolist() == pytest.approx(values), name
    assert [op.name for op in CIFAR_OPS] == ["autocontrast", "equalize", "posterize", "rotate", "solarize",
                                             "shear_x", "shear_y", "translate_x", "translate_y"]
    assert {op.name for op in ALL_OPS} - {op.name for op in CIFAR_OPS} == {"color", "contrast", "brightness", "sharpness"}


VANISHING = tuple(op for op in CIFAR_OPS if op.name in ("rotate", "translate_x", "translate_y"))


def test_severity_towards_zero_leaves_geometric_ops_idle():
    # Levels fall in [severity, 0.1]: rotation int(≤0.3)° = 0 and translation int(≤0.11) px = 0, so every
    # chain is the clean image and the mix is the clean image; rounding back to uint8 is exact.
    view = augmix_views(IMAGES, torch.Generator().manual_seed(0), VANISHING, severity=0.01)
    assert torch.allclose(view, IMAGES.float() / 255, atol=1e-6)
    assert torch.equal(quantize(view), IMAGES)


def test_registered_augmix_is_one_rounded_view():
    out = get_augmentation("augmix").apply(IMAGES, torch.Generator().manual_seed(5))
    assert out.dtype == torch.uint8
    assert torch.equal(out, quantize(augmix(IMAGES, torch.Generator().manual_seed(5))))


def test_settings_are_checked():
    with pytest.raises(InvalidValueError, match="severity"):
        augmix(IMAGES, torch.Generator(), severity=0)
    with pytest.raises(InvalidValueError, match="width"):
        create_method("augmix", {"width": "0"})
    with pytest.raises(InvalidValueError, match="alpha"):
        create_method("augmix", {"alpha": "-1"})


# --- the augmix method -----------------------------------------------------------------------------

class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


@torch.no_grad()
def test_augmix_loss_is_clean_ce_plus_12_js_over_two_views():
    torch.manual_seed(0)
    model, labels = _TinyNet(), torch.arange(8) % 10
    loss, logs = create_method("augmix").loss(model, IMAGES, labels, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    view1, view2 = augmix(IMAGES, generator), augmix(IMAGES, generator)
    # The independent computation runs in float64; the method runs in float32. Each KL term
    # Σ_j p_j (log p_j − log M_j) loses at most ~eps32·|log M| ≤ eps32·ln(1e7) per example to rounding, and
    # the logits' own float32 rounding moves JS only to second order: the bound below holds on any machine.
    eps32 = torch.finfo(torch.float32).eps
    js_tolerance = 3 * math.log(1e7) * eps32 * 4
    model64 = _TinyNet().double()
    model64.load_state_dict(model.state_dict())
    clean64, first64, second64 = (model64(x.double()).detach().numpy() for x in (IMAGES.double() / 255, view1, view2))
    js64 = _js_reference(clean64, first64, second64)
    assert float(logs["js"]) == pytest.approx(js64, abs=js_tolerance)
    ce64 = float(nn.functional.cross_entropy(torch.from_numpy(clean64), labels))
    assert float(loss) == pytest.approx(ce64 + 12 * js64, abs=12 * js_tolerance + 64 * eps32 * (1 + ce64))
    no_jsd, _ = create_method("augmix", {"jsd": "false"}).loss(model, IMAGES, labels, torch.Generator().manual_seed(7))
    single = augmix(IMAGES, torch.Generator().manual_seed(7))
    ce_single64 = float(nn.functional.cross_entropy(model64(single.double()), labels))
    assert float(no_jsd) == pytest.approx(ce_single64, abs=64 * eps32 * (1 + ce_single64))


@torch.no_grad()
def test_augmix_loss_is_clean_ce_when_views_equal_the_clean_image(monkeypatch):
    monkeypatch.setattr(augmix_module, "CIFAR_OPS", VANISHING)
    torch.manual_seed(0)
    model, labels = _TinyNet(), torch.arange(8) % 10
    loss, logs = create_method("augmix", {"severity": "0.01"}).loss(model, IMAGES, labels, torch.Generator())
    assert abs(float(logs["js"])) < 1e-6
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(model(IMAGES.float() / 255), labels)), abs=1e-5)


@pytest.mark.parametrize("method, augment", [("augmix", "none"), ("trivialaugment", "none"), ("autoaugment", "none"),
                                             ("randaugment", "none"), ("standard", "augmix")])
def test_one_epoch_on_mnist5k(tmp_path, method, augment):
    result = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method=method, augment=augment, epochs=1,
                             batch_size=200), runs_dir=tmp_path)
    row = result.log.iloc[0]
    assert result.epochs_completed == 1 and math.isfinite(row["loss"]) and row["acc"] > 0.1
    if method == "augmix":
        assert 0 <= row["js"] <= math.log(3) and row["loss"] > row["ce"]
