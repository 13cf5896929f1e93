"""`deepaugment`: DeepAugment's on-the-fly Noise2Net variant (Hendrycks et al., "The Many Faces of
Robustness", ICCV 2021; code hendrycks/imagenet-r `DeepAugment/train_noise2net.py`; CIFAR settings from
the MAGN/DiGN code `noise2net.py`, `train.py`).

Each step a small Res2Net-style image-to-image network is re-initialised at random and applied, without
gradients, to the first 75 % of the batch: x ← x + ε·block_k(x) for 4 blocks, with one ε ~ U(ε_max/2,
ε_max) per batch. A block (per image, via grouped convolutions): 1×1 conv 3 → 4·p channels, BN, ReLU;
split into 4 groups of p; groups 1–3 pass a K×K conv (K ∈ {1, 3}, dilation ∈ {1, 2, 3}, bias) + BN + ReLU,
each adding the previous group's output first (the Res2Net hierarchy); group 4 passes through; concat;
1×1 conv 4·p → 3, BN. BatchNorm runs in training mode on the (1, B·channels, H, W) reshaped batch with
fresh affine parameters, i.e. it standardises every (image, channel) map. Weights use PyTorch's default
conv initialisation U(±1/√fan_in). The result is trained with plain cross-entropy; the augmentation acts
on the normalised image (the model's `hook_at=-1`), as both codes do.

Defaults: ε_max 0.4, hidden planes p = 2, fraction 0.75 (DiGN's CIFAR config `DeepAugment_N3_eps0p40_np2
_ar0p75`); ImageNet code: ε_max 0.75 (`--noisenet-max-eps`), p = 16, half the batch.
Difference: both codes draw the kernel sizes and dilations when the network is built (once per epoch);
corrbench redraws them with the weights at every step, from the step's generator.

Not available: DeepAugment's EDSR and CAE variants distort pretrained image-to-image networks
(EDSR_Weights/edsr_baseline_x4.pt, CAE_Weights/model_final.state) and pre-compute augmented copies of the
training set. Those weights cannot be obtained offline, so corrbench implements Noise2Net only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from corrbench.errors import InvalidValueError
from corrbench.methods.base import Method, Recipe, accuracy, cross_entropy, register_method, to_unit

SCALE = 4   # Res2Net scale: channel groups per block


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, device=device) * 2 - 1) * bound


def _grouped_conv(x: torch.Tensor, images: int, in_per_image: int, out_per_image: int, kernel: int, dilation: int,
                  bias: bool, generator: torch.Generator) -> torch.Tensor:
    """A freshly initialised conv applied to every image with its own weights (groups = images)."""
    fan_in = in_per_image * kernel * kernel
    bound = 1.0 / math.sqrt(fan_in)
    weight = _uniform((images * out_per_image, in_per_image, kernel, kernel), bound, generator, x.device)
    b = _uniform((images * out_per_image,), bound, generator, x.device) if bias else None
    padding = (kernel - 1) // 2 * dilation
    return F.conv2d(x, weight, b, padding=padding, dilation=dilation, groups=images)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """BatchNorm in training mode with weight 1, bias 0 on a (1, B·C, H, W) batch: per-map standardisation."""
    return F.batch_norm(x, None, None, training=True, eps=1e-5)


def _random_block(x: torch.Tensor, images: int, hidden: int, generator: torch.Generator) -> torch.Tensor:
    """One randomly initialised Res2Net bottleneck on the packed (1, images·3, H, W) batch."""
    height, width = x.shape[-2:]
    out = F.relu(_standardise(_grouped_conv(x, images, 3, hidden * SCALE, 1, 1, False, generator)))
    groups = out.reshape(images, SCALE, hidden, height, width).unbind(1)   # per image: SCALE groups of `hidden`
    kernels = torch.randint(2, (SCALE - 1,), generator=generator, device=x.device).tolist()
    dilations = torch.randint(1, 4, (SCALE - 1,), generator=generator, device=x.device).tolist()
    outputs = []
    running = None
    for index in range(SCALE - 1):
        running = groups[index] if running is None else running + groups[index]
        packed = running.reshape(1, images * hidden, height, width)
        kernel = 1 + 2 * kernels[index]
        conv = _grouped_conv(packed, images, hidden, hidden, kernel, dilations[index], True, generator)
        running = F.relu(_standardise(conv)).reshape(images, hidden, height, width)
        outputs.append(running)
    outputs.append(groups[SCALE - 1])
    merged = torch.stack(outputs, dim=1).reshape(1, images * SCALE * hidden, height, width)
    return _standardise(_grouped_conv(merged, images, SCALE * hidden, 3, 1, 1, False, generator))


@torch.no_grad()
def noise2net(x: torch.Tensor, generator: torch.Generator, *, eps_max: float = 0.4, hidden_planes: int = 2,
              fraction: float = 0.75, blocks: int = 4) -> tuple[torch.Tensor, float]:
    """Noise2Net on the first round(fraction·B) images of a float B×3×H×W batch; the rest is returned as is.

    Returns the batch and the strength ε ~ U(eps_max/2, eps_max) drawn for it. Each of the `blocks`
    steps moves every augmented (image, channel) map by exactly ε in RMS (the block output is
    standardised), so ‖out − x‖_rms ≤ blocks·ε per map.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise InvalidValueError(f"noise2net takes B×3×H×W batches, got shape {tuple(x.shape)}")
    batch, channels, height, width = x.shape
    count = int(round(fraction * batch))
    eps = float(eps_max * (0.5 + 0.5 * torch.rand((), generator=generator, device=x.device)))
    if count == 0:
        return x, eps
    with torch.autocast(x.device.type, enabled=False):
        packed = x[:count].float().reshape(1, count * channels, height, width)
        for _ in range(blocks):
            packed = packed + eps * _random_block(packed, count, hidden_planes, generator)
        augmented = packed.reshape(count, channels, height, width).to(x.dtype)
    return torch.cat([augmented, x[count:]]), eps


