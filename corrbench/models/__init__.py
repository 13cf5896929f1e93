"""The model zoo: any timm model name, plus corrbench's CIFAR-scale archs registered into timm's registry.

Importing this package registers `cifar_resnet18/34/50`, `preact_resnet18/50`, `wrn_28_2/28_4/40_2`,
`cifar_densenet121`, `mnist_cnn` and `cnn_rony2019` with timm, so `timm.create_model('wrn_40_2')` works too.
"""
from corrbench.models import cifar_resnet, densenet, mnist_cnn, preact_resnet, small_cnn, wide_resnet  # noqa: F401
from corrbench.models.classifier import Classifier, Normalize, count_parameters
from corrbench.models.factory import create_model, split_model
from corrbench.models.zoo import ARCHS, SMALL_INPUT_MAX, ArchInfo, list_archs, resolve_arch

__all__ = [
    "ARCHS", "SMALL_INPUT_MAX", "ArchInfo", "Classifier", "Normalize", "count_parameters", "create_model",
    "list_archs", "resolve_arch", "split_model",
]
