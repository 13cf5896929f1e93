"""Render a `Table` for the terminal (rich) and for files: Markdown, CSV, LaTeX (booktabs), HTML.

A table is label columns (left-aligned) followed by value columns (right-aligned). Missing cells —
`None` or a float NaN — show as an em dash, except in CSV where they are empty so that the file loads
as missing values.
"""
from __future__ import annotations

import csv
import html
import io
import math
import numbers
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import rich.console
import rich.table
from rich.text import Text

from corrbench.atomic import atomic_write_text
from corrbench.registry import Registry

MISSING = "—"


@dataclass(frozen=True)
class Estimate:
    """A cell holding a mean with its spread and interval: shows as "12.34 ± 0.21" (± the standard deviation
    over seeds; the value alone when there is one run); in CSV it becomes four columns (`X`, `X std`, `X low`,
    `X high`) so the file stays machine-readable."""

    value: float
    std: float = math.nan
    low: float = math.nan
    high: float = math.nan


@dataclass(frozen=True)
class Span:
    """An interval shown as "[11.90, 12.78]" beside an Estimate; left out of CSV (the Estimate's low/high
    columns already carry it)."""

    low: float
    high: float


@dataclass
class Table:
    """A titled grid of cells, ready to render in any of `FORMATS`.

    `groups` are (label, span) pairs over the value columns (the spans sum to the number of value
    columns): LaTeX draws them with \\multicolumn, HTML with colspan, the terminal as a first header
    line; Markdown and CSV, which have a single header row, prefix each column label with its group
    ("Noise / gaussian").
    """

    title: str
    columns: list[str]
    rows: list[list[object]]
    row_header: int = 1
    caption: str | None = None
    float_format: str = "{:.2f}"
    groups: list[tuple[str, int]] | None = None


def _check(table: Table) -> None:
    # Shape mistakes are the caller's code, not user input: plain ValueError.
    width = len(table.columns)
    if not 0 <= table.row_header <= width:
        raise ValueError(f"row_header={table.row_header} but the table has {width} columns")
    for i, row in enumerate(table.rows):
        if len(row) != width:
            raise ValueError(f"row {i} of table '{table.title}' has {len(row)} cells, expected {width}")
    if table.groups is not None:
        spans = [span for _, span in table.groups]
        if any(span < 1 for span in spans) or sum(spans) != width - table.row_header:
            raise ValueError(f"group spans {spans} must be positive and sum to the "
                             f"{width - table.row_header} value columns of table '{table.title}'")


def _is_missing(cell: object) -> bool:
    if isinstance(cell, Estimate):
        return math.isnan(cell.value)
    if isinstance(cell, Span):
        return math.isnan(cell.low) or math.isnan(cell.high)
    return cell is None or (isinstance(cell, numbers.Real) and not isinstance(cell, numbers.Integral)
                            and math.isnan(float(cell)))


def _format_cell(cell: object, float_format: str) -> str:
    """The displayed text of a cell (terminal, md, latex, html)."""
    if _is_missing(cell):
        return MISSING
    if isinstance(cell, Estimate):
        value = float_format.format(cell.value)
        return value if math.isnan(cell.std) else f"{value} ± {float_format.format(cell.std)}"
    if isinstance(cell, Span):
        return f"[{float_format.format(cell.low)}, {float_format.format(cell.high)}]"
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, numbers.Integral):
        return str(int(cell))
    if isinstance(cell, numbers.Real):
        return float_format.format(float(cell))
    return str(cell)


def _raw_cell(cell: object) -> str:
    """The CSV text of a cell: full precision, missing as empty."""
    if _is_missing(cell):
        return ""
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, numbers.Integral):
        return str(int(cell))
    if isinstance(cell, numbers.Real):
        return repr(float(cell))  # shortest string that round-trips the float exactly
    return str(cell)


