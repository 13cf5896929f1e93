"""Text to typed values: how a `--set key=value` or a recipe setting becomes a bool, int, float or tuple.

Ground floor (imports nothing of corrbench but errors), so the CLI can check settings before torch loads.
"""
from __future__ import annotations

import math
from typing import Any

from corrbench.errors import InvalidValueError

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_value(value: Any, kind: type, label: str) -> Any:
    """Convert a string to `kind` (bool, int, float, tuple of ints, or str); a non-string value passes through
    with its type checked. Floats must be finite. A bad value is an InvalidValueError naming `label`."""
    if kind is str:
        if not isinstance(value, str):
            raise InvalidValueError(f"{label} expects text, got {value!r}")
        return value
    if not isinstance(value, str):
        return _checked(value, kind, label)
    text = value.strip()
    try:
        if kind is bool:
            if text.lower() not in TRUE + FALSE:
                raise ValueError
            return text.lower() in TRUE
        if kind is tuple:
            return tuple(int(v) for v in text.split(",") if v.strip())
        if kind is float:
            number = float(text)
            if not math.isfinite(number):
                raise InvalidValueError(f"{label} must be a finite number, got '{value}'")
            return number
        return kind(text)
    except ValueError:
        raise InvalidValueError(f"{label} expects {_a(kind)}, got '{value}'") from None


def _checked(value: Any, kind: type, label: str) -> Any:
    """A value that is already typed (from TOML): the right type, or an error."""
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidValueError(f"{label} must be a finite number, got {value}")
        return float(value)
    if kind is tuple and isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool)
                                                                   for v in value):
        return tuple(value)
    if kind is int and isinstance(value, bool):
        raise InvalidValueError(f"{label} expects an integer, got {value!r}")
    if isinstance(value, kind):
        return value
    raise InvalidValueError(f"{label} expects {_a(kind)}, got {value!r}")


def _a(kind: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a float", tuple: "comma-separated integers",
            str: "text"}.get(kind, f"a {kind.__name__}")
