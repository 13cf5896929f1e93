"""Report content: results rows -> comparison tables (methods × corruptions) ready to render."""
from __future__ import annotations

import math

import pandas as pd

from corrbench.corruptions import ALL_CORRUPTIONS
from corrbench.report.render import Span, Table
from corrbench.report.uncertainty import CLEAN, INTERVAL_NOTE, error_estimate, estimate
from corrbench.results import aggregate, per_corruption_error

SUMMARY_COLUMNS = [("mean CE", "mean_corruption_error"), ("mCE", "mce"), ("NLL", "mean_nll"),
                   ("ECE", "mean_ece"), ("RMS", "mean_rms_adaptive")]
PERCENT = {"mean_corruption_error", "mce", "mean_ece", "mean_rms_adaptive", "clean_error"}


def run_label(row: pd.Series) -> str:
    """What a table row is called: the method[+augment] of corrbench runs (their seeds averaged), the
    label of other models and of runs given their own `--label` (rows sharing a label are averaged)."""
    label = row.get("label")
    own_label = isinstance(label, str) and label and label != row.get("run_id")
    if own_label or row.get("method") == "external":
        return str(label)
    return row["method"] if row["augment"] in ("none", None) else f"{row['method']}+{row['augment']}"


def comparison_tables(results: pd.DataFrame) -> list[Table]:
    """One table per (suite, dataset): a row per (arch, method[+augment]) over its seeds; columns clean error,
    error per corruption (mean over severities, %), mean CE, mCE, NLL, ECE, RMS — each "mean ± std over
    seeds" — and the 95 % intervals of clean error and mean CE in their own columns (report/uncertainty.py)."""
    rows = results[(results["kind"] == "eval")]
    tables = []
    for (suite, dataset), suite_rows in rows.groupby(["suite", "dataset"], sort=True):
        summary = aggregate(suite_rows)
        per_corruption = per_corruption_error(suite_rows)
        present = [c for c in ALL_CORRUPTIONS if c in set(per_corruption["corruption"])]
        summary_columns = [(label, key) for label, key in SUMMARY_COLUMNS if summary[key].notna().any()]
        one_arch = summary["arch"].nunique() == 1   # then the arch goes into the title, not every row
        columns = ([] if one_arch else ["arch"]) + ["method", "seeds", "clean", "clean 95 %"] + present
        for label, key in summary_columns:
            columns += [label, f"{label} 95 %"] if key == "mean_corruption_error" else [label]
        body = []
        summary["label"] = summary.apply(run_label, axis=1)
        for (arch, label), group in summary.groupby(["arch", "label"], sort=True):
            run_ids = list(dict.fromkeys(group["run_id"]))
            by_run = group.groupby("run_id", sort=True)
            mine = per_corruption[per_corruption["run_id"].isin(run_ids)]
            clean = error_estimate(suite_rows, by_run["clean_error"].mean(), CLEAN)
            line: list[object] = ([] if one_arch else [arch]) + [label, len(run_ids), clean, Span(clean.low, clean.high)]
            for corruption in present:
                errors = mine[mine["corruption"] == corruption].groupby("run_id")["error"].mean()
                line.append(estimate(list(errors)))
            for _, key in summary_columns:
                values = by_run[key].mean()
                if key == "mean_corruption_error":
                    mean_ce = error_estimate(suite_rows, values, "benchmark")
                    line += [mean_ce, Span(mean_ce.low, mean_ce.high)]
                else:
                    line.append(estimate(list(values), scale=100.0 if key in PERCENT else 1.0))
            body.append(line)
        sources = ", ".join(sorted(set(suite_rows["source"])))
        normalisers = ", ".join(sorted(set(summary["mce_normaliser"].dropna()))) or "none"
        caption = (f"Error in % per corruption (mean over severities), clean error, mean CE = unnormalised mean over "
                   f"benchmark corruptions × severities; mCE normaliser: {normalisers}; NLL, ECE (15 equal-width "
                   f"bins) and RMS (Hendrycks equal-count bins of 100) averaged over corrupted sets; source: "
                   f"{sources}. {INTERVAL_NOTE}.")
        title = f"{suite} ({dataset}{', ' + summary['arch'].iloc[0] if one_arch else ''})"
        tables.append(Table(title=title, columns=columns, rows=body, row_header=1 if one_arch else 2, caption=caption))
    return tables


def transposed(table: Table) -> Table:
    """The same table with runs as columns and corruptions / metrics as rows (for narrow terminals)."""
    labels = [" / ".join(str(cell) for cell in row[:table.row_header]) for row in table.rows]
    rows = [[column, *[row[j] for row in table.rows]] for j, column in enumerate(table.columns)
            if j >= table.row_header]
    return Table(title=table.title, columns=["", *labels], rows=rows, row_header=1, caption=table.caption,
                 float_format=table.float_format)


def fits(table: Table, width: int) -> bool:
    """Whether the table renders within `width` terminal columns without squeezing cells."""
    from corrbench.report.render import render

    return max(len(line) for line in render(table, "terminal").splitlines()) <= width
