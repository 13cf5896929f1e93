"""`rse`: random self-ensemble with input noise only, as MAGN's baseline (Liu et al., ECCV 2018).

Training: CE on x + σ·N(0, I) (σ 0.1 on CIFAR, 0.3 on Tiny-ImageNet), in [0, 1] pixel space,
unclipped. Prediction (`predict`, used by `corrbench eval`): `passes` noisy copies x + σ_eval·N(0, I)
through the model in eval mode, ensembled. The original RSE adds noise layers before every conv;
MAGN (Tsiligkaridis & Tsiligkaridis, §2 and §4: "noise injection at the input layer", σ = 0.1) and
its code (TheoT1/DiGN `mode='rse'`, `evaluate(ensemble=True, N=10)`) keep only the input noise.

Paper vs code (`choices`): MAGN defines the ensemble as argmax_c (1/n)·Σ_i p_c(x + δ_i), an
average of softmax probabilities (`average='probs'`, the default; the returned logits are
log of the mean probabilities, so softmax gives that mean); the code averages logits
(`average='logits'`). Both add the noise to [0, 1] pixels (the code's docstring says "after
normalisation", but its normalisation only touches three images per batch).

Evaluation noise: `Method.predict` gets no generator, so every call seeds a fresh generator on the
inputs' device with `eval_seed` — the same images in the same batch layout give the same logits
on every run. The noise of an image depends on its position within the batch: results are
reproducible for a given eval batch size, not across batch sizes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from corrbench.errors import InvalidValueError, check_range
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit

AVERAGES = ("probs", "logits")


@register_method
@dataclass
class RandomSelfEnsemble(Method):
    sigma: float = 0.1          # training noise std ([0, 1] pixels)
    eval_sigma: float = 0.1     # test-time noise std
    passes: int = 10            # noisy forward passes per prediction
    average: str = "probs"      # 'probs' (paper) | 'logits' (code)
    eval_seed: int = 0          # seeds the test-time noise, afresh on every predict call

    name = "rse"
    summary = "Random self-ensemble: train with input noise σ, predict by averaging 10 noisy passes (MAGN's RSE)."
    recipe = Recipe(epochs=150, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                    schedule="step", milestones=(50, 100), gamma=0.1,
                    source="MAGN paper §4 (shared by all its baselines): 150 epochs, lr 0.1 ×0.1 every 50, "
                           "SGD Nesterov 0.9, wd 5e-4; batch size not stated (128 as the other CIFAR recipes)")
    choices = {
        "average": "probs = mean of softmax over the passes (MAGN paper's ensemble); "
                   "logits = mean of logits (TheoT1/DiGN evaluate)",
        "eval_seed": "test-time noise generator seed, re-seeded on every predict call (deterministic across runs)",
    }

    def __post_init__(self) -> None:
        check_range("rse.sigma", self.sigma, low=0)
        check_range("rse.eval_sigma", self.eval_sigma, low=0)
        check_range("rse.passes", self.passes, low=1)
        if self.average not in AVERAGES:
            raise InvalidValueError(f"rse.average must be 'probs' or 'logits', got '{self.average}'")

    def loss(self, model, images, labels, generator):
        x = to_unit(images)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        logits = model(x + self.sigma * noise)
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels)}

    def eval_generator(self, device: torch.device) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(self.eval_seed)
        return generator

    @torch.no_grad()
    def predict(self, model, inputs):
        generator = self.eval_generator(inputs.device)
        by_logits = self.average == "logits"
        total = None
        for _ in range(self.passes):
            noise = torch.randn(inputs.shape, generator=generator, device=inputs.device, dtype=inputs.dtype)
            logits = model(inputs + self.eval_sigma * noise).float()
            if by_logits:
                total = logits if total is None else total + logits
            else:   # log Σ_i softmax_i, accumulated in log space (stable for confident passes)
                log_probs = F.log_softmax(logits, dim=1)
                total = log_probs if total is None else torch.logaddexp(total, log_probs)
        assert total is not None
        return total / self.passes if by_logits else total - math.log(self.passes)
