"""Mixing methods (mixup, cutmix, manifold-mixup, nfm, noisymix): exact formulas on hand-computed cases,
the draws replayed from the same generator, noise statistics, and one epoch of each on mnist5k."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from corrbench.config import RunConfig
from corrbench.engine.checkpoint import load_checkpoint
from corrbench.engine.train import train
from corrbench.errors import InvalidValueError, UserError
from corrbench.methods import create_method
from corrbench.methods.cutmix import box_lambda, box_mask, cutmix_box, sample_cutmix
from corrbench.methods.losses import jensen_shannon
from corrbench.methods.mixing import (choose_layer, mix, mixed_cross_entropy, nfm_noise, permutation, sample_beta,
                                      sample_lambda)
from corrbench.models.classifier import Classifier, Normalize

N, SIZE, CLASSES = 6, 8, 3


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Recorder(nn.Module):
    """Passes its input to `inner` and keeps a copy (what a stage or the stem received)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.seen: list[torch.Tensor] = []

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.seen.append(h.detach().clone())
        return self.inner(h)


class HookSpy(nn.Module):
    """Wraps a Classifier and records the `hook_at` of every forward that carries a feature hook."""

    def __init__(self, model: Classifier):
        super().__init__()
        self.model = model
        self.hook_ats: list[int | None] = []

    @property
    def num_stages(self) -> int:
        return self.model.num_stages

    def forward(self, x, feature_hook=None, hook_at=0):
        self.hook_ats.append(hook_at if feature_hook is not None else None)
        return self.model(x, feature_hook=feature_hook, hook_at=hook_at)


def tiny_classifier(stages: int = 3) -> Classifier:
    """Normalize → conv stem → `stages` conv+ReLU stages → pool+linear; no BatchNorm, so a forward
    pass over any batch is a per-image function and can be recomputed piecewise. Every stem/stage
    is a Recorder."""
    width = 4
    stem = Recorder(nn.Conv2d(3, width, 3, padding=1))
    blocks = [Recorder(nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())) for _ in range(stages)]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(width, CLASSES))
    model = Classifier(Normalize([0.5] * 3, [0.25] * 3), stem, blocks, head)
    g = gen(123)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model


def batch(seed: int = 0, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    images = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    return images, labels


def features(model: Classifier, x: torch.Tensor, upto: int) -> torch.Tensor:
    """Features after stages[:upto] without any hook (Recorders record too; callers clear them)."""
    with torch.no_grad():
        return model.forward_features(x, upto)


def clear(model: Classifier) -> None:
    model.stem.seen.clear()
    for stage in model.stages:
        stage.seen.clear()


# --- shared helpers -----------------------------------------------------------------------------

def test_sample_beta_moments_and_reproducibility():
    draws = sample_beta(2.0, 5.0, gen(0), (20000,))
    assert draws.min() > 0 and draws.max() < 1
    assert draws.mean().item() == pytest.approx(2 / 7, abs=0.005)
    assert draws.var().item() == pytest.approx(10 / (49 * 8), abs=0.002)
    assert torch.equal(sample_beta(2.0, 5.0, gen(0), (20000,)), draws)
    assert sample_lambda(0.0, gen(0)).item() == 1.0            # α = 0: no mixing
    assert sample_lambda(1.0, gen(1)).shape == ()


def test_mix_and_mixed_cross_entropy_hand_computed():
    x = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
    index = torch.tensor([1, 0])
    lam = torch.tensor(0.25)
    assert mix(x, lam, index).flatten().tolist() == [0.75, 0.25]
    # logits (0, ln 3): p = (1/4, 3/4); CE(y=0) = ln 4, CE(y=1) = ln 4/3
    logits = torch.tensor([[0.0, math.log(3.0)]])
    got = mixed_cross_entropy(logits, torch.tensor([0]), torch.tensor([1]), lam)
    assert got.item() == pytest.approx(0.25 * math.log(4) + 0.75 * math.log(4 / 3), rel=1e-6)


def test_grouped_mix_uses_one_lambda_and_one_permutation_per_group():
    x = torch.arange(6.0).view(6, 1, 1, 1)            # three groups of two
    got = mix(x, torch.tensor(0.5), torch.tensor([1, 0]), groups=3).flatten().tolist()
    assert got == [0.5, 0.5, 2.5, 2.5, 4.5, 4.5]


# --- mixup --------------------------------------------------------------------------------------

def test_mixup_trains_on_the_convex_combination_with_the_mixed_loss():
    model = tiny_classifier()
    images, labels = batch()
    method = create_method("mixup")
    loss, logs = method.loss(model, images, labels, gen(7))
    replay = gen(7)
    lam = sample_lambda(1.0, replay)
    index = permutation(N, replay)
    x = images.float() / 255
    assert 0 < lam.item() < 1 and not torch.equal(index, torch.arange(N))
    seen = model.stem.seen[-1]                        # the normalised input of the forward pass
    assert torch.allclose(seen, model.normalize(lam * x + (1 - lam) * x[index]), atol=1e-6)
    with torch.no_grad():
        logits = model(lam * x + (1 - lam) * x[index])
    expected = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels[index])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["lam"].item() == pytest.approx(lam.item())


