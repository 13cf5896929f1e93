"""Shared CLI pieces: the console, progress bars, option parsing helpers, table printing."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Sequence

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from corrbench.errors import InvalidValueError, check_range

console = Console()
if not console.is_terminal:
    # A pipe or a log file has no width: never squeeze a table into 80 columns and cut names or run ids.
    console = Console(width=4096)
err_console = Console(stderr=True)


@contextlib.contextmanager
def progress_bars() -> Iterator[Progress]:
    """Rich progress bars on stderr (transient: the results table is what stays on screen); plain log lines
    (`corrbench.progress.PlainProgress`) when stderr is not a terminal (Slurm, nohup, a pipe)."""
    if not err_console.is_terminal:
        import sys

        from corrbench.progress import PlainProgress

        yield PlainProgress(lambda line: print(line, file=sys.stderr, flush=True))  # type: ignore[misc]
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=err_console, transient=True)
    with progress:
        yield progress


def split_names(value: str | None, option: str | None = None) -> list[str] | None:
    """'a,b , c' -> ['a', 'b', 'c']; None (option not given) -> None. A given value without any name
    (`--corruptions ,`) is an error, never "all"."""
    if value is None:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        what = f"{option} lists no names" if option else "no names"
        raise InvalidValueError(f"{what} in '{value}'; give comma-separated names, or leave the option out for all")
    return names


def split_ints(value: str | None, label: str) -> list[int] | None:
    names = split_names(value, label)
    if names is None:
        return None
    try:
        return [int(v) for v in names]
    except ValueError:
        raise InvalidValueError(f"{label} expects comma-separated integers, got '{value}'") from None


def corruption_names(value: str | None, suite: str | None = None, option: str = "--corruptions") -> list[str] | None:
    """--corruptions: names of corruptions some -C suite has (the chosen suite's are checked when it opens).
    Generic suites (cfolder:PATH, cnpy:PATH) hold files of any name: only their folder can tell."""
    from corrbench.names import check_corruption_names

    names = split_names(value, option)
    if suite is None or ":" not in suite:
        check_corruption_names(names or ())
    return names


def perturbation_names(value: str | None, suite: str | None = None,
                       option: str = "--perturbations") -> list[str] | None:
    """--perturbations of a -P suite (generic suites, named with a prefix, are checked when opened)."""
    from corrbench.names import PERTURBATIONS, check_name

    names = split_names(value, option)
    for name in names or () if suite is None or ":" not in suite else ():
        check_name("perturbation", name, PERTURBATIONS)
    return names


def severity_list(value: str | None, option: str = "--severities") -> list[int] | None:
    from corrbench.names import SEVERITIES

    severities = split_ints(value, option)
    for severity in severities or ():
        check_range("severity", severity, low=SEVERITIES[0], high=SEVERITIES[-1])
    return severities


def check_positive(option: str, value: int | float | None) -> None:
    """An optional count (--batch-size, --limit …): absent, or at least 1."""
    if value is not None:
        check_range(option, value, low=1)


def check_device(device: str) -> None:
    from corrbench.names import check_device_name

    check_device_name(device)


def check_source(source: str) -> None:
    from corrbench.names import SOURCES, check_name

    check_name("source", source, SOURCES)


def check_evaluation_options(batch_size: int | None, source: str, device: str, results: Path) -> None:
    """The options eval, calibrate and flip-rate share, checked before torch loads."""
    check_positive("--batch-size", batch_size)
    check_source(source)
    check_device(device)
    check_results_folder(results)


def check_results_folder(results: Path, option: str = "--results") -> None:
    """The results folder can be written (checked before any work, not after an hour of evaluation)."""
    from corrbench.writable import RESULTS_FREE_BYTES, check_writable_folder

    check_writable_folder(results, option, free_bytes=RESULTS_FREE_BYTES)


def percent(value: float) -> str:
    return "—" if value != value else f"{100 * value:.2f}"


def fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def rows_text(pairs: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)
