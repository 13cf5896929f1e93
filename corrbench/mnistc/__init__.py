"""MNIST-C (Mu & Gilmer 2019): the 15 benchmark corruptions of 28×28 grey digits, each at its one fixed
severity, batched in torch and seeded through explicit generators (spec Part C).

`corrupt_digits(digits, name, generator=...)` is the front door; `MNISTC_CORRUPTIONS` lists the names.
"""
from corrbench._discovery import import_submodules
from corrbench.mnistc.registry import (
    MNISTC, MNISTC_CORRUPTIONS, SIDE, DigitCorruption, corrupt_digits, register_digit, round_to_uint8,
)

# Every module of this package is imported so that its @register_digit-ed kernels enter the registry.
import_submodules(__name__, __path__)

__all__ = ["MNISTC", "MNISTC_CORRUPTIONS", "SIDE", "DigitCorruption", "corrupt_digits", "register_digit",
           "round_to_uint8"]
