"""`esp`, `l2-noise`, `augmix+esp`: exponential smoothing on L2 perturbations (ICLR 2023 submission,
OpenReview U7LLhh3VFxH, Alg. 1) and its fixed-radius baseline.

ESP, per example: radius k ~ N(ε, σ²) truncated to [ε − τ, ε + τ]; a random direction v ~ N(0, I);
x' = clip(x + η·v, 0, 1) with η from clipping-aware rescaling (Rauber & Bethge 2020,
`corrbench.augment.l2`) so that ‖x' − x‖₂ = k exactly; the label keeps s(k) on the true class and
(1 − s(k))/(C − 1) on every other one, with s(z) = exp(−λ(z − ε)) for z ≥ ε, else 1, and
λ = ln(C / (1 + ξC)) / τ, so that s(ε) = 1 and s(ε + τ) = 1/C + ξ. Loss: soft-target cross-entropy.

Choices (methods.md §4, §6.6):
- λ's denominator: the text says s interpolates (ε, 1) and (ε + τ, 1/C + ξ), which needs `/τ`
  (default, `lambda_rule='text'`); Alg. 1 prints `/(τ − ε)`, singular for the paper's own τ ≈ ε
  (`lambda_rule='algorithm'`, a typo we keep only as an option).
- σ = 0.5·τ and τ = ε (Sec. 3.2/4.2: "σ = 0.5τ and τ ≈ ε"): the defaults when `sigma`/`tau` are None.
- ξ from the paper's rule: the maximally smoothed true label 1/C + ξ is γ times each other label, i.e.
  1/C + ξ = γ/(C − 1 + γ). The paper's γ per dataset: {10, 20} MNIST-C/CIFAR-10-C, {20, 50, 100}
  CIFAR-100-C, {200} Tiny-ImageNet-C; `gamma=None` takes the first of the list that matches the number
  of classes (10 for C ≤ 10, 20 for C ≤ 100, 200 beyond). `xi` set explicitly overrides γ.
- ε: the paper grid-searches it (values only in its appendix, not available). The default 2.0 is
  corrbench's choice: about the L2 norm of CIFAR-10-C Gaussian noise at severity 1 on 32×32×3
  images (σ 0.04 · √3072 ≈ 2.2). Tune it with `--set esp.epsilon=…` (per-pixel RMS = ε/√(C·H·W)).
- s is evaluated at the achieved norm ‖x' − x‖₂; it equals the sampled k unless k is not reachable
  inside [0, 1] (then the image moved less, and its label says so).
- The direction is not normalised first: the rescaling fixes the length, so v and v/‖v‖ give the same x'.

`l2-noise` (the paper's "L2" rows, Sec. 3.3): the same rescaled random direction at the fixed radius
ε with hard labels (the τ → 0, ξ → 1 − 1/C limit of ESP).

`grey_size` (ESP and L2): 0 perturbs every pixel of every channel (d = C·H·W). N > 0 perturbs only the
centred N×N window of channel 0 and copies it to every channel: MNIST is served as 32×32 RGB (the 28×28
digit padded by 2 px, grey copied to R, G, B), and the paper perturbs the 28×28 grey image (d = 784), so
`grey_size = 28` is its MNIST setting; the padding stays untouched.

Compositions for the rest of Table 1 (the paper does not say how the parts combine; corrbench's choice,
one rule for all): the perturbation (ESP or L2) acts on the clean view with its label; AugMix adds two
views of the unperturbed image and λ·JS(p(x'), p(aug1), p(aug2)) with the views in one forward pass;
DeepAugment distorts the first 75 % of every view inside the network (Noise2Net on the normalised image,
a fresh random network per view and step). Names: `augmix+l2-noise`, `deepaugment+l2-noise`,
`deepaugment+esp`, `augmix+deepaugment`, `augmix+deepaugment+l2-noise`, `augmix+deepaugment+esp`.
Random draws: AugMix views, then the perturbation, then Noise2Net (inside the forward pass).

`augmix+esp`: the paper combines ESP with AugMix but does not say how (§6.6). corrbench keeps AugMix's
JSD recipe and lets ESP replace the clean view: x_e = ESP(x) with its smoothed label, two AugMix views
of x, one joint forward pass (as AugMix's code), loss = soft-CE(x_e) + λ·JS(p(x_e), p(aug1), p(aug2)),
λ = 12. Random draws: the two AugMix views first, then ESP's radius and direction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from corrbench.augment.l2 import l2_perturb, precise_dtype
from corrbench.augment.smoothing import soft_cross_entropy, true_class_targets
from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit

LAMBDA_RULES = ("text", "algorithm")

ESP_RECIPE = Recipe(
    epochs=100, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine",
    source="ESP §4.2: SGD momentum 0.9, lr 0.1 ('in all our experiments'), cosine decay 'as in AugMix' "
           "(AugMix CIFAR code: 100 epochs, batch 128, Nesterov, wd 5e-4); Tiny-ImageNet: step ×0.1 at epochs 100 "
           "and 150 (recipe esp_table1_tinyimagenet); MNIST: lr 0.1, no translation, grey_size 28 "
           "(recipe esp_table1_mnist)")


def xi_from_gamma(gamma: float, num_classes: int) -> float:
    """ξ such that the maximally smoothed true label 1/C + ξ is γ times each other label (ESP §4.2)."""
    return gamma / (num_classes - 1 + gamma) - 1.0 / num_classes


def paper_gamma(num_classes: int) -> float:
    """The first γ of the paper's list for a dataset with this many classes (ESP §4.2)."""
    if num_classes <= 10:
        return 10.0
    if num_classes <= 100:
        return 20.0
    return 200.0


