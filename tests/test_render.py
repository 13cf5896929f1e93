"""Table rendering: exact Markdown/CSV/LaTeX text, well-formed escaped HTML, rich output, file writing."""
from __future__ import annotations

import csv
import io
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from corrbench.errors import UnknownNameError
from corrbench.report.render import FORMATS, Table, latex_escape, render, to_rich, write_table


def small_table() -> Table:
    # 2 rows × 3 columns: a label column, a float that needs rounding, a missing cell and an int.
    return Table(title="Error (%)", columns=["Method", "Clean", "Mean_C"],
                 rows=[["ERM", 1 / 3, None], ["AugMix", 4, 10.5]],
                 caption="mCE uses AlexNet errors")


def test_formats_are_the_documented_five() -> None:
    assert set(FORMATS) == {"terminal", "md", "csv", "latex", "html"}


def test_markdown_exact() -> None:
    expected = (
        "**Error (%)**\n"
        "\n"
        "| Method | Clean | Mean_C |\n"
        "|:-------|------:|-------:|\n"
        "| ERM    |  0.33 |      — |\n"
        "| AugMix |     4 |  10.50 |\n"
        "\n"
        "mCE uses AlexNet errors\n"
    )
    assert render(small_table(), "md") == expected


def test_markdown_escapes_pipes_and_prefixes_groups() -> None:
    table = Table(title="", columns=["Model", "gauss", "shot", "fog"], rows=[["a|b", 1.0, 2.0, 3.0]],
                  groups=[("Noise", 2), ("Weather", 1)])
    lines = render(table, "md").splitlines()
    assert lines[0] == "| Model | Noise / gauss | Noise / shot | Weather / fog |"
    assert lines[2].startswith("| a\\|b ")


def test_csv_exact_full_precision_and_empty_missing() -> None:
    expected = (
        "Method,Clean,Mean_C\n"
        "ERM,0.3333333333333333,\n"
        "AugMix,4,10.5\n"
    )
    text = render(small_table(), "csv")
    assert text == expected
    # Round trip: the float comes back bit-exact.
    rows = list(csv.reader(io.StringIO(text)))
    assert float(rows[1][1]) == 1 / 3


def test_csv_quotes_commas_and_prefixes_groups() -> None:
    table = Table(title="t", columns=["Model", "e"], rows=[["wrn,40", 0.5]], groups=[("Noise", 1)])
    assert render(table, "csv") == 'Model,Noise / e\n"wrn,40",0.5\n'


def test_latex_exact() -> None:
    expected = "\n".join([
        r"\begin{table}[htbp]",
        r"\centering",
        r"\caption{Error (\%)}",
        r"\begin{tabular}{lrr}",
        r"\toprule",
        r"Method & Clean & Mean\_C \\",
        r"\midrule",
        r"ERM & 0.33 & — \\",
        r"AugMix & 4 & 10.50 \\",
        r"\bottomrule",
        r"\end{tabular}",
        r"\par\smallskip{\footnotesize mCE uses AlexNet errors\par}",
        r"\end{table}",
    ]) + "\n"
    assert render(small_table(), "latex") == expected


def test_latex_groups_use_multicolumn_and_cmidrule() -> None:
    table = Table(title="", columns=["Model", "Depth", "gauss", "shot", "fog"], row_header=2,
                  rows=[["wrn", 40, 1.0, 2.0, 3.0]], groups=[("Noise", 2), ("Weather", 1)])
    lines = render(table, "latex").splitlines()
    assert r"\begin{tabular}{llrrr}" in lines
    assert r" &  & \multicolumn{2}{c}{Noise} & \multicolumn{1}{c}{Weather} \\" in lines
    assert r"\cmidrule(lr){3-4} \cmidrule(lr){5-5}" in lines
    assert not any(line.startswith(r"\caption") for line in lines)  # no title, no caption


def test_latex_escape_special_characters() -> None:
    assert latex_escape("gaussian_noise 5% R&D #1") == r"gaussian\_noise 5\% R\&D \#1"
    assert latex_escape(r"a\b{c}$~^") == r"a\textbackslash{}b\{c\}\$\textasciitilde{}\textasciicircum{}"
    table = Table(title="t", columns=["corruption", "err"], rows=[["motion_blur", 1.0]])
    assert r"motion\_blur & 1.00 \\" in render(table, "latex")


