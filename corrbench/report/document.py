"""The whole HTML report of a results folder: the comparison tables, every figure of every suite, training
curves of the runs found, the definition of every metric, and the provenance of every row."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from corrbench.metric_catalog import definitions
from corrbench.report.figures import suite_figures, training_curves
from corrbench.report.html import HtmlReport
from corrbench.report.render import Table

_FIGURE_CAPTIONS = {
    "error_vs_severity": "Error against severity, one panel per corruption (extra corruptions marked).",
    "error_per_corruption": "Error per corruption, mean over severities (* = extra corruption).",
    "effective_robustness": "Clean error against mean CE over the benchmark corruptions, one point per run.",
    "ece_vs_severity": "ECE against severity; benchmark and extra corruptions in separate panels.",
    "rms_vs_severity": "RMS calibration error against severity; benchmark and extra corruptions in separate panels.",
    "flip_probability": "Flip probability per perturbation.",
}


def _short(value: object, length: int = 12) -> str:
    text = "" if value is None or (isinstance(value, float) and value != value) else str(value)
    return text[:length]


def provenance_table(rows: pd.DataFrame) -> Table:
    """One line per evaluated model and suite: what was evaluated, with what, where and when."""
    def column(name: str, default: object = None) -> pd.Series:
        return rows[name] if name in rows else pd.Series(default, index=rows.index)

    frame = pd.DataFrame({
        "model": column("label").fillna(rows["run_id"]) if "label" in rows else rows["run_id"],
        "run_id": rows["run_id"], "suite": rows["suite"], "source": column("source"),
        "seed": column("seed"), "weights": column("weights_sha256").fillna(column("checkpoint_sha256"))
        if "weights_sha256" in rows else column("checkpoint_sha256"),
        "epoch": column("checkpoint_epoch"), "complete": column("checkpoint_complete"),
        "precision": column("precision"), "device": column("device"),
        "versions": "corrbench " + column("corrbench_version").astype(str) + ", torch " + column("torch_version").astype(str),
        "timestamp": column("timestamp"),
    })
    lines = []
    for key, group in frame.groupby(["model", "run_id", "suite"], sort=True, dropna=False):
        first = group.iloc[0]
        lines.append([key[0], key[2], _short(first["source"], 10), _short(first["seed"], 6), _short(first["weights"]),
                      _short(first["epoch"], 6), _short(first["complete"], 6), _short(first["precision"], 6),
                      _short(first["device"], 40), _short(first["versions"], 40),
                      f"{group['timestamp'].min()} … {group['timestamp'].max()}"])
    return Table(title="Provenance", columns=["model", "suite", "source", "seed", "weights sha256", "epoch",
                                              "complete", "precision", "device", "versions", "evaluated (UTC)"],
                 rows=lines, row_header=2,
                 caption="weights sha256: the first 12 hex digits of the evaluated checkpoint or weights file.")


def build_report(rows: pd.DataFrame, tables: Sequence[Table], *, title: str = "corrbench report",
                 run_logs: Mapping[str, pd.DataFrame] | None = None, work_dir: Path | None = None) -> HtmlReport:
    """An HtmlReport of `tables` (already computed, so they equal what the terminal shows), the figures of
    every suite in `rows`, training curves from `run_logs` ({run id: train_log frame}), metric definitions
    and provenance."""
    report = HtmlReport(title=title, intro=(
        f"{_count(rows['run_id'].nunique(), 'model')} on {_count(rows['suite'].nunique(), 'suite')}; "
        f"{_count(len(rows), 'results row')}. Every number below is recomputed from the rows in the results folder."))
    report.add_tables("Tables", tables)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        scratch = Path(scratch)
        for suite, suite_rows in rows.groupby("suite", sort=True):
            written = suite_figures(suite_rows, scratch, suite=str(suite), formats=("png",))
            images = [(path, _FIGURE_CAPTIONS.get(path.stem.split("_", 1)[1], path.stem)) for path in written]
            report.add_figures(f"Figures: {suite}", images)
        if run_logs:
            curves = training_curves(run_logs, scratch / "training_curves.png")
            if curves is not None:
                report.add_figures("Training curves", [(curves, "Training loss, learning rate and clean test error "
                                                                "(where logged with --val-every) per epoch.")])
        report.add_definitions("Definitions", definitions())
        report.add_tables("Provenance", [provenance_table(rows)])
        if "method_params" in rows:
            params = rows.drop_duplicates("run_id")[["run_id", "method", "method_params"]]
            body = "".join(f"<tr><th>{_esc(r.run_id)}</th><td>{_esc(r.method)}</td><td><code>"
                           f"{_esc(_compact_json(r.method_params))}</code></td></tr>" for r in params.itertuples())
            report.add_html("Method settings", f"<table><thead><tr><th>run</th><th>method</th><th>hyperparameters"
                                               f"</th></tr></thead><tbody>{body}</tbody></table>")
        report.sections = list(report.sections)   # figures are embedded: the scratch folder may go
        return report


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _esc(value: object) -> str:
    import html
    return html.escape("" if value is None else str(value))


def _compact_json(text: object) -> str:
    try:
        return json.dumps(json.loads(str(text)), separators=(", ", ": "), sort_keys=True)
    except (TypeError, ValueError):
        return str(text)


def read_run_logs(runs_dir: Path, run_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """train_log.parquet of each run found under `runs_dir` (runs not found are skipped)."""
    logs = {}
    for run_id in sorted(set(run_ids)):
        path = Path(runs_dir) / run_id / "train_log.parquet"
        if path.is_file():
            try:
                logs[run_id] = pd.read_parquet(path)
            except (OSError, ValueError):
                continue
    return logs
