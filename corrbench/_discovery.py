"""Import every module of a package so that its registry decorators run (new file = new entry)."""
from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, package_path: list[str], skip: tuple[str, ...] = ()) -> None:
    for module in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if not module.name.startswith("_") and module.name not in skip:
            importlib.import_module(f"{package_name}.{module.name}")
