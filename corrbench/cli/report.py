"""`corrbench report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli.common import console, split_names

HELP = """Tabulate a results folder: methods × corruptions (error per corruption averaged over severities),
clean error, mean CE / mCE, NLL, ECE, RMS — one table per suite, mean ± std over seeds with 95 % intervals
(t over seeds; a bootstrap over test images for a single run).

--plots DIR writes the figures (PNG and PDF) per suite and training curves; --html FILE one self-contained
report (tables, figures, metric definitions, provenance) that opens offline.

Example: corrbench report --results results --format md --out table.md
Example: corrbench report --plots figures --html report.html
"""


def report(
    results: Path = typer.Option(Path("results"), "--results", help="Results folder to read."),
    format: str = typer.Option("terminal", "--format", help="terminal, md, csv, latex or html."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of printing."),
    suite: Optional[str] = typer.Option(None, help="Only these suites (comma-separated)."),
    table: Optional[str] = typer.Option(None, "--table", help="A paper table (e.g. magn_table1): published numbers beside ours."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Also write the figures (PNG and PDF) per suite and the training curves to this folder."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write one self-contained HTML report (tables, figures, definitions, provenance) to this file."),
    explain: bool = typer.Option(False, "--explain", help="With --table: list the runs behind each row and why other runs were left out."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are read: configurations for --table (results that do not carry them), train_log.parquet for the training curves of --plots/--html."),
) -> None:
    from corrbench.cli.common import check_results_folder
    from corrbench.names import REPORT_FORMATS, check_name

    # Checked before pandas loads and before any reading: the format, and that the outputs can be written.
    check_name("format", format, REPORT_FORMATS)
    if table is not None:
        from corrbench.bundled import paper_tables_dir

        published = sorted(path.stem for path in paper_tables_dir().glob("*.csv"))
        if published:   # (without the package data, print_paper_table says what is missing)
            check_name("table", table, published)
    if out is not None:
        check_results_folder(out.parent, "--out")
    if plots is not None:
        check_results_folder(plots, "--plots")
    if html is not None:
        check_results_folder(html.parent, "--html")
    from corrbench.atomic import atomic_write_text
    from corrbench.errors import MissingDataError
    from corrbench.report.render import render, write_table
    from corrbench.report.tables import comparison_tables, fits, transposed
    from corrbench.results import load_results, warn_about_rows

    if out is not None and format == "terminal":
        format = "md"   # a file gets the plain-text table
    if table is not None:
        data, shown = print_paper_table(table, results, format, out, explain=explain, runs_dir=runs_dir)
        if plots is not None or html is not None:
            if data is None:
                raise MissingDataError(f"no results in {results} to draw for --plots/--html; run `corrbench eval` first")
            write_figures_and_html(data, [shown], plots=plots, html=html, runs_dir=runs_dir, title=table)
        return
    data = load_results(results)
    warn_about_rows(data)
    suites = split_names(suite)
    if suites:
        data = data[data["suite"].isin(suites)]
    tables = comparison_tables(data)
    if not tables:
        raise MissingDataError(f"no eval results{' for ' + ', '.join(suites) if suites else ''} in {results}; "
                               f"run `corrbench eval` first")
    if out is None:
        for shown in tables:
            if format == "terminal" and not fits(shown, console.width):
                shown = transposed(shown)
            write_table(shown, format, None, console)
    else:
        text = "\n\n".join(render(shown, format) for shown in tables)
        atomic_write_text(out, text if text.endswith("\n") else text + "\n")
        console.print(f"wrote {out}", highlight=False)
    write_figures_and_html(data, tables, plots=plots, html=html, runs_dir=runs_dir)


def print_paper_table(name: str, results: Path, format: str, out: Optional[Path] = None, *,
                      rows: Optional[list[str]] = None, columns: Optional[list[str]] = None, explain: bool = False,
                      runs_dir: Optional[Path] = None, recipe=None, assignments: Optional[list[str]] = None):
    """A paper table with published and reproduced values (results may be missing: then ours is empty);
    returns (the results rows or None, the table shown)."""
    from corrbench.atomic import atomic_write_text
    from corrbench.errors import MissingDataError
    from corrbench.report.paper import build_paper_table, table_expectations
    from corrbench.report.render import render, write_table
    from corrbench.report.tables import fits, transposed
    from corrbench.results import load_results, warn_about_rows

    try:
        data = load_results(results)
        warn_about_rows(data)
    except MissingDataError:
        data = None
    layout = {"row_fields": rows, "column_fields": columns} if rows and columns else {}
    expectations = table_expectations(name, recipe, assignments or [])
    paper = build_paper_table(name, data, expectations=expectations, runs_dir=runs_dir, **layout)
    if explain:
        explanation = paper.explain()
        if out is None:
            write_table(explanation, "md" if format == "csv" else format, None, console)
        else:
            out = out.with_name(out.stem + "_explain" + out.suffix)
            atomic_write_text(out, render(explanation, "md" if format in ("terminal", "csv") else format))
            console.print(f"wrote {out}", highlight=False)
        return data, paper.to_table()
    if format == "csv":
        text = paper.tidy().to_csv(index=False)
        if out is None:
            console.print(text, highlight=False, soft_wrap=True, end="")
        else:
            atomic_write_text(out, text)
        return data, paper.to_table()
    rendered = paper.to_table()
    shown = rendered
    if out is None:
        if format == "terminal" and not fits(rendered, console.width):
            rendered = transposed(rendered)
        write_table(rendered, format, None, console)
    else:
        atomic_write_text(out, render(rendered, "md" if format == "terminal" else format))
        console.print(f"wrote {out}", highlight=False)
    return data, shown


def print_recipe_table(recipe, results: Path, format: str, *, assignments: Optional[list[str]] = None,
                       runs_dir: Optional[Path] = None) -> None:
    """The table a recipe names (published beside ours; its rows fed by the runs this recipe, with these
    `--set` assignments, trains), or the plain comparison table."""
    if recipe.table:
        print_paper_table(recipe.table, results, format, rows=recipe.rows, columns=recipe.columns,
                          runs_dir=runs_dir, recipe=recipe, assignments=assignments)
    else:
        report(results=results, format=format, out=None, suite=None, table=None, plots=None, html=None,
               explain=False, runs_dir=runs_dir or Path("runs"))


def write_figures_and_html(rows, tables, *, plots: Optional[Path], html: Optional[Path], runs_dir: Path,
                           title: str = "") -> None:
    """--plots: every figure of every suite (report/figures.py, PNG and PDF) and the training curves of the runs
    found under `runs_dir`; --html: one self-contained report holding `tables` (the ones shown), the figures,
    the metric definitions and the provenance, written atomically."""
    if plots is None and html is None:
        return
    from corrbench.report.document import read_run_logs

    rows = rows[rows["kind"].isin(["eval", "flip-rate"])] if "kind" in rows else rows
    logs = read_run_logs(runs_dir, list(rows["run_id"].dropna().unique()))
    if plots is not None:
        from corrbench.report.figures import suite_figures, training_curves

        plots.mkdir(parents=True, exist_ok=True)
        written = []
        for suite_name, suite_rows in rows.groupby("suite", sort=True):
            written += suite_figures(suite_rows, plots, suite=str(suite_name))
        for fmt in ("png", "pdf"):
            curve = training_curves(logs, plots / f"training_curves.{fmt}")
            written += [curve] if curve is not None else []
        console.print(f"plots: {len(written)} files in {plots}", highlight=False, soft_wrap=True)
    if html is not None:
        from corrbench.atomic import atomic_write_text
        from corrbench.report.document import build_report

        document = build_report(rows, tables, title=f"corrbench report{': ' + title if title else ''}", run_logs=logs)
        atomic_write_text(html, document.render())
        console.print(f"wrote {html}", highlight=False, soft_wrap=True)
