"""`mollification`: data mollification coupled with label smoothing (Heinonen, Tran, Kampffmeyer,
Filippone, AISTATS 2025, arXiv 2406.01494; code markusheinonen/supervised-mollification `src/model.py`).

Per example a temperature t ~ Beta(1, 2) (t = 0 for clean examples) sets both the input corruption and
the label smoothing y = γ/C + (1 − γ)·onehot, trained with soft-target cross-entropy:
- noise (variance preserving, cosine schedule): x_t = cos(πt/2)·x + sin(πt/2)·ε, ε ~ N(0, I), and
  γ = (1/(1 + SNR))^npow = sin²(πt/2) for npow = 1 (SNR = cot²(πt/2));
- blur (heat dissipation, Rissanen et al. 2023): x_t = IDCT(exp(−Λ·s_t²/2) ⊙ DCT(x)) per channel, with
  Λ_ij = (πi/H)² + (πj/W)², which is a Gaussian blur of std s_t pixels with reflecting borders;
  s_t = exp((1 − t)·ln 0.3 + t·ln N) (N = image width), and γ = t^bpow.
Both act on the standardised image (the model's normalised input, `hook_at=-1`), as in the code.

Variants (`variant`): 'noise', 'blur' or 'both'. Where paper and code differ (methods.md §3, §6.5):
- `both_mode='roles'` (default, the authors' code `--batch xnb`): each example independently is clean,
  noised or blurred with probability 1/3 — never both. `both_mode='sequential'` (their README
  pseudo-code): every example is blurred, then noised, with the same t; its label uses
  1 − γ = (1 − γ_noise)(1 − γ_blur) (corrbench's choice; the README leaves the combined schedule open).
- `clean_role` (default true, the code's `x` role in every paper run): clean examples take an equal
  share of the batch ('noise'/'blur': 1/2, 'both': 1/3); false mollifies every example.
- The code draws t from torch.distributions.Beta; corrbench samples Beta(α, β) from the explicit
  generator (inverse CDF for α = 1, Marsaglia–Tsang gammas otherwise).
It composes with `--augment` (trivialaugment, randaugment, autoaugment, augmix …): the engine applies
that augmentation first, as in the paper's "TrivAug + Mollification" rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from corrbench.augment.smoothing import soft_cross_entropy, uniform_smoothed_targets
from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, register_method, to_unit

VARIANTS = ("both", "noise", "blur")
BOTH_MODES = ("roles", "sequential")
CLEAN, NOISE, BLUR = 0, 1, 2


def sample_gamma(concentration: float, count: int, generator: torch.Generator, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gamma(concentration, 1) draws by Marsaglia & Tsang (2000), batched rejection, explicit generator."""
    boost = concentration < 1   # Gamma(a) = Gamma(a + 1) · U^(1/a)
    shape = concentration + 1 if boost else concentration
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(count, device=device, dtype=dtype)
    pending = torch.arange(count, device=device)
    while pending.numel():
        normal = torch.randn(pending.numel(), generator=generator, device=device, dtype=dtype)
        uniform = torch.rand(pending.numel(), generator=generator, device=device, dtype=dtype)
        v = (1 + c * normal) ** 3
        accept = (v > 0) & (uniform.log() < 0.5 * normal**2 + d - d * v + d * v.clamp_min(1e-30).log())
        out[pending[accept]] = (d * v)[accept]
        pending = pending[~accept]
    if boost:
        out = out * torch.rand(count, generator=generator, device=device, dtype=dtype) ** (1.0 / concentration)
    return out