# --- cutmix -------------------------------------------------------------------------------------

@pytest.mark.parametrize("center, box, lam", [
    ((5, 5), (3, 7, 3, 7), 1 - 16 / 100),     # λ 0.75 → side ⌊10·0.5⌋ = 5, half 2: a 4×4 box inside
    ((1, 8), (0, 3, 6, 10), 1 - 12 / 100),    # clipped at the top and right: 3×4
    ((0, 0), (0, 2, 0, 2), 1 - 4 / 100),      # clipped at a corner: 2×2
])
def test_cutmix_box_and_lambda_from_the_clipped_area(center, box, lam):
    got = cutmix_box(10, 10, torch.tensor(0.75), torch.tensor(center[0]), torch.tensor(center[1]))
    assert tuple(int(v) for v in got) == box
    assert box_lambda(10, 10, got).item() == pytest.approx(lam)
    assert box_mask(10, 10, got).sum().item() == (box[1] - box[0]) * (box[3] - box[2])


def test_cutmix_pastes_the_partner_box_and_weights_the_loss_by_area():
    model = tiny_classifier()
    images, labels = batch(1)
    method = create_method("cutmix", {"prob": 1.0})
    loss, logs = method.loss(model, images, labels, gen(3))
    x = images.float() / 255
    mixed, lam, index = sample_cutmix(x, 1.0, 1.0, gen(3))
    assert 0 < lam.item() < 1
    inside = (mixed != x).any(dim=(0, 1))             # the pasted pixels: one axis-aligned box of area (1 − λ)·H·W
    rows, cols = inside.any(1).nonzero().flatten(), inside.any(0).nonzero().flatten()
    assert inside.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert inside.sum().item() == round((1 - lam.item()) * SIZE * SIZE)
    assert torch.equal(mixed[:, :, inside], x[index][:, :, inside])
    assert torch.allclose(model.stem.seen[-1], model.normalize(mixed), atol=1e-6)
    with torch.no_grad():
        logits = model(mixed)
    expected = lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels[index])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_cutmix_skipped_batches_train_on_clean_images_with_plain_ce():
    model = tiny_classifier()
    images, labels = batch(2)
    loss, logs = create_method("cutmix", {"prob": 0.0}).loss(model, images, labels, gen(4))
    x = images.float() / 255
    assert torch.allclose(model.stem.seen[-1], model.normalize(x), atol=1e-6)
    with torch.no_grad():
        assert loss.item() == pytest.approx(F.cross_entropy(model(x), labels).item(), rel=1e-6)
    assert logs["lam"].item() == 1.0


def test_cutmix_applies_with_its_probability():
    x = torch.rand(4, 3, SIZE, SIZE, generator=gen(0))
    g = gen(9)
    applied = [sample_cutmix(x, 1.0, 0.5, g)[1].item() < 1 for _ in range(400)]
    assert sum(applied) / 400 == pytest.approx(0.5, abs=0.08)