def esp_decay_rate(num_classes: int, epsilon: float, tau: float, xi: float, rule: str = "text") -> float:
    """λ of s(z) = exp(−λ(z − ε)): ln(C/(1 + ξC)) / τ ('text'), or / (τ − ε) ('algorithm', as Alg. 1 prints)."""
    log_ratio = math.log(num_classes / (1.0 + xi * num_classes))
    if tau == 0:
        return 0.0   # every radius is ε: nothing beyond ε to smooth
    denominator = tau if rule == "text" else tau - epsilon
    if denominator == 0:
        raise InvalidValueError("esp.lambda_rule='algorithm' divides by τ − ε, which is 0 here; "
                                "use lambda_rule='text' or a τ different from ε")
    return log_ratio / denominator


def esp_true_probability(radius: torch.Tensor, epsilon: float, decay_rate: float) -> torch.Tensor:
    """s(k) = exp(−λ(k − ε)) for k ≥ ε, else 1 (ESP Alg. 1), elementwise in float32."""
    excess = (radius.float() - epsilon).clamp_min(0)
    return torch.exp(-decay_rate * excess)


def truncated_normal(count: int, mean: float, std: float, low: float, high: float, generator: torch.Generator,
                     device: torch.device) -> torch.Tensor:
    """`count` draws of N(mean, std²) truncated to [low, high], by the inverse CDF (one uniform each)."""
    dtype = precise_dtype(device)
    uniform = torch.rand(count, generator=generator, device=device, dtype=dtype)
    if std == 0 or low == high:
        return torch.full((count,), float(mean), device=device, dtype=dtype).clamp(low, high)
    cdf_low = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=dtype, device=device))
    cdf_high = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=dtype, device=device))
    draws = mean + std * torch.special.ndtri(cdf_low + uniform * (cdf_high - cdf_low))
    return draws.clamp(low, high)


