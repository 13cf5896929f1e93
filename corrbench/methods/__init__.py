"""Training methods: one module per method, registered by name (`corrbench methods`).

Adding a method is adding a module here whose Method dataclass carries `@register_method`; every
module of this package is imported below, so the registry sees it.
"""
from corrbench._discovery import import_submodules
from corrbench.methods.base import METHODS, Method, Recipe, create_method, list_methods, register_method, to_unit

import_submodules(__name__, __path__, skip=("base",))

__all__ = ["METHODS", "Method", "Recipe", "create_method", "list_methods", "register_method", "to_unit"]
