"""TrivialAugment (wide), AutoAugment and RandAugment, batched, every image drawing its own ops.

Op spaces, magnitude bins and policies are torchvision's (`transforms/autoaugment.py`, the
implementation the robustness papers' PyTorch baselines use): nearest resampling, fill 0, shear
coefficient tan(atan(m)) as torchvision computes it, translation by int(m) px, enhance factor 1 + m.
Every op is the PIL call torchvision makes on a PIL image, reproduced exactly by `ops`.
Differences from the original TensorFlow AutoAugment code: magnitudes follow torchvision (enhance
factors 1 ± 0.9·bin/9 with a random sign instead of 0.1 + 1.8·bin/10; posterize 8..4 bits instead of
4..0) and Cutout is not part of the policy.

- TrivialAugment-wide (Müller & Hutter, ICCV 2021): one op per image, uniform over 14, uniform bin
  of 31 (wide ranges: shear 0.99, translate 32 px, rotate 135°, enhance ±0.99, posterize 8..2 bits).
- AutoAugment (Cubuk et al., CVPR 2019): one of 25 learned sub-policies per image; each of its two
  ops applies with its probability at its magnitude bin of 10, random sign. Default: CIFAR-10 policy.
- RandAugment (Cubuk et al., NeurIPS-W 2020): `num_ops` ops per image, uniform over 14, all at bin
  `magnitude` of `num_bins` (torchvision defaults 2, 9, 31), random sign.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch

from corrbench.augment.ops import check_uint8_batch
from corrbench.augment.per_image import apply_per_image
from corrbench.augment.registry import register_augmentation
from corrbench.errors import InvalidValueError
from corrbench.registry import Registry

# torchvision op name -> corrbench.augment.ops op
OP_FOR = {
    "Identity": "identity", "ShearX": "shear_x", "ShearY": "shear_y", "TranslateX": "translate_x",
    "TranslateY": "translate_y", "Rotate": "rotate", "Brightness": "brightness", "Color": "color",
    "Contrast": "contrast", "Sharpness": "sharpness", "Posterize": "posterize", "Solarize": "solarize",
    "AutoContrast": "autocontrast", "Equalize": "equalize", "Invert": "invert",
}
SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}

Space = dict[str, "list[float] | None"]   # op name -> torchvision magnitude per bin (None: no magnitude)


def _linspace(start: float, end: float, bins: int) -> list[float]:
    """torchvision's float32 `torch.linspace`, as the Python floats it hands to the ops."""
    return [float(v) for v in torch.linspace(start, end, bins)]


def _posterize_bits(bins: int, span: int) -> list[float]:
    return [float(v) for v in 8 - (torch.arange(bins) / ((bins - 1) / span)).round().int()]


def wide_space(bins: int) -> Space:
    """TrivialAugmentWide's op space (torchvision)."""
    return {
        "Identity": None, "ShearX": _linspace(0.0, 0.99, bins), "ShearY": _linspace(0.0, 0.99, bins),
        "TranslateX": _linspace(0.0, 32.0, bins), "TranslateY": _linspace(0.0, 32.0, bins),
        "Rotate": _linspace(0.0, 135.0, bins), "Brightness": _linspace(0.0, 0.99, bins),
        "Color": _linspace(0.0, 0.99, bins), "Contrast": _linspace(0.0, 0.99, bins),
        "Sharpness": _linspace(0.0, 0.99, bins), "Posterize": _posterize_bits(bins, 6),
        "Solarize": _linspace(255.0, 0.0, bins), "AutoContrast": None, "Equalize": None,
    }


def standard_space(bins: int, height: int, width: int, *, identity: bool, invert: bool) -> Space:
    """AutoAugment's (with Invert) and RandAugment's (with Identity) op space (torchvision)."""
    space: Space = {"Identity": None} if identity else {}
    space.update({
        "ShearX": _linspace(0.0, 0.3, bins), "ShearY": _linspace(0.0, 0.3, bins),
        "TranslateX": _linspace(0.0, 150.0 / 331.0 * width, bins),
        "TranslateY": _linspace(0.0, 150.0 / 331.0 * height, bins),
        "Rotate": _linspace(0.0, 30.0, bins), "Brightness": _linspace(0.0, 0.9, bins),
        "Color": _linspace(0.0, 0.9, bins), "Contrast": _linspace(0.0, 0.9, bins),
        "Sharpness": _linspace(0.0, 0.9, bins), "Posterize": _posterize_bits(bins, 4),
        "Solarize": _linspace(255.0, 0.0, bins), "AutoContrast": None, "Equalize": None,
    })
    if invert:
        space["Invert"] = None
    return space


