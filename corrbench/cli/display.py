"""Rich tables for results rows and their aggregates (shared by eval, calibrate, flip-rate)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from corrbench.cli.common import fmt, percent

if TYPE_CHECKING:   # pandas costs ~0.3 s to import: not at CLI start-up
    import pandas as pd


def severity_table(rows: pd.DataFrame, title: str, metric: str = "error") -> Table:
    """Corruptions × severities of one metric (in % for error/ece/rms), plus the mean over severities."""
    as_percent = metric in ("error", "ece", "rms_adaptive", "rms_equal_width", "max_calibration_error")
    show = percent if as_percent else fmt
    severities = sorted(s for s in rows["severity"].unique() if s > 0)
    table = Table(title=title, min_width=len(title))   # a title never wraps inside a run id
    table.add_column("corruption")
    for severity in severities:
        table.add_column(f"s{severity}", justify="right")
    table.add_column("mean", justify="right", style="bold")
    for corruption, group in rows.groupby("corruption", sort=False):
        by_severity = dict(zip(group["severity"], group[metric]))
        if corruption == "clean":
            table.add_row("clean", *[""] * len(severities), show(by_severity.get(0)))
            continue
        table.add_row(corruption, *[show(by_severity.get(s, float("nan"))) for s in severities],
                      show(group[metric].mean()))
    return table


def _interval(rows: pd.DataFrame | None, values: dict, which: str) -> str:
    """"[low, high]" of the 95 % bootstrap interval over test images of one run's clean error / mean CE."""
    if rows is None:
        return "—"
    from corrbench.report.uncertainty import correctness_matrix
    from corrbench.stats import bootstrap_error

    mine = rows[rows["run_id"] == values["run_id"]]
    if "temperature" in mine:
        mine = mine[mine["temperature"] == values["temperature"]]
    correct = correctness_matrix(mine, which)
    if correct is None:
        return "—"
    interval = bootstrap_error(correct, seed=0)
    return f"[{100 * interval.low:.2f}, {100 * interval.high:.2f}]"


def summary_table(summary: pd.DataFrame, title: str, rows: pd.DataFrame | None = None) -> Table:
    """The aggregate per model; with `rows` (their per-image correctness), the 95 % bootstrap interval over
    test images of clean error and mean CE (report/uncertainty.py; 2000 resamples, seed 0)."""
    table = Table(title=title, min_width=len(title),
                  caption=None if rows is None else "95 %: percentile bootstrap over test images (2000 resamples, "
                                                    "seed 0; mean CE resamples an image in all parts at once)")
    table.add_column("method")
    table.add_column("T", justify="right")
    columns = [("clean err %", "clean_error", percent), ("clean 95 %", "clean", None),
               ("mean CE %", "mean_corruption_error", percent), ("mean CE 95 %", "benchmark", None),
               ("mCE %", "mce", percent), ("rel. mCE %", "relative_mce", percent),
               ("NLL", "mean_nll", fmt), ("ECE %", "mean_ece", percent), ("RMS %", "mean_rms_adaptive", percent),
               ("RMS (15 bins) %", "mean_rms_equal_width", percent), ("AURRA %", "mean_aurra", percent)]
    metric_of = {"clean": "clean_error", "benchmark": "mean_corruption_error"}
    columns = [c for c in columns if summary[metric_of.get(c[1], c[1])].notna().any()
               and (c[2] is not None or rows is not None)]
    for label, _, _ in columns:
        table.add_column(label, justify="right")
    for row in summary.itertuples(index=False):
        values = row._asdict()
        method = values["method"] if values["augment"] == "none" else f"{values['method']}+{values['augment']}"
        table.add_row(method, fmt(values["temperature"], 3),
                      *[render(values[key]) if render is not None else _interval(rows, values, key)
                        for _, key, render in columns])
    return table