class _Collector(HTMLParser):
    """Records the element structure and text so the HTML can be checked as parsed, not as a string."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.cells: list[tuple[str, str]] = []
        self.caption = ""
        self.colspans: list[str] = []
        self.unbalanced = False

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag in ("th", "td"):
            self.cells.append((tag, ""))
            self.colspans += [v for k, v in attrs if k == "colspan"]

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.unbalanced = True

    def handle_data(self, data):
        if self.stack and self.stack[-1] in ("th", "td"):
            tag, text = self.cells[-1]
            self.cells[-1] = (tag, text + data)
        elif self.stack and self.stack[-1] == "caption":
            self.caption += data


def test_html_parses_balanced_and_escaped() -> None:
    table = Table(title="<b>Error</b> & more", columns=["Method", "Clean", "Mean"],
                  rows=[["<script>x</script>", 1 / 3, None], ["A&B", 4, 10.5]], caption="a < b",
                  groups=[("Err", 2)])
    text = render(table, "html")
    assert "<script>" not in text and "<b>" not in text
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert not parser.unbalanced and parser.stack == []
    assert parser.caption == "<b>Error</b> & more"  # entities decoded back to the original text
    texts = [t for _, t in parser.cells]
    assert texts == ["", "Err", "Method", "Clean", "Mean",
                     "<script>x</script>", "0.33", "—", "A&B", "4", "10.50", "a < b"]
    assert parser.colspans == ["2", "3"]  # the group header and the caption footer
    # Label cells are row headers, values are data cells.
    assert parser.cells[5][0] == "th" and parser.cells[6][0] == "td"


def test_rich_contains_title_values_and_missing_marker() -> None:
    console = Console(record=True, width=120)
    console.print(to_rich(small_table()))
    out = console.export_text()
    for text in ("Error (%)", "Method", "Mean_C", "ERM", "AugMix", "0.33", "10.50", "—",
                 "mCE uses AlexNet errors"):
        assert text in out


def test_rich_does_not_interpret_markup_in_cells() -> None:
    table = Table(title="[bold]t[/bold]", columns=["a", "b"], rows=[["[red]x[/red]", 1.0]])
    console = Console(record=True, width=120)
    console.print(to_rich(table))
    out = console.export_text()
    assert "[red]x[/red]" in out and "[bold]t[/bold]" in out


def test_terminal_string_has_values_and_no_colour_codes() -> None:
    text = render(small_table(), "terminal")
    assert "\x1b[" not in text
    assert "AugMix" in text and "10.50" in text and "Error (%)" in text


def test_custom_float_format() -> None:
    table = Table(title="", columns=["m", "e"], rows=[["x", 0.12345]], float_format="{:.1%}")
    assert "| x   | 12.3% |" in render(table, "md")


def test_nan_counts_as_missing() -> None:
    table = Table(title="", columns=["m", "e"], rows=[["x", float("nan")]])
    assert render(table, "csv") == "m,e\nx,\n"
    assert "| x   |   — |" in render(table, "md")


def test_ragged_row_is_rejected() -> None:
    with pytest.raises(ValueError, match="row 0"):
        render(Table(title="t", columns=["a", "b"], rows=[["x"]]), "md")
    with pytest.raises(ValueError, match="group spans"):
        render(Table(title="t", columns=["a", "b"], rows=[], groups=[("g", 2)]), "md")


def test_unknown_format_names_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'latex'") as info:
        write_table(small_table(), "latx", tmp_path / "t.tex")
    assert "csv" in str(info.value)
    assert os.listdir(tmp_path) == []
    with pytest.raises(UnknownNameError):
        render(small_table(), "xlsx")


def test_write_table_to_file_matches_render(tmp_path: Path) -> None:
    for fmt in FORMATS:
        out = tmp_path / "sub" / f"table.{fmt}"
        write_table(small_table(), fmt, out)
        assert out.read_text(encoding="utf-8") == render(small_table(), fmt)
    assert sorted(os.listdir(tmp_path / "sub")) == sorted(f"table.{fmt}" for fmt in FORMATS)


def test_write_table_without_out_prints(capsys: pytest.CaptureFixture[str]) -> None:
    write_table(small_table(), "csv", None)
    assert capsys.readouterr().out == render(small_table(), "csv")
    console = Console(record=True, width=120)
    write_table(small_table(), "terminal", None, console=console)
    assert "AugMix" in console.export_text()
    console = Console(record=True, width=120)
    write_table(small_table(), "md", None, console=console)
    assert console.export_text() == render(small_table(), "md")
