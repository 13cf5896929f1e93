"""MAGN's robust baselines (at, trades, rse): attack geometry, the TRADES objective, RSE's test-time
ensemble (and that `eval` predicts through it), and one epoch of each on mnist5k."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from corrbench.config import RunConfig
from corrbench.data.datasets import load_dataset
from corrbench.engine.checkpoint import load_checkpoint
from corrbench.engine.evaluate import evaluate
from corrbench.engine.runs import load_run
from corrbench.engine.train import train
from corrbench.methods import create_method
from corrbench.methods.adversarial import adversarial_examples, pgd_linf, trades_examples, trades_objective

N, SIZE, CLASSES = 5, 4, 3


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Linear(nn.Module):
    """logits = W·flatten(x) + b, recording each call's input and train/eval mode."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(weight.shape[0]) if bias is None else bias)
        self.calls: list[tuple[torch.Tensor, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), self.training))
        return x.flatten(1) @ self.weight.T + self.bias


def random_linear(seed: int = 0, classes: int = CLASSES) -> Linear:
    return Linear(torch.randn(classes, 3 * SIZE * SIZE, generator=gen(seed)))


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    images = torch.randint(0, 256, (N, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
    return images, torch.randint(0, CLASSES, (N,), generator=g)


# --- AT -----------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), epsilon=st.floats(0.0, 0.3), steps=st.integers(0, 4),
       step_size=st.floats(0.0, 0.2), random_start=st.booleans(), clip=st.booleans())
def test_at_perturbation_stays_in_the_ball_and_in_range(seed, epsilon, steps, step_size, random_start, clip):
    model = random_linear(seed % 1000)
    g = gen(seed)
    x = torch.rand(N, 3, SIZE, SIZE, generator=g)
    x[0] = 0.0                                        # saturated pixels: [0, 1] binds
    x[1] = 1.0
    labels = torch.randint(0, CLASSES, (N,), generator=g)
    x_adv = adversarial_examples(model, x, labels, g, epsilon=epsilon, steps=steps, step_size=step_size,
                                 random_start=random_start, clip=clip)
    assert (x_adv - x).abs().max().item() <= epsilon + 1e-6
    if clip:
        assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0


def test_at_finds_the_worst_case_of_a_linear_model():
    """Two classes, y = 0: the CE grows with (w1 − w0)·x, so the L∞ optimum is x + ε·sign(w1 − w0)."""
    weight = torch.randn(2, 3 * SIZE * SIZE, generator=gen(1))
    model = Linear(weight)
    x = torch.full((1, 3, SIZE, SIZE), 0.5)
    labels = torch.tensor([0])
    x_adv = adversarial_examples(model, x, labels, gen(0), epsilon=0.1, steps=3, step_size=0.05,
                                 random_start=False, clip=True)
    expected = x + 0.1 * torch.sign(weight[1] - weight[0]).view(1, 3, SIZE, SIZE)
    assert torch.allclose(x_adv, expected, atol=1e-6)


def test_at_attacks_in_eval_mode_and_trains_on_the_adversarial_batch():
    model = random_linear(2)
    images, labels = batch(1)
    method = create_method("at")
    assert (method.epsilon, method.steps) == (8 / 255, 7)
    assert method.step_size == pytest.approx(2.5 * (8 / 255) / 7)
    loss, logs = method.loss(model, images, labels, gen(5))
    modes = [training for _, training in model.calls]
    assert modes == [False] * 7 + [True] and model.training        # 7 attack steps, then the training pass
    trained_on = model.calls[-1][0]
    x = images.float() / 255
    x_adv = adversarial_examples(model, x, labels, gen(5), epsilon=8 / 255, steps=7, step_size=2.5 * (8 / 255) / 7,
                                 random_start=True, clip=True)
    assert torch.equal(trained_on, x_adv)
    assert 0 < (trained_on - x).abs().max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        assert loss.item() == pytest.approx(F.cross_entropy(model(x_adv), labels).item(), rel=1e-6)
        assert loss.item() > F.cross_entropy(model(x), labels).item()
    other, _ = create_method("at").loss(random_linear(2), images, labels, gen(6))
    assert other.item() != loss.item()                                # the random start comes from the generator


def test_at_dign_variant_starts_at_zero_and_does_not_clamp():
    model = random_linear(3)
    x = torch.ones(1, 3, SIZE, SIZE)
    labels = torch.tensor([0])
    x_adv = adversarial_examples(model, x, labels, gen(0), epsilon=0.1, steps=1, step_size=0.1,
                                 random_start=False, clip=False)
    assert x_adv.max().item() == pytest.approx(1.1)             # above 1: the DiGN code never clamps
    first_input = model.calls[0][0]
    assert torch.equal(first_input, x)                          # δ₀ = 0


# --- TRADES -------------------------------------------------------------------------------------

def test_trades_objective_hand_computed():
    # p = softmax(0, ln 3) = (1/4, 3/4); q = softmax(0, 0) = (1/2, 1/2); y = 1
    logits_natural = torch.tensor([[0.0, math.log(3.0)]])
    logits_adv = torch.zeros(1, 2)
    loss, ce, kl = trades_objective(logits_natural, logits_adv, torch.tensor([1]), beta=6.0)
    want_kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl.item() == pytest.approx(want_kl, rel=1e-6)
    assert ce.item() == pytest.approx(math.log(4 / 3), rel=1e-6)
    assert loss.item() == pytest.approx(math.log(4 / 3) + 6.0 * want_kl, rel=1e-6)


def test_trades_kl_is_a_batch_mean_and_its_target_is_not_detached():
    logits_natural = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]], requires_grad=True)
    logits_adv = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    _, _, kl = trades_objective(logits_natural, logits_adv, torch.tensor([1, 0]), beta=1.0)
    assert kl.item() == pytest.approx((0.25 * math.log(0.5) + 0.75 * math.log(1.5)) / 2, rel=1e-6)
    (grad,) = torch.autograd.grad(kl, logits_natural)
    assert grad[0].abs().sum() > 0                  # gradient flows through p(x), as in the TRADES code


