"""A paired comparison as tables and one summary sentence."""
from __future__ import annotations

import math

from corrbench.report.compare import Comparison
from corrbench.report.render import Table


def _pp(value: float) -> float:
    return 100.0 * value


def _interval(low: float, high: float) -> str:
    return "—" if math.isnan(low) else f"[{_pp(low):+.2f}, {_pp(high):+.2f}]"


def _p(value: float) -> str:
    return "—" if value != value else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def comparison_tables(result: Comparison, *, cells: bool = False) -> list[Table]:
    """Per corruption (and, with `cells`, per corruption × severity) tables of A − B."""
    caption = (f"Error in %; A − B in percentage points with a 95 % paired bootstrap interval over test images "
               f"(seeds averaged per image: A {result.seeds_a}, B {result.seeds_b}); McNemar's exact test per corruption, "
               f"clustered by image (an image's severities are not independent pairs), Holm-adjusted over the "
               f"corrupted rows at α = {result.alpha}.")
    rows = []
    for r in result.corruptions.itertuples():
        name = r.corruption if r.benchmark or r.corruption == "clean" else f"{r.corruption}*"
        rows.append([name, _pp(r.error_a), _pp(r.error_b), _pp(r.difference), _interval(r.low, r.high),
                     _p(r.p_value), _p(r.p_holm), r.verdict])
    if "difference" in result.overall:
        o = result.overall
        rows.append([f"mean, {o['parts']} benchmark parts", _pp(o["error_a"]), _pp(o["error_b"]), _pp(o["difference"]),
                     _interval(o["low"], o["high"]), "—", "—", "—"])
    tables = [Table(title=f"{result.a} (A) vs {result.b} (B) on {result.suite}",
                    columns=["corruption", "A", "B", "A − B", "95 % interval", "McNemar p", "Holm p", "verdict"],
                    rows=rows, caption=caption + " * = extra corruption.")]
    if cells:
        cell_rows = [[r.corruption, r.severity, _pp(r.error_a), _pp(r.error_b), _pp(r.difference),
                      _interval(r.low, r.high)] for r in result.cells.itertuples()]
        tables.append(Table(title=f"{result.a} vs {result.b}: every corruption × severity",
                            columns=["corruption", "severity", "A", "B", "A − B", "95 % interval"], rows=cell_rows,
                            row_header=2, caption="Error in %; paired bootstrap over test images."))
    return tables


def comparison_text(result: Comparison) -> str:
    tested = int((result.corruptions["corruption"] != "clean").sum()) if len(result.corruptions) else 0
    return (f"A ({result.a}) is significantly better on {result.a_better} and worse on {result.b_better} of "
            f"{tested} corruptions (McNemar, Holm α = {result.alpha}).")
