"""Shared pieces of the mixing methods (mixup, cutmix, manifold-mixup, nfm, noisymix).

Every random draw takes the method's `torch.Generator` and stays on its device, so a seed
reproduces the bytes on any device; λ and the permutation are tensors (no host sync). Only the
mixing layer is a Python int, because `Classifier.forward(hook_at=k)` needs one.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from corrbench.errors import InvalidValueError, UserError

# Beta(2, 5) scales every NFM noise draw (erichson/NFM and erichson/NoisyMix `src/noisy_mixup.py`).
NOISE_BETA = (2.0, 5.0)


def sample_beta(a: float, b: float, generator: torch.Generator, shape: Sequence[int] = ()) -> torch.Tensor:
    """Beta(a, b) draws (float32, on the generator's device) as X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b)."""
    device = generator.device
    x = torch._standard_gamma(torch.full(tuple(shape), float(a), device=device), generator=generator)
    y = torch._standard_gamma(torch.full(tuple(shape), float(b), device=device), generator=generator)
    total = x + y
    # Both gammas underflow to 0 only for tiny a, b; Beta(a, b) then sits at 0 or 1 with equal odds.
    return torch.where(total > 0, x / total.clamp_min(torch.finfo(total.dtype).tiny), torch.full_like(total, 0.5))


def sample_lambda(alpha: float, generator: torch.Generator) -> torch.Tensor:
    """The mixing weight λ ~ Beta(α, α), one per batch (0-dim); α ≤ 0 gives λ = 1 (no mixing), as the
    reference codes do."""
    if alpha <= 0:
        return torch.ones((), device=generator.device)
    return sample_beta(alpha, alpha, generator)


def permutation(n: int, generator: torch.Generator) -> torch.Tensor:
    """The mixing partners: example i is mixed with example `index[i]`."""
    return torch.randperm(n, generator=generator, device=generator.device)


def mix(x: torch.Tensor, lam: torch.Tensor, index: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """λ·x + (1 − λ)·x[index]; with `groups` > 1 the batch is that many equal chunks, each mixed with the
    same λ and the same permutation (NoisyMix's clean / AugMix / AugMix splits)."""
    if groups == 1:
        return lam * x + (1 - lam) * x[index]
    chunks = x.unflatten(0, (groups, x.shape[0] // groups))
    return (lam * chunks + (1 - lam) * chunks[:, index]).flatten(0, 1)


def mixed_cross_entropy(logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
                        lam: torch.Tensor | float) -> torch.Tensor:
    """λ·CE(logits, y_a) + (1 − λ)·CE(logits, y_b) (Zhang et al. 2018, `mixup_criterion`), in float32."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    return lam * F.nll_loss(log_probs, labels_a) + (1 - lam) * F.nll_loss(log_probs, labels_b)


def mixed_accuracy(logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor,
                   lam: torch.Tensor | float) -> torch.Tensor:
    """λ-weighted accuracy against both label sets (what the mixup/NFM codes log)."""
    predicted = logits.detach().argmax(dim=1)
    return (lam * (predicted == labels_a).float().mean() + (1 - lam) * (predicted == labels_b).float().mean()).detach()


def nfm_noise(h: torch.Tensor, add_levels: Sequence[float], mult_level: float, generator: torch.Generator, *,
              sparsity: float = 0.0) -> torch.Tensor:
    """NFM's noise: (1 + σ_mult·b_m·U(−1, 1)) ⊙ h + σ_add·b_a·N(0, 1), elementwise.

    b_a, b_m ~ Beta(2, 5) are scalars drawn once per call — per group here: the batch is
    `len(add_levels)` equal chunks, chunk g gets its own b_a, b_m and additive level `add_levels[g]`
    (NoisyMix: σ_add ×1/×2/×3 on clean/aug1/aug2). With `sparsity` s, an independent mask per
    noise type leaves a fraction s of the entries un-noised (additive 0, multiplicative 1).
    A level of 0 draws nothing. Noise is drawn and applied in float32 (bf16 would quantise the
    masks); the result has h's dtype. Source: erichson/NoisyMix `src/noisy_mixup.py::_noise`.
    """
    groups = len(add_levels)
    if groups == 0 or h.shape[0] % groups:
        raise InvalidValueError(f"a batch of {h.shape[0]} does not split into {groups} noise groups")
    if max(add_levels) <= 0 and mult_level <= 0:
        return h
    device = h.device
    shape = h.shape
    per_sample = (groups,) + (1,) * (h.ndim - 1)

    def per_group(values: torch.Tensor) -> torch.Tensor:
        return values.view(per_sample).repeat_interleave(shape[0] // groups, dim=0)

    def keep_mask() -> torch.Tensor | None:
        return torch.rand(shape, generator=generator, device=device) >= sparsity if sparsity > 0 else None

    out = h.float()
    # Draw order as in `_noise`: additive (b_a, N, mask), then multiplicative (b_m, U, mask).
    additive = None
    if max(add_levels) > 0:
        # Filled on the device: a host→device copy of the levels would wait for the queued kernels.
        levels = torch.stack([torch.full((), float(v), device=device) for v in add_levels])
        scale = per_group(levels * sample_beta(*NOISE_BETA, generator, (groups,)))
        additive = scale * torch.randn(shape, generator=generator, device=device)
        keep = keep_mask()
        if keep is not None:
            additive = torch.where(keep, additive, torch.zeros((), device=device))
    if mult_level > 0:
        scale = per_group(mult_level * sample_beta(*NOISE_BETA, generator, (groups,)))
        factor = 1 + scale * (2 * torch.rand(shape, generator=generator, device=device) - 1)
        keep = keep_mask()
        if keep is not None:
            factor = torch.where(keep, factor, torch.ones((), device=device))
        out = factor * out
    if additive is not None:
        out = out + additive
    return out.to(h.dtype)


def choose_layer(layers: Sequence[int], generator: torch.Generator) -> int:
    """One layer k drawn uniformly from `layers` (one host sync: `hook_at` must be a Python int)."""
    if len(layers) == 1:
        return int(layers[0])
    pick = torch.randint(len(layers), (1,), generator=generator, device=generator.device)
    return int(layers[int(pick.item())])


def hook_index(layer: int) -> int:
    """Layer k in the NFM/manifold-mixup numbering (0 = input, i = output of stage i) → `hook_at`.

    k = 0 acts on the input as normalised by the model (the dataset's mean/std, hook_at −1), as
    erichson/NFM's loaders normalise with the CIFAR statistics. Mixing is affine-invariant, NFM's
    noise is not: erichson/NoisyMix's loader normalises with mean = std = 0.5 instead, so its
    input noise is about twice as strong in pixel space; `noisymix` reproduces that through
    `in_input_space`. Stage outputs (k ≥ 1) are the raw outputs of the stage's blocks."""
    return -1 if layer == 0 else layer


def in_input_space(hook: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, mean: float,
                   std: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """`hook` applied to the input as normalised with a fixed `mean` / `std` instead of the model's
    statistics: the hook at k = 0 receives the model-normalised input h, and this runs
    `hook((x − mean) / std)` on the pixels x = h·σ_data + μ_data, then normalises back."""
    normalize = unwrap(model).normalize

    def wrapped(h: torch.Tensor) -> torch.Tensor:
        x = h * normalize.std + normalize.mean
        out = hook((x - mean) / std)
        return (out * std + mean - normalize.mean) / normalize.std
    return wrapped


def check_layers(method: str, layers: Sequence[int]) -> tuple[int, ...]:
    """Validate a `layers` hyperparameter (non-empty, each ≥ 0) at construction."""
    layers = tuple(int(k) for k in layers)
    if not layers or min(layers) < 0:
        raise InvalidValueError(f"{method}.layers needs layer numbers ≥ 0 (0 = input, i = after stage i), "
                                f"got {list(layers)}; e.g. --set {method}.layers=0,1,2")
    return layers


def check_layers_fit(method: str, layers: Sequence[int], model: nn.Module) -> None:
    """A layer past the model's last stage is a user error, named before the forward pass."""
    stages = getattr(unwrap(model), "num_stages", None)
    if stages is None:
        raise UserError(f"{method} mixes features between stages and needs a corrbench Classifier "
                        f"(stem → stages → head); got {type(unwrap(model)).__name__}")
    if max(layers) > stages:
        raise InvalidValueError(f"{method}.layers contains {max(layers)} but this arch has {stages} stages; "
                                f"use layers between 0 and {stages}")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel (for attributes, and for attacks)."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def feature_hook(lam: torch.Tensor | None, index: torch.Tensor | None, generator: torch.Generator, *,
                 groups: int = 1, add_levels: Sequence[float] = (0.0,), mult_level: float = 0.0,
                 sparsity: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function `Classifier.forward(feature_hook=…)` applies at the mixing layer: mix (when λ is
    given), then NFM noise — noise after mixing, as in `do_noisy_mixup`."""
    if len(add_levels) not in (1, groups):
        raise ValueError(f"need 1 or {groups} additive noise levels, got {len(add_levels)}")
    levels = tuple(add_levels) * (groups // len(add_levels))

    def hook(h: torch.Tensor) -> torch.Tensor:
        if lam is not None and index is not None:
            h = mix(h, lam, index, groups)
        return nfm_noise(h, levels, mult_level, generator, sparsity=sparsity)
    return hook


def forward_feature_mixup(method: str, model: nn.Module, x: torch.Tensor, generator: torch.Generator, *,
                          alpha: float, layers: Sequence[int], add_noise: float = 0.0,
                          mult_noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Manifold mixup's step (NFM's with noise): draw the layer, λ and the permutation — in that order —
    and run the model with the mixing hook there. Returns (logits, λ, permutation)."""
    check_layers_fit(method, layers, model)
    layer = choose_layer(layers, generator)
    lam = sample_lambda(alpha, generator)
    index = permutation(x.shape[0], generator)
    hook = feature_hook(lam, index, generator, add_levels=(add_noise,), mult_level=mult_noise)
    return model(x, feature_hook=hook, hook_at=hook_index(layer)), lam, index
