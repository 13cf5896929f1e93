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
    table: Optional[str] = typer.Option(None, "--table", help="A paper table (e.g. magn_table1): published numbers beside ours."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Also write PNG figures to this folder."),
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
    if table is not None:
        print_paper_table(table, results, format, out)
        if plots is not None:
            write_plots(results, plots)
        return
    data = load_results(results)
    if plots is not None:
        write_plots(results, plots)
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


def print_paper_table(name: str, results: Path, format: str, out: Optional[Path] = None, *,
                      rows: Optional[list[str]] = None, columns: Optional[list[str]] = None) -> None:
    """A paper table with published and reproduced values (results may be missing: then ours is empty)."""
    from corrbench.atomic import atomic_write_text
    from corrbench.errors import MissingDataError
    from corrbench.report.paper import build_paper_table
    from corrbench.report.render import render, write_table
    from corrbench.report.tables import fits, transposed
    from corrbench.results import load_results

    try:
        data = load_results(results)
    except MissingDataError:
        data = None
    layout = {"row_fields": rows, "column_fields": columns} if rows and columns else {}
    paper = build_paper_table(name, data, **layout)
    if format == "csv":
        text = paper.tidy().to_csv(index=False)
        if out is None:
            console.print(text, highlight=False, soft_wrap=True, end="")
        else:
            atomic_write_text(out, text)
        return
    rendered = paper.to_table()
    if out is None:
        if format == "terminal" and not fits(rendered, console.width):
            rendered = transposed(rendered)
        write_table(rendered, format, None, console)
    else:
        atomic_write_text(out, render(rendered, "md" if format == "terminal" else format))
        console.print(f"wrote {out}", highlight=False)


def print_recipe_table(recipe, results: Path, format: str) -> None:
    """The table a recipe names (published beside ours), or the plain comparison table."""
    if recipe.table:
        print_paper_table(recipe.table, results, format, rows=recipe.rows, columns=recipe.columns)
    else:
        report(results=results, format=format, out=None, suite=None, table=None, plots=None)


def write_plots(results: Path, folder: Path) -> None:
    """Error per corruption (bars per method) and error against severity, per suite; reliability diagrams
    are written by `corrbench calibrate`."""
    from corrbench.report.plots import error_per_corruption, error_vs_severity
    from corrbench.results import load_results

    data = load_results(results, kinds=["eval"])
    for suite_name, rows in data.groupby("suite"):
        labels = rows["method"].where(rows["augment"] == "none", rows["method"] + "+" + rows["augment"])
        rows = rows.assign(label=labels + " / " + rows["arch"])
        corrupted = rows[rows["corruption"] != "clean"]
        per_corruption = {label: dict(group.groupby("corruption")["error"].mean() * 100)
                          for label, group in corrupted.groupby("label")}
        by_severity = {}
        for label, group in rows.groupby("label"):
            clean = group[group["corruption"] == "clean"]["error"].mean() * 100
            severities = group[group["corruption"] != "clean"].groupby("severity")["error"].mean() * 100
            if len(severities) == 5:
                by_severity[label] = [clean, *severities.sort_index().tolist()]
        error_per_corruption(per_corruption, folder / f"{suite_name}_error_per_corruption.png",
                             title=f"{suite_name}: error per corruption (%)")
        if by_severity:
            error_vs_severity(by_severity, folder / f"{suite_name}_error_vs_severity.png",
                              title=f"{suite_name}: error against severity (%)")
        console.print(f"plots: {folder}", highlight=False)
