"""`nfm`: Noisy Feature Mixup — manifold mixup plus noise after mixing (Lim et al., ICLR 2022).

Per batch: layer k uniform over `layers` (0 = the normalised input, i = output of stage i; the code
uses k ∈ {0, 1, 2, 3} with `--manifold_mixup 1`, so the last stage of a 4-stage net is never mixed),
λ ~ Beta(α, α), one permutation; at layer k the features become
(1 + σ_mult·b_m·U(−1, 1)) ⊙ (λ·h + (1 − λ)·h[perm]) + σ_add·b_a·N(0, 1), b ~ Beta(2, 5) per call;
loss λ·CE(y) + (1 − λ)·CE(y[perm]). Defaults: the NFM README recipe (α 1, σ_add 0.4, σ_mult 0.2).
Sources: erichson/NFM `src/noisy_mixup.py`, `src/cifar_models/preresnet.py`, `train_cifar.py`.

Paper vs code: the paper's mixing map M_{λ,ξ} applies the noise whatever λ is; the code only calls
`do_noisy_mixup` when α > 0, so α = 0 there also switches the noise off. Here α = 0 means λ = 1 (no
mixing) and the noise levels still apply; set `add_noise=0 mult_noise=0` for the code's behaviour.
"""
from __future__ import annotations

from dataclasses import dataclass

from corrbench.errors import check_range
from corrbench.methods.base import Method, Recipe, register_method, to_unit
from corrbench.methods.mixing import check_layers, forward_feature_mixup, mixed_accuracy, mixed_cross_entropy


@register_method
@dataclass
class NoisyFeatureMixup(Method):
    alpha: float = 1.0                          # λ ~ Beta(α, α); 0: no mixing
    layers: tuple[int, ...] = (0, 1, 2, 3)      # 0 = input, i = after stage i; one drawn per batch
    add_noise: float = 0.4                      # σ_add
    mult_noise: float = 0.2                     # σ_mult

    name = "nfm"
    summary = "Noisy Feature Mixup: manifold mixup + additive/multiplicative noise after mixing (Lim et al. 2022)."
    recipe = Recipe(epochs=200, batch_size=128, lr=0.1, momentum=0.9, nesterov=False, weight_decay=5e-4,
                    schedule="step", milestones=(100, 150, 180), gamma=0.1,
                    source="erichson/NFM train_cifar.py defaults: 200 epochs, batch 128, SGD 0.9, lr 0.1 ×0.1 after "
                           "epochs 100/150/180, wd 5e-4; README: --alpha 1 --add_noise_level 0.4 "
                           "--mult_noise_level 0.2")
    choices = {
        "alpha": "α = 0 turns mixing off but keeps the noise (the paper's map); the code also drops the noise — "
                 "set add_noise=0 mult_noise=0 for that",
    }

    def __post_init__(self) -> None:
        check_range("nfm.alpha", self.alpha, low=0)
        check_range("nfm.add_noise", self.add_noise, low=0)
        check_range("nfm.mult_noise", self.mult_noise, low=0)
        self.layers = check_layers(self.name, self.layers)

    def loss(self, model, images, labels, generator):
        logits, lam, index = forward_feature_mixup(self.name, model, to_unit(images), generator, alpha=self.alpha,
                                                   layers=self.layers, add_noise=self.add_noise,
                                                   mult_noise=self.mult_noise)
        loss = mixed_cross_entropy(logits, labels, labels[index], lam)
        return loss, {"ce": loss.detach(), "acc": mixed_accuracy(logits, labels, labels[index], lam),
                      "lam": lam.detach()}