# --- manifold mixup -----------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [0, 1, 2])
def test_manifold_mixup_mixes_at_the_chosen_stage(layer):
    model = tiny_classifier()
    spy = HookSpy(model)
    images, labels = batch(3)
    x = images.float() / 255
    method = create_method("manifold-mixup", {"layers": str(layer)})
    method.loss(spy, images, labels, gen(11))
    assert spy.hook_ats == [-1 if layer == 0 else layer]
    # layer 0 mixes the normalised input (what the stem receives); layer i what stages[i] receives
    receiver = model.stem if layer == 0 else model.stages[layer]
    received = receiver.seen[-1]
    before = model.stages[layer - 1].seen[-1] if layer > 0 else None
    clear(model)
    clean = model.normalize(x) if layer == 0 else features(model, x, layer)
    replay = gen(11)
    lam, index = sample_lambda(2.0, replay), permutation(N, replay)
    assert torch.allclose(received, lam * clean + (1 - lam) * clean[index], atol=1e-5)
    assert not torch.allclose(received, clean, atol=1e-3)
    if before is not None:                            # the stage before the mixing point saw unmixed features
        clear(model)
        assert torch.allclose(before, features(model, x, layer - 1), atol=1e-5)


def test_manifold_mixup_draws_its_layer_uniformly_from_input_stage1_stage2():
    model = tiny_classifier()
    spy = HookSpy(model)
    images, labels = batch(4)
    method = create_method("manifold-mixup")
    assert method.layers == (0, 1, 2) and method.alpha == 2.0
    g = gen(0)
    for _ in range(30):
        method.loss(spy, images, labels, g)
    assert set(spy.hook_ats) == {-1, 1, 2}
    replay = gen(0)
    expected = []
    for _ in range(30):
        k = choose_layer((0, 1, 2), replay)
        sample_lambda(2.0, replay), permutation(N, replay)
        expected.append(-1 if k == 0 else k)
    assert spy.hook_ats == expected


def test_manifold_mixup_bce_option_is_the_official_codes_loss():
    model = tiny_classifier()
    images, labels = batch(5)
    loss, logs = create_method("manifold-mixup", {"layers": "1", "loss_form": "bce"}).loss(model, images, labels,
                                                                                         gen(2))
    replay = gen(2)
    lam, index = sample_lambda(2.0, replay), permutation(N, replay)
    clear(model)
    h = features(model, images.float() / 255, 1)
    with torch.no_grad():
        logits = model.forward_from(lam * h + (1 - lam) * h[index], 1)
    target = lam * F.one_hot(labels, CLASSES) + (1 - lam) * F.one_hot(labels[index], CLASSES)
    expected = nn.BCELoss()(F.softmax(logits, dim=1), target.float())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5) and "bce" in logs


def test_layer_settings_are_checked():
    assert create_method("manifold-mixup", {"layers": "0,2"}).layers == (0, 2)
    with pytest.raises(InvalidValueError, match="layers"):
        create_method("nfm", {"layers": "-1"})
    images, labels = batch()
    with pytest.raises(InvalidValueError, match="3 stages"):
        create_method("nfm", {"layers": "4"}).loss(tiny_classifier(), images, labels, gen(0))
    with pytest.raises(UserError, match="Classifier"):
        create_method("nfm").loss(nn.Linear(3, 3), images, labels, gen(0))
    with pytest.raises(InvalidValueError, match="sparsity"):
        create_method("noisymix", {"sparsity": "1.5"})


# --- NFM noise ----------------------------------------------------------------------------------

