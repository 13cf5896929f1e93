"""Errors a user can cause. The CLI prints their one-line message and exits with code 2."""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A mistake the user can fix; the message is one line that says what was wrong and what to do."""

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """An unknown dataset, suite, arch, method, corruption, table … name."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        valid = sorted(valid)
        self.kind, self.name, self.valid = kind, name, valid
        hint = closest(name, valid)
        suggestion = f" Did you mean '{hint}'?" if hint else ""
        shown = ", ".join(valid[:40]) + (" …" if len(valid) > 40 else "")
        super().__init__(f"unknown {kind} '{name}'.{suggestion} Valid {kind}s: {shown}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class MissingDataError(UserError):
    """Data that is not where it was looked for."""


class LayoutError(UserError):
    """A file exists but does not have the official layout (shape, dtype, truncation …)."""


class CheckpointError(UserError):
    """A file that is not a corrbench checkpoint, or a truncated one."""


class InvalidValueError(UserError):
    """An option or setting outside its valid range."""


class TrainingDivergedError(UserError):
    """The loss became NaN or Inf."""


class WriteError(UserError):
    """A file or folder could not be written (read-only, full, not a folder); nothing half-written is left."""


class CorrbenchWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as one line)."""


def not_available(kind: str, name: str, available: Iterable[str], where: str) -> MissingDataError:
    """The error for a name that exists in general but not here (a corruption missing from a folder …),
    with the closest available name."""
    available = list(available)
    hint = closest(name, available)
    suggestion = f" Did you mean '{hint}'?" if hint else ""
    return MissingDataError(f"{kind} '{name}' is not available {where}.{suggestion} Available: "
                            f"{', '.join(available) or 'none'}")


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name nearest to `name`, if any is reasonably close."""
    matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return matches[0] if matches else None


def check_range(name: str, value: float, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True) -> None:
    """Raise InvalidValueError when `value` is outside [low, high] (or (low, high] if not low_inclusive), or is
    not a finite number."""
    bad_low = low is not None and (value < low if low_inclusive else value <= low)
    bad_high = high is not None and value > high
    infinite = value in (float("inf"), float("-inf"))   # `--lr inf` is no learning rate
    if bad_low or bad_high or infinite or value != value:  # value != value catches NaN
        if low is not None and high is not None:
            rng = f"between {low} and {high}"
        elif low is not None:
            rng = f"{'at least' if low_inclusive else 'greater than'} {low}"
        elif high is not None:
            rng = f"at most {high}"
        else:
            rng = ""
        finite = "a finite number " if infinite or value != value else ""
        raise InvalidValueError(f"{name} must be {(finite + rng).strip()}, got {value}")
