"""Loss terms shared by several methods (AugMix's Jensen–Shannon consistency, reused by NoisyMix etc.)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def jensen_shannon(logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor) -> torch.Tensor:
    """AugMix's JS consistency: (KL(M‖p_c) + KL(M‖p_1) + KL(M‖p_2)) / 3, averaged over the batch.

    M = clamp((p_c + p_1 + p_2) / 3, 1e-7, 1) with p = softmax(logits); KL is `F.kl_div(log M, p,
    reduction='batchmean')`, i.e. Σ p·(log p − log M) per example, mean over examples
    (Hendrycks et al., ICLR 2020, google-research/augmix `cifar.py`). Computed in float32.
    """
    p_clean = F.softmax(logits_clean.float(), dim=1)
    p_aug1 = F.softmax(logits_aug1.float(), dim=1)
    p_aug2 = F.softmax(logits_aug2.float(), dim=1)
    log_mixture = torch.clamp((p_clean + p_aug1 + p_aug2) / 3.0, 1e-7, 1.0).log()
    return (F.kl_div(log_mixture, p_clean, reduction="batchmean")
            + F.kl_div(log_mixture, p_aug1, reduction="batchmean")
            + F.kl_div(log_mixture, p_aug2, reduction="batchmean")) / 3.0
