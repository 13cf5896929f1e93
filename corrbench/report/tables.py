"""Report content: results rows -> comparison tables (methods × corruptions) ready to render."""
from __future__ import annotations

import math

import pandas as pd

from corrbench.corruptions import ALL_CORRUPTIONS
from corrbench.report.render import Table
from corrbench.results import aggregate, per_corruption_error

SUMMARY_COLUMNS = [("mean CE", "mean_corruption_error"), ("mCE", "mce"), ("NLL", "mean_nll"),
                   ("ECE", "mean_ece"), ("RMS", "mean_rms_adaptive")]
PERCENT = {"mean_corruption_error", "mce", "mean_ece", "mean_rms_adaptive", "clean_error"}


def run_label(row: pd.Series) -> str:
    method = row["method"] if row["augment"] in ("none", None) else f"{row['method']}+{row['augment']}"
    return method


def comparison_tables(results: pd.DataFrame) -> list[Table]:
    """One table per (suite, dataset): a row per (arch, method[+augment]) averaged over seeds; columns
    clean error, error per corruption (mean over severities, %), mean CE, mCE, NLL, ECE, RMS."""
    rows = results[(results["kind"] == "eval")]
    tables = []
    for (suite, dataset), suite_rows in rows.groupby(["suite", "dataset"], sort=True):
        summary = aggregate(suite_rows)
        per_corruption = per_corruption_error(suite_rows)
        present = [c for c in ALL_CORRUPTIONS if c in set(per_corruption["corruption"])]
        summary_columns = [(label, key) for label, key in SUMMARY_COLUMNS if summary[key].notna().any()]
        one_arch = summary["arch"].nunique() == 1   # then the arch goes into the title, not every row
        columns = ([] if one_arch else ["arch"]) + ["method", "seeds", "clean"] + present
        columns += [label for label, _ in summary_columns]
        body = []
        summary["label"] = summary.apply(run_label, axis=1)
        for (arch, label), group in summary.groupby(["arch", "label"], sort=True):
            run_ids = list(group["run_id"])
            errors = per_corruption[per_corruption["run_id"].isin(run_ids)].groupby("corruption")["error"].mean()
            line: list[object] = ([] if one_arch else [arch]) + [label, len(run_ids), 100 * group["clean_error"].mean()]
            line += [100 * errors.get(c, math.nan) for c in present]
            for _, key in summary_columns:
                value = group[key].mean()
                line.append(100 * value if key in PERCENT else value)
            body.append(line)
        sources = ", ".join(sorted(set(suite_rows["source"])))
        normalisers = ", ".join(sorted(set(summary["mce_normaliser"].dropna()))) or "none"
        caption = (f"Error in % per corruption (mean over severities), clean error, mean CE = unnormalised mean over "
                   f"benchmark corruptions × severities; mCE normaliser: {normalisers}; NLL, ECE (15 equal-width "
                   f"bins) and RMS (Hendrycks equal-count bins of 100) averaged over corrupted sets; source: "
                   f"{sources}; mean over seeds.")
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
