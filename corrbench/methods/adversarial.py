"""`at` and `trades`: L∞ adversarial training baselines of MAGN's tables.

`at` (Madry et al., ICLR 2018): CE on x + δ, δ from an L∞ PGD attack on the CE — ε 8/255, 7 steps
of 2.5ε/7 (MAGN §4: "7 PGD steps with step size 2.5ε/7"). Madry et al. start from a uniform
random point of the ε-ball and keep x + δ a valid image in [0, 1] (the defaults); MAGN's code
(TheoT1/DiGN `find_adv_input`) starts at δ = 0 and never clamps to [0, 1]: `random_start=false
clip=false` is that variant.

`trades` (Zhang et al., ICML 2019): CE(f(x), y) + β·KL(p(x) ‖ p(x_adv)), x_adv from PGD maximising
that KL — β 6, ε 0.031, 10 steps of 0.007, start x + 0.001·N(0, I), x_adv clamped to [0, 1]
(yaodongyu/TRADES `trades.py`, `train_trades_cifar10.py`). The KL's target p(x) is not detached
in the training loss (as in the code). DiGN's variant: zero start (`start='zero'`), no clamp
(`clip=false`). MAGN's TRADES row (§4) attacks like its AT row — ε 8/255, 7 steps of 2.5ε/7 — with SGD
Nesterov and the 150-epoch schedule: the bundled MAGN recipes set those, and β 3 (DiGN's default for its
TRADES weight; the paper gives none).

Both attack the model in eval mode (BatchNorm on running statistics), as the TRADES and DiGN codes
do, then train on the result in train mode. The attack runs on the module inside
DistributedDataParallel: it needs gradients with respect to the input only, and DDP's reducer is
for parameter gradients. The random start draws from the method's generator. The start point is
projected like every step (onto the ε-ball, and [0, 1] with `clip`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from corrbench.errors import InvalidValueError, check_range
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit
from corrbench.methods.mixing import unwrap

MAGN_RECIPE = Recipe(epochs=150, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                     schedule="step", milestones=(50, 100), gamma=0.1,
                     source="MAGN paper §4 (shared by all its baselines): 150 epochs, lr 0.1 ×0.1 every 50, "
                            "SGD Nesterov 0.9, wd 5e-4; batch size not stated (128 as the other CIFAR recipes)")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode inside the block; its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, epsilon: float, clip: bool) -> torch.Tensor:
    """Onto the L∞ ball of radius ε around x, then (with `clip`) into [0, 1]."""
    x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon)
    return x_adv.clamp(0.0, 1.0) if clip else x_adv


def pgd_linf(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
             start: torch.Tensor, *, epsilon: float, steps: int, step_size: float, clip: bool) -> torch.Tensor:
    """Projected sign-gradient ascent on `objective(model(x_adv))` from `start`, `steps` times (detached result)."""
    x = x.detach()
    x_adv = project_linf(start.detach(), x, epsilon, clip)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            value = objective(model(x_adv))
        (grad,) = torch.autograd.grad(value, x_adv)
        x_adv = project_linf(x_adv.detach() + step_size * grad.sign(), x, epsilon, clip)
    return x_adv.detach()


def uniform_start(x: torch.Tensor, epsilon: float, generator: torch.Generator) -> torch.Tensor:
    """x + U(−ε, ε) elementwise (Madry et al.'s random start)."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + epsilon * (2 * noise - 1)


def adversarial_examples(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, *,
                         epsilon: float, steps: int, step_size: float, random_start: bool,
                         clip: bool) -> torch.Tensor:
    """AT's attack: L∞ PGD on the summed CE, model (unwrapped from DDP) in eval mode."""
    start = uniform_start(x, epsilon, generator) if random_start else x
    with eval_mode(unwrap(model)) as attacked:
        return pgd_linf(attacked, x, lambda logits: F.cross_entropy(logits.float(), labels, reduction="sum"),
                        start, epsilon=epsilon, steps=steps, step_size=step_size, clip=clip)


def trades_examples(model: nn.Module, x: torch.Tensor, generator: torch.Generator, *, epsilon: float, steps: int,
                    step_size: float, start: str, clip: bool) -> torch.Tensor:
    """TRADES' attack: L∞ PGD on Σ KL(p(x) ‖ p(x_adv)), p(x) fixed, model (unwrapped from DDP) in eval mode."""
    with eval_mode(unwrap(model)) as attacked:
        with torch.no_grad():
            p_natural = F.softmax(attacked(x).float(), dim=1)
        if start == "gaussian":
            x_start = x + 0.001 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        else:
            x_start = x
        return pgd_linf(attacked, x,
                        lambda logits: F.kl_div(F.log_softmax(logits.float(), dim=1), p_natural, reduction="sum"),
                        x_start, epsilon=epsilon, steps=steps, step_size=step_size, clip=clip)


def trades_objective(logits_natural: torch.Tensor, logits_adv: torch.Tensor, labels: torch.Tensor,
                     beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(CE + β·KL, CE, KL) with KL = (1/B)·Σ_i Σ_c p_c(x_i)·(log p_c(x_i) − log p_c(x_adv,i)), float32."""
    ce = F.cross_entropy(logits_natural.float(), labels)
    # log-probability target: kl_div's gradient in a probability target is NaN where it is 0 (methods/losses.py)
    kl = F.kl_div(F.log_softmax(logits_adv.float(), dim=1), F.log_softmax(logits_natural.float(), dim=1),
                  reduction="batchmean", log_target=True)
    return ce + beta * kl, ce, kl


def check_attack(name: str, epsilon: float, steps: int, step_size: float) -> None:
    check_range(f"{name}.epsilon", epsilon, low=0)
    check_range(f"{name}.steps", steps, low=0)
    check_range(f"{name}.step_size", step_size, low=0)


@register_method
@dataclass
class AdversarialTraining(Method):
    epsilon: float = 8 / 255
    steps: int = 7
    step_size: float = 2.5 * (8 / 255) / 7     # 2.5·ε/steps
    random_start: bool = True                   # δ₀ ~ U(−ε, ε) (Madry); false: δ₀ = 0 (DiGN code)
    clip: bool = True                           # x + δ in [0, 1] (Madry); false: unclamped (DiGN code)

    name = "at"
    summary = "Adversarial training: CE on L∞ PGD examples, ε 8/255, 7 steps of 2.5ε/7 (Madry et al.)."
    recipe = MAGN_RECIPE
    choices = {
        "random_start": "true = start uniformly in the ε-ball (Madry et al.); false = δ₀ = 0 (DiGN code)",
        "clip": "true = adversarial images clamped to [0,1] (Madry et al.); false = unclamped (DiGN code)",
    }

    def __post_init__(self) -> None:
        check_attack(self.name, self.epsilon, self.steps, self.step_size)

    def loss(self, model, images, labels, generator):
        x_adv = adversarial_examples(model, to_unit(images), labels, generator, epsilon=self.epsilon,
                                     steps=self.steps, step_size=self.step_size, random_start=self.random_start,
                                     clip=self.clip)
        logits = model(x_adv)
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels)}


@register_method
@dataclass
class Trades(Method):
    beta: float = 6.0
    epsilon: float = 0.031
    steps: int = 10
    step_size: float = 0.007
    start: str = "gaussian"    # 'gaussian' = x + 0.001·N(0, I) (TRADES code) | 'zero' (DiGN code)
    clip: bool = True          # x_adv in [0, 1] (TRADES code); false: unclamped (DiGN code)

    name = "trades"
    summary = "TRADES: CE + β·KL(p(x) ‖ p(x_adv)), x_adv from L∞ PGD on the KL (Zhang et al. 2019)."
    recipe = Recipe(epochs=76, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=2e-4,
                    schedule="step", milestones=(74,), gamma=0.1,
                    source="yaodongyu/TRADES train_trades_cifar10.py: 76 epochs, batch 128, SGD 0.9, wd 2e-4, "
                           "lr 0.1 ×0.1 from (1-based) epoch 75 (MAGN retrained it with its 150-epoch recipe)")
    choices = {
        "start": "gaussian = x + 0.001·N(0,I) (TRADES paper and code); zero = x (DiGN code)",
        "clip": "true = x_adv clamped to [0,1] (TRADES code); false = unclamped (DiGN code)",
    }

    def __post_init__(self) -> None:
        check_range("trades.beta", self.beta, low=0)
        check_attack(self.name, self.epsilon, self.steps, self.step_size)
        if self.start not in ("gaussian", "zero"):
            raise InvalidValueError(f"trades.start must be 'gaussian' or 'zero', got '{self.start}'")

    def loss(self, model, images, labels, generator):
        x = to_unit(images)
        x_adv = trades_examples(model, x, generator, epsilon=self.epsilon, steps=self.steps,
                                step_size=self.step_size, start=self.start, clip=self.clip)
        logits_natural = model(x)
        logits_adv = model(x_adv)
        loss, ce, kl = trades_objective(logits_natural, logits_adv, labels, self.beta)
        return loss, {"ce": ce.detach(), "kl": kl.detach(), "acc": accuracy(logits_natural.detach(), labels)}