def test_nfm_additive_noise_statistics_per_group():
    """(out − h) = σ_g·b_g·N(0, 1) per group, b_g ~ Beta(2, 5): per-call std / σ_g recovers b_g."""
    levels = (0.5, 1.0, 1.5)
    h = torch.ones(3, 4000)
    g = gen(1)
    ratios = []
    for _ in range(300):
        noise = nfm_noise(h, levels, 0.0, g) - h
        assert noise.mean().abs() < 0.1
        ratios.append(noise.std(dim=1) / torch.tensor(levels))
    b = torch.stack(ratios)
    assert b.mean().item() == pytest.approx(2 / 7, abs=0.02)                 # E b
    assert (b ** 2).mean().item() == pytest.approx(6 / 56, abs=0.012)        # E b² = α(α+1)/((α+β)(α+β+1))
    assert b.mean(0).tolist() == pytest.approx([2 / 7] * 3, abs=0.035)       # same law per group: σ ×1/×2/×3


def test_nfm_multiplicative_noise_statistics():
    """out / h − 1 = σ_mult·b·U(−1, 1): bounded by σ_mult, its per-call maximum recovers b."""
    h = torch.full((2, 5000), 2.0)
    g = gen(2)
    peaks = []
    for _ in range(300):
        relative = nfm_noise(h, (0.0,), 0.2, g) / h - 1
        assert relative.abs().max() <= 0.2
        assert relative.mean().abs() < 0.02
        peaks.append(relative.abs().max().item() / 0.2)
    assert sum(peaks) / len(peaks) == pytest.approx(2 / 7, abs=0.02)


def test_nfm_sparsity_leaves_that_fraction_unchanged_per_noise_type():
    h = torch.ones(3, 20000)
    out = nfm_noise(h, (0.5, 1.0, 1.5), 0.5, gen(3), sparsity=0.65)
    unchanged = (out == h).float().mean().item()
    assert unchanged == pytest.approx(0.65 ** 2, abs=0.01)      # independent masks: both noises off
    add_only = nfm_noise(h, (0.5,), 0.0, gen(4), sparsity=0.65)
    assert (add_only == h).float().mean().item() == pytest.approx(0.65, abs=0.01)


def test_nfm_noise_off_returns_the_input_and_draws_nothing():
    h = torch.randn(2, 5, generator=gen(0))
    g = gen(5)
    state = g.get_state()
    assert nfm_noise(h, (0.0,), 0.0, g) is h
    assert torch.equal(g.get_state(), state)


def test_nfm_noises_after_mixing_at_the_chosen_layer():
    model = tiny_classifier()
    images, labels = batch(6)
    method = create_method("nfm", {"layers": "2"})
    assert (method.alpha, method.add_noise, method.mult_noise) == (1.0, 0.4, 0.2)
    loss, _ = method.loss(model, images, labels, gen(8))
    received = model.stages[2].seen[-1]
    clear(model)
    h = features(model, images.float() / 255, 2)
    replay = gen(8)
    lam, index = sample_lambda(1.0, replay), permutation(N, replay)
    expected = nfm_noise(lam * h + (1 - lam) * h[index], (0.4,), 0.2, replay)
    assert torch.allclose(received, expected, atol=1e-5)
    with torch.no_grad():
        logits = model.forward_from(expected, 2)
    assert loss.item() == pytest.approx(mixed_cross_entropy(logits, labels, labels[index], lam).item(), rel=1e-5)


# --- NoisyMix -----------------------------------------------------------------------------------