def test_trades_loss_is_ce_plus_beta_kl_on_its_attack():
    model = random_linear(4)
    images, labels = batch(2)
    method = create_method("trades")
    assert (method.beta, method.epsilon, method.steps, method.step_size) == (6.0, 0.031, 10, 0.007)
    loss, logs = method.loss(model, images, labels, gen(9))
    modes = [training for _, training in model.calls]
    assert modes == [False] * 11 + [True, True]     # p(x) once + 10 attack steps in eval; x and x_adv in train
    x = images.float() / 255
    x_adv = trades_examples(model, x, gen(9), epsilon=0.031, steps=10, step_size=0.007, start="gaussian", clip=True)
    assert torch.equal(model.calls[12][0], x_adv) and torch.equal(model.calls[11][0], x)
    assert (x_adv - x).abs().max() <= 0.031 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        want, ce, kl = trades_objective(model(x), model(x_adv), labels, 6.0)
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert logs["kl"].item() == pytest.approx(kl.item(), rel=1e-5) and kl.item() > 0


def test_pgd_ascends_its_objective():
    model = random_linear(5)
    x = torch.full((2, 3, SIZE, SIZE), 0.5)
    target = torch.tensor([0, 1])

    def objective(logits):
        return F.cross_entropy(logits, target, reduction="sum")

    x_adv = pgd_linf(model, x, objective, x, epsilon=0.05, steps=5, step_size=0.01, clip=True)
    with torch.no_grad():
        assert objective(model(x_adv)) > objective(model(x))


# --- RSE ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("average", ["probs", "logits"])
def test_rse_prediction_averages_10_noisy_passes(average):
    model = random_linear(6)
    method = create_method("rse", {"average": average})
    assert (method.passes, method.eval_sigma) == (10, 0.1)
    x = torch.rand(N, 3, SIZE, SIZE, generator=gen(0))
    got = method.predict(model, x)
    assert len(model.calls) == 10
    replay = gen(method.eval_seed)
    outputs = []
    for seen, _ in model.calls:
        noisy = x + 0.1 * torch.randn(x.shape, generator=replay)
        assert torch.allclose(seen, noisy, atol=1e-7)
        outputs.append(seen.flatten(1) @ model.weight.T + model.bias)
    stacked = torch.stack(outputs).detach()
    if average == "probs":
        assert torch.allclose(got.softmax(dim=1), stacked.softmax(dim=2).mean(0), atol=1e-6)
    else:
        assert torch.allclose(got, stacked.mean(0), atol=1e-5)
    assert torch.equal(method.predict(model, x), got)                        # re-seeded on every call
    assert not torch.equal(create_method("rse", {"eval_seed": "1", "average": average}).predict(model, x), got)


def test_rse_trains_on_gaussian_input_noise():
    model = random_linear(7)
    images, labels = batch(3)
    loss, _ = create_method("rse").loss(model, images, labels, gen(4))
    x = images.float() / 255
    noisy = x + 0.1 * torch.randn(x.shape, generator=gen(4))
    assert torch.allclose(model.calls[-1][0], noisy, atol=1e-7)
    with torch.no_grad():
        assert loss.item() == pytest.approx(F.cross_entropy(model(noisy), labels).item(), rel=1e-6)


# --- end to end ---------------------------------------------------------------------------------

def one_epoch(method: str, runs_dir, **method_params):
    # holdout leaves one batch of 200 training images: the whole engine path, at one step's cost
    return train(RunConfig(dataset="mnist5k", arch="mnist_cnn", method=method, epochs=1, batch_size=200,
                           holdout=3800, method_params=method_params), runs_dir=runs_dir)


@pytest.mark.parametrize("method", ["at", "trades", "rse"])
def test_one_epoch_on_mnist5k(method, tmp_path):
    result = one_epoch(method, tmp_path)
    assert result.epochs_completed == 1
    row = result.log.iloc[0]
    assert math.isfinite(row["loss"]) and 0 <= row["acc"] <= 1
    assert load_checkpoint(result.run_dir)["method_hyperparameters"] == create_method(method).hyperparameters()


def test_eval_predicts_through_rse_ensemble(tmp_path):
    run_dir = one_epoch("rse", tmp_path / "runs", passes="3", eval_sigma="1.0").run_dir  # σ 1: passes far apart
    result = evaluate(run_dir, "mnist5k-c", source="generated", corruptions=["contrast"], severities=[3],
                      batch_size=500, device="cpu", results_dir=tmp_path / "results")
    assert len(result.rows) == 2
    clean_nll = result.rows[result.rows.corruption == "clean"]["nll"].item()
    run = load_run(run_dir, torch.device("cpu"))
    assert run.method.passes == 3
    test = load_dataset("mnist5k", "test")
    images, labels = test.tensor(), test.labels
    ensemble, single = [], []
    for start in range(0, len(labels), 500):
        x = images[start:start + 500].float() / 255
        ensemble.append(run.method.predict(run.model, x))
        with torch.no_grad():
            single.append(run.model(x))
    ensemble_nll = F.cross_entropy(torch.cat(ensemble), labels).item()
    single_nll = F.cross_entropy(torch.cat(single), labels).item()
    assert clean_nll == pytest.approx(ensemble_nll, abs=1e-5)
    assert abs(clean_nll - single_nll) > 1e-3