def _group_of_column(table: Table) -> list[str | None]:
    """For each column, the label of the group it sits under (None for label columns / no groups)."""
    labels: list[str | None] = [None] * table.row_header
    for label, span in table.groups or []:
        labels += [label] * span
    return labels + [None] * (len(table.columns) - len(labels))


def _flat_headers(table: Table) -> list[str]:
    """Column labels with their group prefixed, for formats with a single header row."""
    return [f"{group} / {column}" if group else column
            for column, group in zip(table.columns, _group_of_column(table))]


# ---------------------------------------------------------------- terminal

def to_rich(table: Table) -> rich.table.Table:
    """A rich table; cell text is never parsed as rich markup."""
    _check(table)
    grouped = table.groups is not None
    out = rich.table.Table(title=Text(table.title) if table.title else None,
                           caption=Text(table.caption) if table.caption else None,
                           min_width=len(table.title or ""))   # a title never wraps inside a run id
    first_of_group: dict[int, str] = {}
    position = table.row_header
    for label, span in table.groups or []:
        first_of_group[position] = label
        position += span
    for j, column in enumerate(table.columns):
        # rich has no spanning headers: a group's label sits on a first header line above its first column.
        header = f"{first_of_group.get(j, '')}\n{column}" if grouped else column
        # names (row headers) fold onto a second line rather than being cut with an ellipsis
        out.add_column(Text(header), justify="left" if j < table.row_header else "right",
                       overflow="fold" if j < table.row_header else "ellipsis")
    for row in table.rows:
        out.add_row(*(Text(MISSING, style="dim") if _is_missing(cell)
                      else Text(_format_cell(cell, table.float_format)) for cell in row))
    return out


def _render_terminal(table: Table) -> str:
    buffer = io.StringIO()
    # Wide enough never to wrap a table; plain text (no colour codes) since this goes to a string or file.
    console = rich.console.Console(file=buffer, width=1000, color_system=None, force_terminal=False)
    console.print(to_rich(table))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


# ---------------------------------------------------------------- markdown

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _render_md(table: Table) -> str:
    """A GitHub pipe table, columns padded so the source reads as a table too."""
    _check(table)
    header = [_md_escape(h) for h in _flat_headers(table)]
    body = [[_md_escape(_format_cell(cell, table.float_format)) for cell in row] for row in table.rows]
    widths = [max([3, len(h)] + [len(row[j]) for row in body]) for j, h in enumerate(header)]
    is_label = [j < table.row_header for j in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.ljust(w) if left else c.rjust(w) for c, w, left in zip(cells, widths, is_label)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if left else "-" * (w + 1) + ":"
                          for w, left in zip(widths, is_label)) + "|"
    lines = []
    if table.title:
        lines += [f"**{table.title}**", ""]
    lines += [line(header), rule] + [line(row) for row in body]
    if table.caption:
        lines += ["", table.caption]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- csv

def _render_csv(table: Table) -> str:
    """Header row then data rows; title and caption are left out so the file loads as plain data."""
    _check(table)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    headers = _flat_headers(table)
    # Estimate columns become value, std, low, high; Span columns (display of an Estimate's interval) go.
    kinds = []
    for j in range(len(headers)):
        cells = [row[j] for row in table.rows]
        if any(isinstance(c, Estimate) for c in cells):
            kinds.append("estimate")
        elif cells and all(isinstance(c, Span) or _is_missing(c) for c in cells) and any(isinstance(c, Span) for c in cells):
            kinds.append("span")
        else:
            kinds.append("plain")
    out_headers = []
    for header, kind in zip(headers, kinds):
        out_headers += [header, f"{header} std", f"{header} low", f"{header} high"] if kind == "estimate" else \
            ([] if kind == "span" else [header])
    writer.writerow(out_headers)
    for row in table.rows:
        line = []
        for cell, kind in zip(row, kinds):
            if kind == "span":
                continue
            if kind == "estimate":
                e = cell if isinstance(cell, Estimate) else Estimate(math.nan if _is_missing(cell) else float(cell))
                line += [_raw_cell(e.value), _raw_cell(e.std), _raw_cell(e.low), _raw_cell(e.high)]
            else:
                line.append(_raw_cell(cell))
        writer.writerow(line)
    return buffer.getvalue()


