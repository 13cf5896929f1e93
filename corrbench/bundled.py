"""Files shipped inside the corrbench package: the published paper tables and the bundled recipes.

They live in corrbench/paper_tables/ (CSV + README) and corrbench/bundled_recipes/ (TOML), installed as
package data (pyproject.toml, [tool.setuptools.package-data]) and found with importlib.resources, so a
wheel install works from any directory. Ground floor: imports nothing of corrbench.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "corrbench"
PAPER_TABLES = "paper_tables"
RECIPES = "bundled_recipes"


def _folder(name: str) -> Path:
    # pip installs wheels unpacked, so the package folder is a real directory on disk.
    return Path(str(resources.files(PACKAGE).joinpath(name)))


def paper_tables_dir() -> Path:
    """The folder of published tables (<table>.csv, README.md)."""
    return _folder(PAPER_TABLES)


def recipes_dir() -> Path:
    """The folder of bundled recipes (<name>.toml)."""
    return _folder(RECIPES)


def recipe_names() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def bundled_recipe(name: str) -> Path | None:
    """The bundled recipe called `name` (a bare name like magn_table1, or a path whose stem is one)."""
    candidate = recipes_dir() / f"{Path(name).stem}.toml"
    return candidate if candidate.is_file() else None
