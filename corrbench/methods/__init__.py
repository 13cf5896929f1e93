"""Training methods: one module per method, registered by name (`corrbench methods`)."""
from corrbench.methods.base import METHODS, Method, Recipe, create_method, list_methods, register_method, to_unit
from corrbench.methods import standard as _standard  # noqa: F401  (registers)
from corrbench.methods import gaussian_noise as _gaussian_noise  # noqa: F401

__all__ = ["METHODS", "Method", "Recipe", "create_method", "list_methods", "register_method", "to_unit"]