def perturb_window(x: torch.Tensor, radius: float | torch.Tensor, grey_size: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random direction (N(0, I) draws) rescaled to L2 `radius` inside [0, 1]; the whole image for
    grey_size 0, else only the centred grey_size² window of channel 0, copied to every channel."""
    if grey_size == 0:
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return l2_perturb(x, direction, radius)
    height, width = x.shape[-2:]
    if grey_size > min(height, width):
        raise InvalidValueError(f"grey_size {grey_size} is larger than the {height}×{width} images; use 0 or the "
                                f"digit size (28 for MNIST)")
    top, left = (height - grey_size) // 2, (width - grey_size) // 2
    window = x[:, :1, top:top + grey_size, left:left + grey_size]
    direction = torch.randn(window.shape, generator=generator, device=x.device, dtype=x.dtype)
    moved, achieved = l2_perturb(window, direction, radius)
    out = x.clone()
    out[:, :, top:top + grey_size, left:left + grey_size] = moved.expand(-1, x.shape[1], -1, -1)
    return out, achieved


def _optional_float(owner: str, name: str, value: Any) -> float | None:
    """`--set` passes strings for fields whose default is None: 'none' stays None, numbers become floats."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, str):
        if value.strip().lower() in ("none", ""):
            return None
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidValueError(f"{owner}.{name} expects a number or 'none', got '{value}'")


@register_method
@dataclass
class ESP(Method):
    epsilon: float = 2.0            # ε: centre of the radii and start of the label decay (L2 on [0,1] pixels)
    tau: float | None = None        # τ: half-width of the truncation; None = ε (paper: τ ≈ ε)
    sigma: float | None = None      # σ of the truncated normal; None = 0.5·τ (paper)
    gamma: float | None = None      # γ of the paper's ξ rule; None = the paper's value for the number of classes
    xi: float | None = None         # ξ directly (overrides gamma); s(ε + τ) = 1/C + ξ
    lambda_rule: str = "text"       # 'text' (λ = ln(C/(1+ξC))/τ) | 'algorithm' (Alg. 1: /(τ − ε))
    grey_size: int = 0              # 0: all C·H·W values; N: the centred N×N grey window (MNIST: 28, d = 784)

    name = "esp"
    summary = "Random L2 perturbations (clipping-aware rescaled) with exponentially smoothed labels (ESP)."
    recipe = ESP_RECIPE
    choices = {
        "lambda_rule": "text = λ = ln(C/(1+ξC))/τ, so s(ε+τ) = 1/C + ξ as the text states (default); "
                       "algorithm = /(τ − ε) as printed in Alg. 1 (singular for τ = ε)",
        "tau": "None = ε (paper: τ ≈ ε)",
        "sigma": "None = 0.5·τ (paper)",
        "gamma": "None = paper's γ for the number of classes: 10 (C ≤ 10), 20 (C ≤ 100), 200 (more)",
        "epsilon": "not given in the paper's main text; 2.0 ≈ L2 norm of CIFAR-10-C gaussian_noise severity 1",
        "grey_size": "0 = perturb all C·H·W values (default); 28 = the 28×28 grey digit inside corrbench's padded "
                     "32×32 RGB MNIST (the paper's d = 784)",
    }

    def __post_init__(self) -> None:
        for field_name in ("tau", "sigma", "gamma", "xi"):
            setattr(self, field_name, _optional_float(self.name, field_name, getattr(self, field_name)))
        if not self.epsilon > 0:
            raise InvalidValueError(f"{self.name}.epsilon must be > 0, got {self.epsilon}")
        if self.lambda_rule not in LAMBDA_RULES:
            raise InvalidValueError(f"{self.name}.lambda_rule must be one of {', '.join(LAMBDA_RULES)}, "
                                    f"got '{self.lambda_rule}'")
        if not 0 <= self.resolved_tau <= self.epsilon:
            raise InvalidValueError(f"{self.name}.tau must be between 0 and epsilon ({self.epsilon}) so that "
                                    f"radii stay ≥ 0, got {self.resolved_tau}")
        if self.resolved_sigma < 0:
            raise InvalidValueError(f"{self.name}.sigma must be ≥ 0, got {self.resolved_sigma}")
        if self.gamma is not None and not self.gamma > 0:
            raise InvalidValueError(f"{self.name}.gamma must be > 0, got {self.gamma}")
        if self.grey_size < 0:
            raise InvalidValueError(f"{self.name}.grey_size must be ≥ 0 (0 = the whole image), got {self.grey_size}")

    @property
    def resolved_tau(self) -> float:
        return self.epsilon if self.tau is None else self.tau

    @property
    def resolved_sigma(self) -> float:
        return 0.5 * self.resolved_tau if self.sigma is None else self.sigma

    def resolved_xi(self, num_classes: int) -> float:
        if self.xi is not None:
            xi = self.xi
        else:
            xi = xi_from_gamma(paper_gamma(num_classes) if self.gamma is None else self.gamma, num_classes)
        if not (0 <= xi < 1 - 1 / num_classes):
            raise InvalidValueError(f"{self.name}.xi must be in [0, 1 − 1/C) = [0, {1 - 1 / num_classes:.4g}) "
                                    f"so that the true-class label decays, got {xi:.4g}")
        return xi

    def decay_rate(self, num_classes: int) -> float:
        return esp_decay_rate(num_classes, self.epsilon, self.resolved_tau, self.resolved_xi(num_classes),
                              self.lambda_rule)

    def perturb(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """ESP's x' for a float batch in [0, 1], and the achieved radius per example."""
        tau = self.resolved_tau
        radius = truncated_normal(x.shape[0], self.epsilon, self.resolved_sigma, self.epsilon - tau,
                                  self.epsilon + tau, generator, x.device)
        return perturb_window(x, radius, self.grey_size, generator)

    def targets(self, labels: torch.Tensor, radius: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Soft labels: s(radius) on the true class, (1 − s)/(C − 1) elsewhere."""
        s = esp_true_probability(radius, self.epsilon, self.decay_rate(num_classes))
        return true_class_targets(labels, num_classes, s)

    def loss(self, model, images, labels, generator):
        perturbed, radius = self.perturb(to_unit(images), generator)
        logits = model(perturbed)
        targets = self.targets(labels, radius, logits.shape[1])
        loss = soft_cross_entropy(logits, targets)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels),
                      "radius": radius.detach().float().mean(),
                      "true_label": targets.gather(1, labels[:, None]).mean()}


@register_method
@dataclass
class L2Noise(Method):
    epsilon: float = 2.0   # fixed L2 radius in [0,1] pixels (rescaled so ‖x' − x‖₂ = ε within [0, 1])
    grey_size: int = 0     # as esp.grey_size (MNIST: 28, the paper's d = 784)

    name = "l2-noise"
    summary = "Random direction at a fixed L2 radius (clipping-aware rescaled), hard labels (ESP's L2 baseline)."
    recipe = ESP_RECIPE
    choices = {"epsilon": "grid-searched in the paper (values not in its main text); 2.0 as for esp",
               "grey_size": ESP.choices["grey_size"]}

    def __post_init__(self) -> None:
        if not self.epsilon >= 0:
            raise InvalidValueError(f"{self.name}.epsilon must be ≥ 0, got {self.epsilon}")
        if self.grey_size < 0:
            raise InvalidValueError(f"{self.name}.grey_size must be ≥ 0 (0 = the whole image), got {self.grey_size}")

    def perturb(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x at L2 distance ε in a random direction (clipping-aware), and the achieved radius."""
        return perturb_window(x, self.epsilon, self.grey_size, generator)

    def loss(self, model, images, labels, generator):
        perturbed, radius = self.perturb(to_unit(images), generator)
        logits = model(perturbed)
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels),
                      "radius": radius.detach().float().mean()}


@register_method
@dataclass
class AugMixESP(ESP):
    jsd_weight: float = 12.0   # λ of AugMix's Jensen–Shannon consistency
    severity: int = 3          # AugMix CIFAR defaults (google-research/augmix)
    width: int = 3
    depth: int = -1
    alpha: float = 1.0
    all_ops: bool = False

    name = "augmix+esp"
    summary = "AugMix + JSD where ESP perturbs the clean view and smooths its label."
    choices = {**ESP.choices,
               "jsd_weight": "12 as in AugMix; the ESP paper does not say how AugMix and ESP are combined: "
                             "corrbench applies ESP to the clean view only (documented choice)"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.jsd_weight < 0:
            raise InvalidValueError(f"augmix+esp.jsd_weight must be ≥ 0, got {self.jsd_weight}")

    def loss(self, model, images, labels, generator):
        from corrbench.augment.augmix import augmix
        from corrbench.methods.losses import jensen_shannon

        options = dict(severity=self.severity, width=self.width, depth=self.depth, alpha=self.alpha,
                       all_ops=self.all_ops)
        aug1 = augmix(images, generator, **options)
        aug2 = augmix(images, generator, **options)
        perturbed, radius = self.perturb(to_unit(images), generator)
        batch = images.shape[0]
        logits_all = model(torch.cat([perturbed, aug1.to(perturbed.dtype), aug2.to(perturbed.dtype)]))
        logits, logits_aug1, logits_aug2 = logits_all.split(batch)
        targets = self.targets(labels, radius, logits.shape[1])
        ce = soft_cross_entropy(logits, targets)
        js = jensen_shannon(logits, logits_aug1, logits_aug2)
        loss = ce + self.jsd_weight * js
        return loss, {"ce": ce.detach(), "js": js.detach(), "acc": accuracy(logits.detach(), labels),
                      "radius": radius.detach().float().mean(),
                      "true_label": targets.gather(1, labels[:, None]).mean()}


# ---------------------------------------------------------------------------------------------------------
# Compositions with AugMix and DeepAugment (the remaining rows of ESP Table 1)

@dataclass
class AugMixPart:
    """AugMix's views and JS consistency, as a part of a composed method (google-research/augmix defaults)."""

    jsd_weight: float = 12.0
    severity: int = 3
    width: int = 3
    depth: int = -1
    alpha: float = 1.0
    all_ops: bool = False

    def check_augmix(self, owner: str) -> None:
        from corrbench.augment.augmix import check_augmix_settings
        check_augmix_settings(self.severity, self.width, self.depth, self.alpha)
        if not self.jsd_weight >= 0:
            raise InvalidValueError(f"{owner}.jsd_weight must be ≥ 0, got {self.jsd_weight}")


@dataclass
class DeepAugmentPart:
    """DeepAugment's Noise2Net distortion, as a part of a composed method (defaults of `deepaugment`)."""

    eps_max: float = 0.4
    hidden_planes: int = 2
    fraction: float = 0.75

    def check_deepaugment(self, owner: str) -> None:
        if not self.eps_max >= 0:
            raise InvalidValueError(f"{owner}.eps_max must be ≥ 0, got {self.eps_max}")
        if self.hidden_planes < 1:
            raise InvalidValueError(f"{owner}.hidden_planes must be ≥ 1, got {self.hidden_planes}")
        if not 0 <= self.fraction <= 1:
            raise InvalidValueError(f"{owner}.fraction must be between 0 and 1, got {self.fraction}")


def composed_loss(method: Method, model, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, *,
                  perturbation: str, augmix_views: bool, deepaugment: bool):
    """The shared step of the ESP Table 1 compositions (module docstring): perturbation ('none' | 'l2' |
    'esp') on the clean view, optional AugMix views + JS, optional Noise2Net on every view."""
    from corrbench.augment.augmix import augmix
    from corrbench.methods.deepaugment import noise2net
    from corrbench.methods.losses import jensen_shannon

    x = to_unit(images)
    batch = images.shape[0]
    views = []
    if augmix_views:
        options = dict(severity=method.severity, width=method.width, depth=method.depth, alpha=method.alpha,
                       all_ops=method.all_ops)
        views = [augmix(images, generator, **options).to(x.dtype) for _ in range(2)]
    radius = None
    if perturbation != "none":
        x, radius = method.perturb(x, generator)
    inputs = torch.cat([x, *views]) if views else x
    if images.is_contiguous(memory_format=torch.channels_last):
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    logs: dict[str, torch.Tensor] = {}
    if deepaugment:
        def distort(h: torch.Tensor) -> torch.Tensor:
            parts = [noise2net(view, generator, eps_max=method.eps_max, hidden_planes=method.hidden_planes,
                               fraction=method.fraction)[0] for view in h.split(batch)]
            return torch.cat(parts)
        logits_all = model(inputs, hook_at=-1, feature_hook=distort)
    else:
        logits_all = model(inputs)
    logits = logits_all[:batch]
    if perturbation == "esp":
        targets = method.targets(labels, radius, logits.shape[1])
        ce = soft_cross_entropy(logits, targets)
        logs["true_label"] = targets.gather(1, labels[:, None]).mean()
    else:
        ce = cross_entropy(logits, labels)
    loss = ce
    logs.update(ce=ce.detach(), acc=accuracy(logits.detach(), labels))
    if radius is not None:
        logs["radius"] = radius.detach().float().mean()
    if views:
        _, logits_aug1, logits_aug2 = logits_all.split(batch)
        js = jensen_shannon(logits, logits_aug1, logits_aug2)
        loss = loss + method.jsd_weight * js
        logs["js"] = js.detach()
    return loss, logs


@register_method
@dataclass
class AugMixL2Noise(L2Noise, AugMixPart):
    name = "augmix+l2-noise"
    summary = "AugMix + JSD where the L2-noise baseline perturbs the clean view (ESP Table 1 row)."

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmix(self.name)

    def loss(self, model, images, labels, generator):
        return composed_loss(self, model, images, labels, generator, perturbation="l2", augmix_views=True,
                             deepaugment=False)


@register_method
@dataclass
class DeepAugmentL2Noise(L2Noise, DeepAugmentPart):
    name = "deepaugment+l2-noise"
    summary = "L2-noise perturbation, then DeepAugment's Noise2Net on 75 % of the batch (ESP Table 1 row)."

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_deepaugment(self.name)

    def loss(self, model, images, labels, generator):
        return composed_loss(self, model, images, labels, generator, perturbation="l2", augmix_views=False,
                             deepaugment=True)


@register_method
@dataclass
class DeepAugmentESP(ESP, DeepAugmentPart):
    name = "deepaugment+esp"
    summary = "ESP perturbation and label, then DeepAugment's Noise2Net on 75 % of the batch (ESP Table 1 row)."

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_deepaugment(self.name)

    def loss(self, model, images, labels, generator):
        return composed_loss(self, model, images, labels, generator, perturbation="esp", augmix_views=False,
                             deepaugment=True)


@register_method
@dataclass
class AugMixDeepAugment(Method, AugMixPart, DeepAugmentPart):
    name = "augmix+deepaugment"
    summary = "AugMix + JSD with DeepAugment's Noise2Net on 75 % of every view (ESP Table 1 row)."
    recipe = ESP_RECIPE

    def __post_init__(self) -> None:
        self.check_augmix(self.name)
        self.check_deepaugment(self.name)

    def loss(self, model, images, labels, generator):
        return composed_loss(self, model, images, labels, generator, perturbation="none", augmix_views=True,
                             deepaugment=True)


@register_method
@dataclass
class AugMixDeepAugmentL2Noise(L2Noise, AugMixPart, DeepAugmentPart):
    name = "augmix+deepaugment+l2-noise"
    summary = "AugMix + JSD + Noise2Net, the L2-noise baseline on the clean view (ESP Table 1 row)."

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmix(self.name)
        self.check_deepaugment(self.name)

    def loss(self, model, images, labels, generator):
        return composed_loss(self, model, images, labels, generator, perturbation="l2", augmix_views=True,
                             deepaugment=True)


@register_method
@dataclass
class AugMixDeepAugmentESP(ESP, AugMixPart, DeepAugmentPart):
    name = "augmix+deepaugment+esp"
    summary = "AugMix + JSD + Noise2Net, ESP on the clean view with its smoothed label (ESP Table 1 row)."

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_augmix(self.name)
        self.check_deepaugment(self.name)

    def loss(self, model, images, labels, generator):
        return composed_loss(self, model, images, labels, generator, perturbation="esp", augmix_views=True,
                             deepaugment=True)
