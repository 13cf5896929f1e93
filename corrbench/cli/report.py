"""`corrbench report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli.common import console, split_names

HELP = """Tabulate a results folder: methods × corruptions (error per corruption averaged over severities),
clean error, mean CE / mCE, NLL, ECE, RMS — one table per suite, seeds averaged.

Example: corrbench report --results results --format md --out table.md
"""


def report(
    results: Path = typer.Option(Path("results"), "--results", help="Results folder to read."),
    format: str = typer.Option("terminal", "--format", help="terminal, md, csv, latex or html."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of printing."),
    suite: Optional[str] = typer.Option(None, help="Only these suites (comma-separated)."),
) -> None:
    from corrbench.atomic import atomic_write_text
    from corrbench.errors import MissingDataError, UnknownNameError
    from corrbench.report.render import FORMATS, render, write_table
    from corrbench.report.tables import comparison_tables, fits, transposed
    from corrbench.results import load_results

    if out is not None and format == "terminal":
        format = "md"   # a file gets the plain-text table
    if format not in FORMATS:
        raise UnknownNameError("format", format, FORMATS)
    data = load_results(results)
    suites = split_names(suite)
    if suites:
        data = data[data["suite"].isin(suites)]
    tables = comparison_tables(data)
    if not tables:
        raise MissingDataError(f"no eval results{' for ' + ', '.join(suites) if suites else ''} in {results}; "
                               f"run `corrbench eval` first")
    if out is None:
        for table in tables:
            if format == "terminal" and not fits(table, console.width):
                table = transposed(table)
            write_table(table, format, None, console)
        return
    text = "\n\n".join(render(table, format) for table in tables)
    atomic_write_text(out, text if text.endswith("\n") else text + "\n")
    console.print(f"wrote {out}", highlight=False)