@register_method
@dataclass
class DeepAugment(Method):
    eps_max: float = 0.4       # ε ~ U(ε_max/2, ε_max) per batch
    hidden_planes: int = 2     # p: channels per Res2Net group
    fraction: float = 0.75     # share of each batch that is augmented (the rest stays clean)

    name = "deepaugment"
    summary = "DeepAugment's Noise2Net: a random Res2Net-style network distorts 75 % of each batch."
    recipe = Recipe(epochs=150, batch_size=128, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                    schedule="step", milestones=(50, 100), gamma=0.1,
                    source="DiGN code (CIFAR Noise2Net): 150 epochs, lr 0.1 ×0.1 every 50, Nesterov 0.9, wd 5e-4")
    choices = {
        "eps_max": "0.4 = DiGN's CIFAR config (default); 0.2 its first commit; 0.75 the ImageNet code",
        "fraction": "0.75 = DiGN's aug_ratio (default); 0.5 = the ImageNet code",
        "hidden_planes": "2 = DiGN's CIFAR config (default); 16 = the ImageNet code",
    }

    def __post_init__(self) -> None:
        if not self.eps_max >= 0:
            raise InvalidValueError(f"deepaugment.eps_max must be ≥ 0, got {self.eps_max}")
        if self.hidden_planes < 1:
            raise InvalidValueError(f"deepaugment.hidden_planes must be ≥ 1, got {self.hidden_planes}")
        if not 0 <= self.fraction <= 1:
            raise InvalidValueError(f"deepaugment.fraction must be between 0 and 1, got {self.fraction}")

    def loss(self, model, images, labels, generator):
        strength = {}

        def augment(h: torch.Tensor) -> torch.Tensor:
            out, strength["eps"] = noise2net(h, generator, eps_max=self.eps_max, hidden_planes=self.hidden_planes,
                                             fraction=self.fraction)
            return out

        logits = model(to_unit(images), hook_at=-1, feature_hook=augment)
        loss = cross_entropy(logits, labels)
        return loss, {"ce": loss.detach(), "acc": accuracy(logits.detach(), labels),
                      "eps": torch.tensor(strength["eps"])}
