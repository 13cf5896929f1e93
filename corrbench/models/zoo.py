"""corrbench's named archs and how an arch name resolves to a timm model name at a given input size."""
from __future__ import annotations

from dataclasses import dataclass

import timm

from corrbench.errors import UnknownNameError, check_range, closest
from corrbench.registry import Registry

# Inputs up to this size (CIFAR 32 px, Tiny-ImageNet 64 px) get the CIFAR-stem variant of resnet18 /
# densenet121, as the robustness papers use at these scales; larger inputs get timm's ImageNet model.
SMALL_INPUT_MAX = 64


@dataclass(frozen=True)
class ArchInfo:
    """A corrbench arch name and the timm model it resolves to at ≤ 64 px (`small`) and > 64 px (`large`)."""

    name: str
    small: str
    large: str
    description: str

    def resolve(self, image_size: int) -> str:
        return self.small if image_size <= SMALL_INPUT_MAX else self.large


ARCHS: Registry[ArchInfo] = Registry("arch")


def _register(name: str, description: str, small: str | None = None, large: str | None = None) -> None:
    ARCHS.register(name, ArchInfo(name, small or name, large or name, description))


_register("resnet18", "ResNet-18; at ≤64 px the CIFAR stem (3×3 stride-1 conv, no max-pool), "
          "above that timm's ImageNet resnet18", small="cifar_resnet18")
_register("preact_resnet18", "Pre-activation ResNet-18 (He et al. 2016), CIFAR stem")
_register("preact_resnet50", "Pre-activation ResNet-50 (bottleneck), CIFAR stem")
_register("wrn_28_2", "Wide ResNet 28-2 (Zagoruyko & Komodakis 2016)")
_register("wrn_28_4", "Wide ResNet 28-4")
_register("wrn_28_4_noisymix", "Wide ResNet 28-4, dropout 0.1, in erichson/NoisyMix's block (its CIFAR WRN)")
_register("wrn_40_2", "Wide ResNet 40-2 (AugMix's CIFAR model)")
_register("densenet121", "DenseNet-121 (BC, growth 32); at ≤64 px the CIFAR stem (3×3 conv, no max-pool), "
          "above that timm's ImageNet densenet121", small="cifar_densenet121")
_register("mnist_cnn", "Small 4-conv CNN (~0.1M parameters) for quick runs on 32×32 digits")
_register("cnn_rony2019", "MNIST CNN of Rony et al. 2019 (DDN), ESP's MNIST-C model; 32×32 digits")


def list_archs() -> list[ArchInfo]:
    """corrbench's named archs (any other timm model name works too), for `corrbench zoo`."""
    return [info for _, info in ARCHS.items()]


def resolve_arch(arch: str, image_size: int) -> str:
    """The timm model name `arch` means at `image_size` px: corrbench's names by the ≤64 px rule, timm's as is."""
    check_range("image_size", image_size, low=1)
    if arch in ARCHS:
        return ARCHS.get(arch).resolve(image_size)
    if timm.is_model(arch):  # includes our registered archs (cifar_resnet18 …) and tagged names
        return arch
    raise unknown_arch(arch)


def unknown_arch(arch: str) -> UnknownNameError:
    """The error for an arch name that is neither corrbench's nor timm's, suggesting the closest of both."""
    error = UnknownNameError("arch", arch, [*ARCHS.names(), *timm.list_models()])
    # Listing timm's ~1,300 names is useless; name ours and point to timm for the rest.
    hint = closest(arch, error.valid)
    suggestion = f" Did you mean '{hint}'?" if hint else ""
    error.args = (f"unknown arch '{arch}'.{suggestion} Valid archs: {', '.join(ARCHS.names())}, "
                  f"or any timm model name (list them with timm.list_models())",)
    return error