# ---------------------------------------------------------------- latex

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(ch) for ch in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """Escape the characters LaTeX treats specially in running text."""
    return _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIAL[match.group()], text)


def _render_latex(table: Table) -> str:
    """A `table` float holding a booktabs tabular; title as \\caption, the note in small type below."""
    _check(table)
    spec = "l" * table.row_header + "r" * (len(table.columns) - table.row_header)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if table.title:
        lines.append(rf"\caption{{{latex_escape(table.title)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if table.groups:
        cells = [""] * table.row_header
        rules = []
        start = table.row_header + 1  # LaTeX columns are 1-based
        for label, span in table.groups:
            cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines.append(" & ".join(latex_escape(c) for c in table.columns) + r" \\")
    lines.append(r"\midrule")
    for row in table.rows:
        lines.append(" & ".join(latex_escape(_format_cell(cell, table.float_format)) for cell in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.caption:
        lines.append(rf"\par\smallskip{{\footnotesize {latex_escape(table.caption)}\par}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- html

def _render_html(table: Table) -> str:
    """A self-contained <table>: title as <caption>, the note in <tfoot>, every text escaped."""
    _check(table)
    esc = html.escape
    right = ' style="text-align:right"'
    lines = ["<table>"]
    if table.title:
        lines.append(f"<caption>{esc(table.title)}</caption>")
    lines.append("<thead>")
    if table.groups:
        cells = ['<th scope="col"></th>'] * table.row_header
        cells += [f'<th scope="colgroup" colspan="{span}">{esc(label)}</th>' for label, span in table.groups]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("<tr>" + "".join(
        f'<th scope="col"{"" if j < table.row_header else right}>{esc(c)}</th>'
        for j, c in enumerate(table.columns)) + "</tr>")
    lines += ["</thead>", "<tbody>"]
    for row in table.rows:
        cells = []
        for j, cell in enumerate(row):
            text = esc(_format_cell(cell, table.float_format))
            cells.append(f'<th scope="row">{text}</th>' if j < table.row_header else f"<td{right}>{text}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</tbody>")
    if table.caption:
        lines += ["<tfoot>", f'<tr><td colspan="{len(table.columns)}">{esc(table.caption)}</td></tr>', "</tfoot>"]
    lines.append("</table>")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- entry points

_RENDERERS: Registry[Callable[[Table], str]] = Registry("table format")
_RENDERERS.register("terminal", _render_terminal)
_RENDERERS.register("md", _render_md)
_RENDERERS.register("csv", _render_csv)
_RENDERERS.register("latex", _render_latex)
_RENDERERS.register("html", _render_html)
FORMATS = tuple(_RENDERERS.names())


def render(table: Table, fmt: str) -> str:
    """The table as text in format `fmt` (one of FORMATS); 'terminal' gives rich's box drawing, uncoloured."""
    return _RENDERERS.get(fmt)(table)


def write_table(table: Table, fmt: str, out: Path | None,
                console: rich.console.Console | None = None) -> None:
    """Show the table (out None) or write it atomically to `out`.

    With no `out`, 'terminal' prints the rich table and other formats print their text — to `console`
    when one is given, else to stdout.
    """
    renderer = _RENDERERS.get(fmt)  # fail on a bad format before anything is written
    if out is not None:
        atomic_write_text(out, renderer(table))
    elif fmt == "terminal":
        (console or rich.console.Console()).print(to_rich(table))
    elif console is not None:
        console.out(renderer(table), highlight=False, end="")
    else:
        sys.stdout.write(renderer(table))
