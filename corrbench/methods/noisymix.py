"""`noisymix`: NFM on AugMix data plus the AugMix Jensen–Shannon consistency (Erichson et al., AISTATS 2024).

L = L_NFM + γ·L_JSD (paper Eq. 2). One training step, as erichson/NoisyMix `cifar.py` (JSD mode)
with `src/noisy_mixup.py`:
1. the batch x, two independent AugMix views of it (severity 3, width 3, depth 1–3, 9 ops) →
   one forward pass over the 3B images (BatchNorm sees all of them);
2. one layer k uniform over `layers` (0 = the input normalised with mean = std = 0.5, as the code's
   loader does, i = the raw output of stage i — on a WRN before the final BN → ReLU), one
   λ ~ Beta(α, α) and one permutation, shared by the three splits: each split is mixed with its
   own permuted copy, then noised with its own Beta(2, 5) scalars — additive level σ_add×1, ×2, ×3
   for clean / aug1 / aug2, multiplicative σ_mult, and a fraction `sparsity` of the entries left
   un-noised (an independent mask per noise type);
3. loss = λ·CE(clean logits, y) + (1 − λ)·CE(clean logits, y[perm]) + γ·JS(clean, aug1, aug2),
   γ = 12 (hard-coded in the code), JS as AugMix (`corrbench.methods.losses.jensen_shannon`).
Defaults: the README's NoisyMix command (α 1, manifold mixup on, σ_add 0.5, σ_mult 0.5, sparsity
0.65). The argparse defaults (α 0, no noise) give plain AugMix + JSD, and so do α = 0 with both
noise levels 0 here.

Paper vs code (`choices`): the paper writes one noise distribution ξ for the clean and the AugMix
terms and never mentions the ×1/×2/×3 additive levels or the sparsity mask, which only the code
has; `split_scaling=false` uses σ_add for all three splits. The paper's mixing map applies noise
whatever λ is, while the code skips mixing *and* noise when α = 0; here α = 0 only removes the
mixing. The README and the paper call the CIFAR WRN "28x2" while the code builds WRN-28-4 with dropout
0.1 (`--arch wrn_28_4_noisymix`; the published clean accuracies, 96.0 / 79.0, fit the wider net).
`input_space="dataset"` mixes and noises the input normalised with the dataset's mean/std (corrbench's
behaviour before; its input noise is about half the code's in pixel space).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from corrbench.errors import InvalidValueError, check_range
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit
from corrbench.methods.mixing import (check_layers, check_layers_fit, choose_layer, feature_hook, hook_index,
                                      in_input_space, mixed_accuracy, mixed_cross_entropy, permutation,
                                      sample_lambda)

SPLITS = 3   # clean, AugMix view 1, AugMix view 2
INPUT_SPACES = ("reference", "dataset")
REFERENCE_INPUT_NORMALIZATION = (0.5, 0.5)   # erichson/NoisyMix cifar.py: Normalize([0.5] * 3, [0.5] * 3)


@register_method
@dataclass
class NoisyMix(Method):
    alpha: float = 1.0                          # λ ~ Beta(α, α); 0: no mixing
    layers: tuple[int, ...] = (0, 1, 2, 3)      # 0 = input, i = after stage i; one drawn per batch
    add_noise: float = 0.5                      # σ_add (×1/×2/×3 per split with split_scaling)
    mult_noise: float = 0.5                     # σ_mult
    sparsity: float = 0.65                      # fraction of entries left un-noised
    split_scaling: bool = True                  # additive level ×1/×2/×3 for clean/aug1/aug2 (code)
    jsd_weight: float = 12.0                    # γ
    severity: int = 3                           # AugMix settings (google-research/augmix CIFAR defaults)
    width: int = 3
    depth: int = -1
    augmix_alpha: float = 1.0
    all_ops: bool = False
    input_space: str = "reference"              # k = 0 acts on (x − 0.5)/0.5 (code) | 'dataset' mean/std

    name = "noisymix"
    summary = "NoisyMix: noisy feature mixup of clean + 2 AugMix views, plus 12·JSD consistency (Erichson et al.)."
    recipe = Recipe(epochs=200, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                    schedule="cosine",
                    source="erichson/NoisyMix cifar.py: 200 epochs, batch 128, SGD 0.9 Nesterov, wd 5e-4, per-step "
                           "cosine from 0.1 (to 1e-6 there, to 0 here); paper §4.1: 200 epochs for every model")
    choices = {
        "split_scaling": "true = additive noise level ×1/×2/×3 on clean/aug1/aug2 (code, jsd mode); "
                         "false = the same level on all three (the paper writes one noise distribution)",
        "alpha": "α = 0 turns mixing off but keeps the noise (paper's map); the code also drops the noise — "
                 "set add_noise=0 mult_noise=0 for that (= AugMix + JSD)",
        "input_space": "reference = the k = 0 mix and noise act on the input normalised with mean = std = 0.5 "
                       "(erichson/NoisyMix cifar.py's Normalize([0.5]*3, [0.5]*3)); dataset = on the input "
                       "normalised with the dataset's mean/std (about half the input noise in pixel space)",
        "add_noise": "0.5 with mult_noise 0.5 and sparsity 0.65: README NoisyMix command (the NFM README uses "
                     "0.4 / 0.2 without sparsity); the paper gives no values",
    }

    def __post_init__(self) -> None:
        check_range("noisymix.alpha", self.alpha, low=0)
        check_range("noisymix.add_noise", self.add_noise, low=0)
        check_range("noisymix.mult_noise", self.mult_noise, low=0)
        check_range("noisymix.sparsity", self.sparsity, low=0, high=1)
        check_range("noisymix.jsd_weight", self.jsd_weight, low=0)
        self.layers = check_layers(self.name, self.layers)
        if self.input_space not in INPUT_SPACES:
            raise InvalidValueError(f"noisymix.input_space must be one of {', '.join(INPUT_SPACES)}, "
                                    f"got '{self.input_space}'")

    def augmix_views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Two independent AugMix views (float32 in [0, 1]) of the uint8 batch."""
        from corrbench.augment.augmix import augmix   # imported at use: the augment package owns it

        return [augmix(images, generator, severity=self.severity, width=self.width, depth=self.depth,
                       alpha=self.augmix_alpha, all_ops=self.all_ops) for _ in range(SPLITS - 1)]

    def loss(self, model, images, labels, generator):
        from corrbench.methods.losses import jensen_shannon

        n = images.shape[0]
        batch = torch.cat([to_unit(images)] + self.augmix_views(images, generator))
        if images.ndim == 4 and images.is_contiguous(memory_format=torch.channels_last):
            batch = batch.contiguous(memory_format=torch.channels_last)
        mixing = self.alpha > 0
        noisy = self.add_noise > 0 or self.mult_noise > 0
        lam = index = None
        if mixing or noisy:
            check_layers_fit(self.name, self.layers, model)
            layer = choose_layer(self.layers, generator)
            if mixing:
                lam = sample_lambda(self.alpha, generator)
                index = permutation(n, generator)
            scales = range(1, SPLITS + 1) if self.split_scaling else (1,) * SPLITS
            hook = feature_hook(lam, index, generator, groups=SPLITS,
                                add_levels=tuple(self.add_noise * s for s in scales),
                                mult_level=self.mult_noise, sparsity=self.sparsity)
            if layer == 0 and self.input_space == "reference":
                hook = in_input_space(hook, model, *REFERENCE_INPUT_NORMALIZATION)
            logits = model(batch, feature_hook=hook, hook_at=hook_index(layer))
        else:
            logits = model(batch)
        logits_clean, logits_aug1, logits_aug2 = logits.split(n)
        if lam is not None and index is not None:
            ce = mixed_cross_entropy(logits_clean, labels, labels[index], lam)
            acc = mixed_accuracy(logits_clean, labels, labels[index], lam)
        else:
            ce = cross_entropy(logits_clean, labels)
            acc = accuracy(logits_clean.detach(), labels)
        jsd = jensen_shannon(logits_clean, logits_aug1, logits_aug2)
        loss = ce + self.jsd_weight * jsd
        return loss, {"ce": ce.detach(), "jsd": jsd.detach(), "acc": acc}
