"""Shared CLI pieces: the console, progress bars, option parsing helpers, table printing."""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from corrbench.errors import InvalidValueError

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def progress_bars() -> Iterator[Progress]:
    """Rich progress bars on stderr (transient: the results table is what stays on screen)."""
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err_console, transient=True)
    with progress:
        yield progress


def split_names(value: str | None) -> list[str] | None:
    """'a,b , c' -> ['a', 'b', 'c']; None/'' -> None."""
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def split_ints(value: str | None, label: str) -> list[int] | None:
    names = split_names(value)
    if names is None:
        return None
    try:
        return [int(v) for v in names]
    except ValueError:
        raise InvalidValueError(f"{label} expects comma-separated integers, got '{value}'") from None


def percent(value: float) -> str:
    return "—" if value != value else f"{100 * value:.2f}"


def fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def rows_text(pairs: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)
