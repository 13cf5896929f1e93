"""Loss terms shared by several methods (AugMix's Jensen–Shannon consistency, reused by NoisyMix etc.).

Why not `F.kl_div(log_q, p)` with p = softmax(logits): since PyTorch 1.13 `kl_div` is `xlogy(p, p) − p·log_q`,
whose gradient with respect to p is NaN wherever p is exactly 0 (xlogy's ∂/∂y = x/y = 0/0,
pytorch/pytorch#89558). A float32 softmax gives an exact 0 as soon as two logits of an example are
more than ~104 apart, which happens in the first steps of lr-0.1 training of a ResNet-18; one such
entry makes every gradient NaN. The KL terms here take the target as log-probabilities
(`log_softmax`, always finite), whose gradient exp(t)·(t − log_q + 1) is finite everywhere; the value
is the same (0·log 0 = 0 either way).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_to_log_mixture(log_mixture: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) = Σ p·(log p − log q) per example, mean over the batch, from log-probabilities
    (`F.kl_div(log q, p, reduction='batchmean')` with a gradient that stays finite where p = 0)."""
    return F.kl_div(log_mixture, log_p, reduction="batchmean", log_target=True)


def kl_from_logits(log_q: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(target_logits) ‖ q), summed over classes and examples, in float32: the TRADES form
    `F.kl_div(log q, softmax(target), reduction='sum')` with a finite gradient where the softmax is 0."""
    return F.kl_div(log_q, F.log_softmax(target_logits.float(), dim=1), reduction="sum", log_target=True)


def jensen_shannon(logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor) -> torch.Tensor:
    """AugMix's JS consistency: (KL(p_c‖M) + KL(p_1‖M) + KL(p_2‖M)) / 3, averaged over the batch.

    M = clamp((p_c + p_1 + p_2) / 3, 1e-7, 1) with p = softmax(logits); KL is
    Σ p·(log p − log M) per example, mean over examples — google-research/augmix `cifar.py`'s
    `F.kl_div(log M, p, reduction='batchmean')` (Hendrycks et al., ICLR 2020), computed in float32
    from log-probabilities so that its gradient is finite (module docstring).
    """
    log_probs = [F.log_softmax(logits.float(), dim=1) for logits in (logits_clean, logits_aug1, logits_aug2)]
    mixture = (log_probs[0].exp() + log_probs[1].exp() + log_probs[2].exp()) / 3.0
    log_mixture = torch.clamp(mixture, 1e-7, 1.0).log()
    return (kl_to_log_mixture(log_mixture, log_probs[0]) + kl_to_log_mixture(log_mixture, log_probs[1])
            + kl_to_log_mixture(log_mixture, log_probs[2])) / 3.0
