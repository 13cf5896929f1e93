"""Rich tables for results rows and their aggregates (shared by eval, calibrate, flip-rate)."""
from __future__ import annotations

import pandas as pd
from rich.table import Table

from corrbench.cli.common import fmt, percent


def severity_table(rows: pd.DataFrame, title: str, metric: str = "error") -> Table:
    """Corruptions × severities of one metric (in % for error/ece/rms), plus the mean over severities."""
    as_percent = metric in ("error", "ece", "rms_adaptive", "rms_equal_width", "max_calibration_error")
    show = percent if as_percent else fmt
    severities = sorted(s for s in rows["severity"].unique() if s > 0)
    table = Table(title=title)
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


def summary_table(summary: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    table.add_column("method")
    table.add_column("T", justify="right")
    columns = [("clean err %", "clean_error", percent), ("mean CE %", "mean_corruption_error", percent),
               ("mCE %", "mce", percent), ("rel. mCE %", "relative_mce", percent),
               ("NLL", "mean_nll", fmt), ("ECE %", "mean_ece", percent), ("RMS %", "mean_rms_adaptive", percent),
               ("RMS (15 bins) %", "mean_rms_equal_width", percent), ("AURRA %", "mean_aurra", percent)]
    columns = [c for c in columns if summary[c[1]].notna().any()]
    for label, _, _ in columns:
        table.add_column(label, justify="right")
    for row in summary.itertuples(index=False):
        values = row._asdict()
        method = values["method"] if values["augment"] == "none" else f"{values['method']}+{values['augment']}"
        table.add_row(method, fmt(values["temperature"], 3),
                      *[render(values[key]) for _, key, render in columns])
    return table