def pil_argument(name: str, magnitude: float) -> float:
    """The argument of the PIL call torchvision's `_apply_op(name, magnitude)` makes on a PIL image."""
    if name in ("ShearX", "ShearY"):          # F.affine(shear=degrees(atan(m))) -> coefficient tan(radians(·))
        return math.tan(math.radians(math.degrees(math.atan(magnitude))))
    if name in ("TranslateX", "TranslateY"):  # F.affine(translate=int(m)) -> AFFINE offset −int(m)
        return -float(int(magnitude))
    if name in ("Brightness", "Color", "Contrast", "Sharpness"):
        return 1.0 + magnitude
    if name == "Posterize":
        return float(int(magnitude))
    if name in ("Rotate", "Solarize"):
        return magnitude
    return 0.0


class OpTable:
    """An op space as tensors: `argument[negated, op, bin]` is the PIL argument of op at bin."""

    def __init__(self, space: Space):
        self.names = list(space)
        self.ops = [OP_FOR[name] for name in self.names]
        bins = max(len(values) for values in space.values() if values is not None)
        rows = {False: [], True: []}
        for name in self.names:
            values = space[name] or [0.0] * bins
            for negated in (False, True):
                sign = -1.0 if negated and name in SIGNED else 1.0
                rows[negated].append([pil_argument(name, sign * v) for v in values])
        self.bins = bins
        self.argument = torch.tensor([rows[False], rows[True]], dtype=torch.float64)
        self.signed = torch.tensor([name in SIGNED for name in self.names])
        self.has_magnitude = torch.tensor([space[name] is not None for name in self.names])
        self.index = {name: i for i, name in enumerate(self.names)}
        # Every angle a Rotate can get: lets the fused path look the rotation coefficients up.
        self.rotation_angles = (tuple(sorted(set(self.argument[:, self.index["Rotate"]].flatten().tolist())))
                                if "Rotate" in self.index else None)
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def arguments(self, op: torch.Tensor, bin_index: torch.Tensor, negate: torch.Tensor) -> torch.Tensor:
        """The PIL argument per image (negate only affects signed ops)."""
        if op.device not in self._on_device:   # copied once per device (a copy per call would sync)
            self._on_device[op.device] = self.argument.to(op.device)
        return self._on_device[op.device][negate.long(), op.clamp(min=0), bin_index]

    def apply(self, images: torch.Tensor, op: torch.Tensor, bin_index: torch.Tensor, negate: torch.Tensor) -> torch.Tensor:
        """Op `op[i]` (−1: none) at bin `bin_index[i]` on image i, nearest resampling."""
        return apply_per_image(images, op, self.arguments(op, bin_index, negate), self.ops, resample="nearest",
                               rotation_angles=self.rotation_angles)


@functools.lru_cache(maxsize=32)
def _wide_table(bins: int) -> OpTable:
    return OpTable(wide_space(bins))


@functools.lru_cache(maxsize=32)
def _standard_table(bins: int, height: int, width: int, identity: bool, invert: bool) -> OpTable:
    return OpTable(standard_space(bins, height, width, identity=identity, invert=invert))


def _check_bins(num_bins: int) -> None:
    if isinstance(num_bins, bool) or int(num_bins) != num_bins or num_bins < 2:
        raise InvalidValueError(f"num_bins (magnitude levels) must be an integer ≥ 2, got {num_bins}")


def trivial_augment_wide(images: torch.Tensor, generator: torch.Generator, *, num_bins: int = 31) -> torch.Tensor:
    """TrivialAugmentWide per image: one uniform op at a uniform bin with a random sign (uint8 -> uint8)."""
    check_uint8_batch(images)
    _check_bins(num_bins)
    table = _wide_table(int(num_bins))
    batch, device = images.shape[0], images.device
    op = torch.randint(0, len(table.names), (batch,), generator=generator, device=device)
    bin_index = torch.randint(0, table.bins, (batch,), generator=generator, device=device)
    negate = torch.randint(0, 2, (batch,), generator=generator, device=device) == 1
    return table.apply(images, op, bin_index, negate)


