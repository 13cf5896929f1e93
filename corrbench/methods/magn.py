"""`magn`, `magn+augmix`: misclassification-aware Gaussian smoothing (Tsiligkaridis & Tsiligkaridis,
arXiv 2104.01231 v1, Eq. 6 and Algorithm 1; code TheoT1/DiGN, `mode='DiGN'` with `conf_adapt=True`).

    loss = CE(f(x), y) + λ1 · mean_batch( p_y(x) · mean_n KL(p(x) ‖ p(x + δ_n)) )
                       [+ λ2 · JS(p(x), p(aug1), p(aug2))  for magn+augmix]

with δ_n = σ_n·N(0, I), σ_n ~ U(0, σ_max) drawn per example and per draw. Defaults follow the paper:
λ1 = 3, λ2 = 12, σ_max = 0.2 (§4 and Table 4's first row), one draw (Algorithm 1: "a single
stochastic draw"; `n_samples` is the option, the code's configs use 3).

Choices where paper and code differ (methods.md §2, §6.4):
- `space`: the code documents the noise as added after normalisation, but its `normalize()` touches
  only three samples per batch, so the noise is effectively on [0, 1] pixels — 'pixel' (default, as
  the `gaussian-noise` baseline) or 'normalized' (the documented intent). Noise is not clipped (code).
- `detach_weight`: the code keeps p_y(x) and p(x) inside the KL in the graph (default false); true
  detaches the weight p_y(x).
- `confidence_weight`: the paper's p_y(x) weighting (default true); false is the un-weighted DiGN
  regulariser that the released configs train.
- `forward`: the code runs clean, every noisy copy and every AugMix view as separate forward passes, so
  BatchNorm normalises each with its own statistics ('separate', default); 'joint' concatenates them into
  one pass (faster on a GPU; BatchNorm sees the mixed batch). The paper does not say.
- AugMix views for magn+augmix: AugMix's standard chains ("mixing chains of AugMix [12]") with severity 3;
  the code draws the severity per image from 1..10 (not reproduced). JS as in AugMix (M clamped at 1e-7).

Random draws: the AugMix views first (magn+augmix), then per noisy copy σ (B values) and ε (B×C×H×W).
KL(p ‖ q) is Σ p·(log p − log q) from log-softmaxes (the code adds 1e-14 inside the logs instead).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit
from corrbench.methods.gaussian_noise import per_example_gaussian_noise

MAGN_RECIPE = Recipe(epochs=150, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                     schedule="step", milestones=(50, 100), gamma=0.1,
                     source="MAGN paper §4: 150 epochs, lr 0.1 ×0.1 every 50 epochs, SGD Nesterov 0.9, wd 5e-4 "
                            "(batch size not stated; 128 here, the code's README uses 512)")
SPACES = ("pixel", "normalized")
FORWARDS = ("separate", "joint")


def kl_per_example(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ_c p_c (log p_c − log q_c) per example, p = softmax(logits_p), in float32."""
    log_p = F.log_softmax(logits_p.float(), dim=1)
    log_q = F.log_softmax(logits_q.float(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


@register_method
@dataclass
class MAGN(Method):
    lambda1: float = 3.0            # weight of the misclassification-aware Gaussian consistency term
    sigma_max: float = 0.2          # σ ~ U(0, σ_max) per example and draw
    n_samples: int = 1              # noisy draws averaged in the KL term (Algorithm 1: 1)
    space: str = "pixel"            # 'pixel' (code, effectively) | 'normalized' (code's docstring)
    detach_weight: bool = False     # detach p_y(x) (the code does not)
    confidence_weight: bool = True  # weight by p_y(x) (paper); false = un-weighted DiGN
    forward: str = "separate"       # 'separate' passes (code) | 'joint' (one concatenated pass)

    name = "magn"
    summary = "CE + λ1·p_y(x)·KL(p(x) ‖ p(x+δ)), δ ~ N(0, σ²I), σ ~ U(0, σ_max) (MAGN)."
    recipe = MAGN_RECIPE
    choices = {
        "space": "pixel = noise on [0,1] pixels (what the DiGN code effectively does, default); "
                 "normalized = after mean/std normalisation (what its docstring says)",
        "detach_weight": "false = p_y(x) stays in the graph (code, default); true = detached",
        "confidence_weight": "true = p_y(x)-weighted KL (paper's MAGN, default); false = un-weighted (DiGN configs)",
        "n_samples": "1 = Algorithm 1's single draw (default); the DiGN configs use 3",
        "forward": "separate = one forward pass per view, BatchNorm per view (code, default); "
                   "joint = one concatenated pass (faster)",
    }

    def __post_init__(self) -> None:
        if self.lambda1 < 0:
            raise InvalidValueError(f"{self.name}.lambda1 must be ≥ 0, got {self.lambda1}")
        if self.sigma_max < 0:
            raise InvalidValueError(f"{self.name}.sigma_max must be ≥ 0, got {self.sigma_max}")
        if self.n_samples < 1:
            raise InvalidValueError(f"{self.name}.n_samples must be ≥ 1, got {self.n_samples}")
        if self.space not in SPACES:
            raise InvalidValueError(f"{self.name}.space must be 'pixel' or 'normalized', got '{self.space}'")
        if self.forward not in FORWARDS:
            raise InvalidValueError(f"{self.name}.forward must be 'separate' or 'joint', got '{self.forward}'")

    def augmix_views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """No AugMix views for plain MAGN."""
        return []

    def views_logits(self, model, x: torch.Tensor, others: list[torch.Tensor],
                     noises: list[torch.Tensor]) -> list[torch.Tensor]:
        """Logits of [x, x + δ_1 … x + δ_n, *others] (noise in pixel or normalised space)."""
        inputs = [x] * (1 + len(noises)) + others
        offsets = [None] + noises + [None] * len(others)
        if self.forward == "joint":
            zeros = torch.zeros_like(x)
            stacked = torch.cat(inputs)
            offset = torch.cat([zeros if o is None else o for o in offsets])
            logits = self._forward(model, stacked, offset)
            return list(logits.split(x.shape[0]))
        return [self._forward(model, view, offset) for view, offset in zip(inputs, offsets)]

    def _forward(self, model, x: torch.Tensor, offset: torch.Tensor | None) -> torch.Tensor:
        if offset is None:
            return model(x)
        if self.space == "pixel":
            return model(x + offset)
        return model(x, hook_at=-1, feature_hook=lambda h: h + offset)

    def loss(self, model, images, labels, generator):
        x = to_unit(images)
        others = self.augmix_views(images, generator)
        zeros = torch.zeros_like(x)
        noises = [per_example_gaussian_noise(zeros, self.sigma_max, generator) for _ in range(self.n_samples)]
        logits, *rest = self.views_logits(model, x, others, noises)
        noisy_logits, other_logits = rest[:len(noises)], rest[len(noises):]

        ce = cross_entropy(logits, labels)
        kl = torch.stack([kl_per_example(logits, noisy) for noisy in noisy_logits]).mean(dim=0)
        if self.confidence_weight:
            p_true = F.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
            weight = p_true.detach() if self.detach_weight else p_true
            consistency = (weight * kl).mean()
        else:
            consistency = kl.mean()
        loss = ce + self.lambda1 * consistency
        logs = {"ce": ce.detach(), "acc": accuracy(logits.detach(), labels), "kl": kl.detach().mean(),
                "consistency": consistency.detach()}
        if other_logits:
            from corrbench.methods.losses import jensen_shannon

            js = jensen_shannon(logits, *other_logits)
            loss = loss + self.lambda2 * js
            logs["js"] = js.detach()
        return loss, logs


@register_method
@dataclass
class MAGNAugMix(MAGN):
    lambda2: float = 12.0   # weight of AugMix's Jensen–Shannon consistency
    severity: int = 3       # AugMix severity (the code: per image 1..10)

    name = "magn+augmix"
    summary = "MAGN + λ2·JS(clean, AugMix, AugMix) (MAGN + AugMix, Algorithm 1)."
    choices = {**MAGN.choices,
               "severity": "3 = AugMix's standard chains (paper cites AugMix, default); "
                           "the DiGN code draws 1..10 per image (not reproduced)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lambda2 < 0:
            raise InvalidValueError(f"magn+augmix.lambda2 must be ≥ 0, got {self.lambda2}")

    def augmix_views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        from corrbench.augment.augmix import augmix

        return [augmix(images, generator, severity=self.severity).float() for _ in range(2)]
