"""`corrbench compare`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli.common import console

HELP = """Is A more robust than B? A paired comparison on the same test images: per corruption the difference
in error (A − B, percentage points) with a paired bootstrap interval over images (seeds averaged per image),
McNemar's exact test, and Holm's correction over the corruptions; then the overall difference on the
benchmark corruptions.

A and B are run ids, labels (`eval --label`) or method names (all their seeds).

Example: corrbench compare noisymix standard --suite cifar10-c
"""


def compare(
    a: str = typer.Argument(..., help="Run id, label or method of model A."),
    b: str = typer.Argument(..., help="Run id, label or method of model B."),
    results: Path = typer.Option(Path("results"), "--results", help="Results folder to read."),
    suite: Optional[str] = typer.Option(None, "--suite", help="The suite to compare on (needed when A and B share several)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Family-wise significance level of the Holm correction."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    cells: bool = typer.Option(False, "--cells", help="Also print every corruption × severity."),
    format: str = typer.Option("terminal", "--format", help="terminal, md, csv, latex or html."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the tables to this file instead of printing."),
) -> None:
    from corrbench.errors import InvalidValueError
    from corrbench.report.compare import compare as compare_results
    from corrbench.report.compare_tables import comparison_text, comparison_tables
    from corrbench.report.render import FORMATS, render, write_table
    from corrbench.results import load_results

    if not 0 < alpha < 1:
        raise InvalidValueError(f"--alpha must lie strictly between 0 and 1, got {alpha}")
    if resamples < 100:
        raise InvalidValueError(f"--resamples must be at least 100 for a 95 % interval, got {resamples}")
    if format not in FORMATS:
        from corrbench.errors import UnknownNameError
        raise UnknownNameError("format", format, FORMATS)
    rows = load_results(results, kinds=["eval"])
    result = compare_results(rows, a, b, suite=suite, alpha=alpha, resamples=resamples, seed=seed)
    tables = comparison_tables(result, cells=cells)
    if out is not None:
        from corrbench.atomic import atomic_write_text
        fmt = "md" if format == "terminal" else format
        atomic_write_text(out, "\n\n".join(render(t, fmt) for t in tables) + "\n" + comparison_text(result) + "\n")
        console.print(f"wrote {out}", highlight=False)
        return
    for table in tables:
        write_table(table, format, None, console)
    console.print(comparison_text(result), highlight=False, soft_wrap=True)