def rand_augment(images: torch.Tensor, generator: torch.Generator, *, num_ops: int = 2, magnitude: int = 9,
                 num_bins: int = 31) -> torch.Tensor:
    """RandAugment per image: `num_ops` uniform ops, each at bin `magnitude`, random sign (uint8 -> uint8)."""
    check_uint8_batch(images)
    _check_bins(num_bins)
    if isinstance(num_ops, bool) or int(num_ops) != num_ops or num_ops < 0:
        raise InvalidValueError(f"randaugment num_ops must be an integer ≥ 0, got {num_ops}")
    if isinstance(magnitude, bool) or int(magnitude) != magnitude or not 0 <= magnitude < num_bins:
        raise InvalidValueError(f"randaugment magnitude must be an integer bin from 0 to {num_bins - 1}, got {magnitude}")
    table = _standard_table(int(num_bins), images.shape[2], images.shape[3], True, False)
    batch, device = images.shape[0], images.device
    bin_index = torch.full((batch,), int(magnitude), device=device)
    for _ in range(int(num_ops)):
        op = torch.randint(0, len(table.names), (batch,), generator=generator, device=device)
        negate = torch.randint(0, 2, (batch,), generator=generator, device=device) == 1
        images = table.apply(images, op, bin_index, negate)
    return images


SubPolicy = tuple[tuple[str, float, "int | None"], tuple[str, float, "int | None"]]
POLICIES: Registry[tuple[SubPolicy, ...]] = Registry("autoaugment policy")

# AutoAugment's learned policies (Cubuk et al. 2019, appendix), as torchvision's AutoAugmentPolicy lists
# them: ((op, probability, magnitude bin of 10 or None), (op, probability, bin)).
POLICIES.register("cifar10", (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)), (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)), (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)), (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)), (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)), (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)), (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)), (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)), (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)), (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)), (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)), (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
))
POLICIES.register("imagenet", (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)), (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)), (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)), (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)), (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)), (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
))
POLICIES.register("svhn", (
    (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
    (("Equalize", 0.6, None), ("Solarize", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
    (("Equalize", 0.6, None), ("Rotate", 0.9, 3)), (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
    (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
    (("Invert", 0.9, None), ("AutoContrast", 0.8, None)), (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
    (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
    (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)), (("Invert", 0.9, None), ("Equalize", 0.6, None)),
    (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
    (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
    (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
    (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
    (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)), (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
    (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
))


@functools.lru_cache(maxsize=32)
def _policy_tensors_on(policy: str, table: OpTable, device: torch.device) -> tuple[torch.Tensor, ...]:
    """`_policy_tensors` on `device`, copied once (a copy per call would wait for the queued kernels)."""
    return tuple(t.to(device) for t in _policy_tensors(policy, table))


@functools.lru_cache(maxsize=32)
def _policy_tensors(policy: str, table: OpTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(op index, probability, bin) per sub-policy and step: three 25×2 tensors."""
    sub_policies: Sequence[SubPolicy] = POLICIES.get(policy)
    ops = torch.tensor([[table.index[name] for name, _, _ in sub] for sub in sub_policies])
    probability = torch.tensor([[p for _, p, _ in sub] for sub in sub_policies], dtype=torch.float32)
    bins = torch.tensor([[b if b is not None else 0 for _, _, b in sub] for sub in sub_policies])
    return ops, probability, bins


def auto_augment(images: torch.Tensor, generator: torch.Generator, *, policy: str = "cifar10") -> torch.Tensor:
    """AutoAugment per image: a uniform sub-policy; op k applies if u_k ≤ p_k (uint8 -> uint8)."""
    check_uint8_batch(images)
    sub_policies = POLICIES.get(policy)
    table = _standard_table(10, images.shape[2], images.shape[3], False, True)
    ops, probability, bins = _policy_tensors_on(policy, table, images.device)
    batch, device = images.shape[0], images.device
    chosen = torch.randint(0, len(sub_policies), (batch,), generator=generator, device=device)
    draws = torch.rand(batch, 2, generator=generator, device=device)
    negate = torch.randint(0, 2, (batch, 2), generator=generator, device=device) == 0
    for step in range(2):
        applies = draws[:, step] <= probability[chosen, step]
        op = torch.where(applies, ops[chosen, step], -1)
        images = table.apply(images, op, bins[chosen, step], negate[:, step])
    return images


@register_augmentation("trivialaugment", "TrivialAugment-wide: one random op at a random strength per image "
                                         "(torchvision TrivialAugmentWide, PIL-exact, per image).")
def _trivialaugment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return trivial_augment_wide(images, generator)


@register_augmentation("autoaugment", "AutoAugment, CIFAR-10 policy: a random learned sub-policy per image.")
def _autoaugment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return auto_augment(images, generator)


@register_augmentation("randaugment", "RandAugment N=2, M=9/31 (torchvision defaults), ops drawn per image.")
def _randaugment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return rand_augment(images, generator)