def sample_beta(alpha: float, beta: float, count: int, generator: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """Beta(α, β) draws (float32) from `generator`: exact inverse CDF when α = 1, else X/(X + Y) of gammas."""
    if alpha == 1.0:
        uniform = torch.rand(count, generator=generator, device=device)
        return 1.0 - uniform ** (1.0 / beta)   # CDF 1 − (1 − t)^β
    x = sample_gamma(alpha, count, generator, device)
    y = sample_gamma(beta, count, generator, device)
    return x / (x + y)


def noise_gamma(t: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Label-smoothing strength of the noise schedule: (1/(1 + SNR(t)))^power = sin²(πt/2)^power."""
    return torch.sin(0.5 * math.pi * t).pow(2).pow(power)


def blur_gamma(t: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Label-smoothing strength of the blur schedule: t^power."""
    return t.pow(power)


def blur_sigma(t: torch.Tensor, size: int, sigma_min: float = 0.3) -> torch.Tensor:
    """Blur std in pixels, log-linear from sigma_min (t = 0) to the image size (t = 1) (Rissanen et al. 2023)."""
    return torch.exp((1 - t) * math.log(sigma_min) + t * math.log(size))


@lru_cache(maxsize=16)
def _dct_matrix(size: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (size×size): DCT(v) = D v, inverse Dᵀ."""
    n = torch.arange(size, dtype=torch.float64)
    k = n[:, None]
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(device=device, dtype=dtype)


def heat_dissipation_blur(images: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Gaussian blur of std `sigma` pixels (one per image, or one for all) with reflecting borders, by
    heat dissipation in the DCT basis: IDCT(exp(−Λ·σ²/2) ⊙ DCT(x)), Λ_ij = (πi/H)² + (πj/W)².

    Works on any float B×C×H×W batch; computed in float32 (outside autocast).
    """
    batch, _, height, width = images.shape
    device = images.device
    with torch.autocast(device.type, enabled=False):
        x = images.float()
        d_h = _dct_matrix(height, str(device), torch.float32)
        d_w = _dct_matrix(width, str(device), torch.float32)
        freq_h = (math.pi * torch.arange(height, device=device, dtype=torch.float32) / height) ** 2
        freq_w = (math.pi * torch.arange(width, device=device, dtype=torch.float32) / width) ** 2
        laplacian = freq_h[:, None] + freq_w[None, :]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=device).reshape(-1, 1, 1, 1).expand(batch, 1, 1, 1)
        damping = torch.exp(-laplacian * (sigma**2 / 2))
        coefficients = d_h @ x @ d_w.T
        blurred = d_h.T @ (damping * coefficients) @ d_w
    return blurred.to(images.dtype)


@register_method
@dataclass
class Mollification(Method):
    variant: str = "both"        # 'both' | 'noise' | 'blur'
    both_mode: str = "roles"     # 'roles' (code: clean/noise/blur per example) | 'sequential' (README: blur then noise)
    clean_role: bool = True      # clean examples get an equal share of the batch (code's `x` role)
    alpha: float = 1.0           # t ~ Beta(alpha, beta)
    beta: float = 2.0
    noise_power: float = 1.0     # npow: γ_noise = sin²(πt/2)^npow
    blur_power: float = 1.0      # bpow: γ_blur = t^bpow
    blur_min: float = 0.3        # blur std (px) at t = 0; at t = 1 it is the image width

    name = "mollification"
    summary = "Noise/blur the input with strength t ~ Beta(1,2) and smooth the label by the same t (mollification)."
    recipe = Recipe(epochs=300, batch_size=128, lr=0.01, momentum=0.9, nesterov=False, weight_decay=5e-4,
                    schedule="cosine",
                    source="mollification code (train.py, runs_paper.sh): 300 epochs, batch 128, SGD lr 0.01 "
                           "(argparse default), momentum 0.9, wd 5e-4, cosine (per epoch there, per step here); "
                           "inputs: flip + crop + RandomRotation(15) (`--set preprocess=rotation:15`); augmentation "
                           "rows: --augment trivialaugment, randaugment, autoaugment-imagenet (torchvision's default "
                           "ImageNet policy), augmix-all-ops (torchvision AugMix(), 13 ops) — the bundled "
                           "`mollification` recipe sets all of them")
    choices = {
        "both_mode": "roles = each example clean, noised or blurred with probability 1/3 (authors' code, default); "
                     "sequential = every example blurred then noised (their README)",
        "clean_role": "true = clean examples take an equal share, as the code's --batch xnb/xn/xb (default); "
                      "false = every example mollified",
        "noise_power": "1 = γ = 1/(1+SNR) (paper runs); 100 with blur_power 100 = the 'no label smoothing' ablation",
    }

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InvalidValueError(f"mollification.variant must be one of {', '.join(VARIANTS)}, got '{self.variant}'")
        if self.both_mode not in BOTH_MODES:
            raise InvalidValueError(f"mollification.both_mode must be 'roles' or 'sequential', got '{self.both_mode}'")
        for field_name in ("alpha", "beta", "noise_power", "blur_power", "blur_min"):
            if not getattr(self, field_name) > 0:
                raise InvalidValueError(f"mollification.{field_name} must be > 0, got {getattr(self, field_name)}")

    @property
    def sequential(self) -> bool:
        return self.variant == "both" and self.both_mode == "sequential"

    def draw(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-example role (0 clean, 1 noise, 2 blur; all 1 in sequential mode), t, and the noise ε."""
        batch = x.shape[0]
        if self.sequential:
            roles = torch.full((batch,), NOISE, device=x.device)
        else:
            mollified = {"both": [NOISE, BLUR], "noise": [NOISE], "blur": [BLUR]}[self.variant]
            available = ([CLEAN] if self.clean_role else []) + mollified
            choice = torch.randint(len(available), (batch,), generator=generator, device=x.device)
            roles = torch.tensor(available, device=x.device)[choice]
        t = sample_beta(self.alpha, self.beta, batch, generator, x.device)
        t = torch.where(roles == CLEAN, torch.zeros_like(t), t)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return roles, t, noise

    def label_gamma(self, roles: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """γ per example: the noise or blur schedule by role (0 for clean); combined in sequential mode."""
        g_noise = noise_gamma(t, self.noise_power)
        g_blur = blur_gamma(t, self.blur_power)
        if self.sequential:
            return 1 - (1 - g_noise) * (1 - g_blur)
        gamma = torch.where(roles == NOISE, g_noise, g_blur)
        return torch.where(roles == CLEAN, torch.zeros_like(gamma), gamma)

    def mollify(self, h: torch.Tensor, roles: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The mollified standardised batch."""
        shape = (-1, 1, 1, 1)
        blur_rows = self.sequential or self.variant in ("both", "blur")
        if blur_rows:
            blurred = heat_dissipation_blur(h, blur_sigma(t, h.shape[-1], self.blur_min))
            h = blurred if self.sequential else torch.where((roles == BLUR).view(shape), blurred, h)
        if self.sequential or self.variant in ("both", "noise"):
            angle = (0.5 * math.pi * t).view(shape).to(h.dtype)
            noised = torch.cos(angle) * h + torch.sin(angle) * noise.to(h.dtype)
            h = noised if self.sequential else torch.where((roles == NOISE).view(shape), noised, h)
        return h

    def loss(self, model, images, labels, generator):
        x = to_unit(images)
        roles, t, noise = self.draw(x, generator)
        logits = model(x, hook_at=-1, feature_hook=lambda h: self.mollify(h, roles, t, noise))
        gamma = self.label_gamma(roles, t)
        targets = uniform_smoothed_targets(labels, logits.shape[1], gamma)
        loss = soft_cross_entropy(logits, targets)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels),
                      "gamma": gamma.detach().mean(), "clean_share": (roles == CLEAN).float().mean()}