def augmix_views(images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    from corrbench.augment.augmix import augmix

    return [augmix(images, generator, severity=3, width=3, depth=-1, alpha=1.0, all_ops=False) for _ in range(2)]


def test_noisymix_with_alpha_0_and_no_noise_is_augmix_plus_jsd():
    model = tiny_classifier()
    images, labels = batch(7)
    method = create_method("noisymix", {"alpha": "0", "add_noise": "0", "mult_noise": "0"})
    loss, logs = method.loss(model, images, labels, gen(21))
    views = augmix_views(images, gen(21))
    with torch.no_grad():
        logits = model(torch.cat([images.float() / 255] + views))
    clean, aug1, aug2 = logits.split(N)
    expected = F.cross_entropy(clean, labels) + 12 * jensen_shannon(clean, aug1, aug2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["jsd"].item() > 0


def test_noisymix_mixes_the_three_splits_with_one_lambda_and_one_permutation():
    model = tiny_classifier()
    images, labels = batch(8)
    method = create_method("noisymix", {"layers": "1", "add_noise": "0", "mult_noise": "0"})
    loss, _ = method.loss(model, images, labels, gen(22))
    received = model.stages[1].seen[-1]
    replay = gen(22)
    views = augmix_views(images, replay)
    lam, index = sample_lambda(1.0, replay), permutation(N, replay)
    clear(model)
    h = features(model, torch.cat([images.float() / 255] + views), 1)
    expected = torch.cat([lam * part + (1 - lam) * part[index] for part in h.split(N)])
    assert received.shape[0] == 3 * N
    assert torch.allclose(received, expected, atol=1e-5)
    with torch.no_grad():
        clean, aug1, aug2 = model.forward_from(expected, 1).split(N)
    want = mixed_cross_entropy(clean, labels, labels[index], lam) + 12 * jensen_shannon(clean, aug1, aug2)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("input_space", ["reference", "dataset"])
def test_noisymix_scales_the_additive_level_per_split(input_space):
    model = tiny_classifier()
    images, labels = batch(9)
    method = create_method("noisymix", {"layers": "0", "input_space": input_space})
    assert (method.add_noise, method.mult_noise, method.sparsity, method.jsd_weight) == (0.5, 0.5, 0.65, 12.0)
    method.loss(model, images, labels, gen(23))
    received = model.stem.seen[-1]
    replay = gen(23)
    views = augmix_views(images, replay)
    lam, index = sample_lambda(1.0, replay), permutation(N, replay)
    pixels = torch.cat([images.float() / 255] + views)
    if input_space == "reference":
        # erichson/NoisyMix: Normalize([0.5]*3, [0.5]*3) in the loader, mix + noise on that tensor
        noised = nfm_noise(mix((pixels - 0.5) / 0.5, lam, index, groups=3), (0.5, 1.0, 1.5), 0.5, replay,
                           sparsity=0.65)
        expected = model.normalize(noised * 0.5 + 0.5)
    else:
        mixed = mix(model.normalize(pixels), lam, index, groups=3)
        expected = nfm_noise(mixed, (0.5, 1.0, 1.5), 0.5, replay, sparsity=0.65)
    assert torch.allclose(received, expected, atol=1e-5)


# --- end to end ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["mixup", "cutmix", "manifold-mixup", "nfm", "noisymix"])
def test_one_epoch_on_mnist5k(method, tmp_path):
    # holdout leaves one batch of 200 training images: the whole engine path, at one step's cost
    result = train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method=method, epochs=1, batch_size=200,
                             holdout=3800), runs_dir=tmp_path)
    assert result.epochs_completed == 1
    row = result.log.iloc[0]
    assert math.isfinite(row["loss"]) and 0 <= row["acc"] <= 1
    saved = load_checkpoint(result.run_dir)
    assert saved["method_hyperparameters"] == create_method(method).hyperparameters()


@pytest.mark.parametrize("arch", ["wrn_28_2", "wrn_28_4_noisymix"])
def test_wrn_stage_3_mix_sees_the_raw_group_output_before_the_final_bn_relu(arch):
    # erichson/NoisyMix wide_resnet.py mixes layer3's output; F.relu(self.bn1(out)) comes after, in the head
    from corrbench.models import create_model

    model = create_model(arch, num_classes=CLASSES, image_size=32, mean=(0.5,) * 3, std=(0.25,) * 3).eval()
    x = torch.rand(2, 3, 32, 32, generator=gen(5))
    seen = []
    logits = model(x, feature_hook=lambda h: seen.append(h) or h, hook_at=3)
    assert seen[0].shape[1] == model.head.fc.in_features and bool((seen[0] < 0).any())
    last = model.stages[2]
    final_bn = last[last.num_blocks]
    expected = model.head.fc(torch.relu(final_bn(seen[0])).mean(dim=(2, 3)))
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.equal(logits, model(x))
