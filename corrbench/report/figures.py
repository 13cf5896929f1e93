"""The figures robustness papers show, drawn from results rows: error against severity per corruption
(small multiples), calibration against severity, effective robustness (clean error against mean CE),
error per corruption with intervals, training curves, and flip probability per perturbation.

A *series* is one method (its seeds pooled: the line is the mean over seeds, the bar the 95 % t-interval
over seeds where there are at least two) or one external model (its label). The 15 benchmark corruptions
and the extra ones are never averaged together: every axis that averages says which set it shows.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from corrbench.report.plots import _new_figure, _save
from corrbench.stats import t_interval

CLEAN = "clean"
PERCENT = 100.0


def series_label(rows: pd.DataFrame) -> pd.Series:
    """method[+augment] for corrbench runs, the user's label for other models; `/ arch` when archs differ."""
    method = rows["method"].astype(str)
    augment = rows["augment"].fillna("none").astype(str)
    label = method.where(augment == "none", method + "+" + augment)
    if "label" in rows and "model_source" in rows:
        external = ~rows["model_source"].fillna("run:").astype(str).str.startswith("run:")
        label = label.where(~external, rows["label"].astype(str))
    if rows["arch"].nunique() > 1:
        label = label + " / " + rows["arch"].astype(str)
    return label


def _with_series(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(series=series_label(rows)) if len(rows) else rows.assign(series=[])


def _seed_summary(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t-interval over seeds; 0 for one seed)."""
    interval = t_interval(values)
    if interval.n == 0:
        return math.nan, 0.0
    return interval.estimate, (interval.high - interval.estimate) if interval.n > 1 else 0.0


def _benchmark_split(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """[(set name, rows)] for the benchmark and the extra corruptions present, clean rows kept in each."""
    clean = rows[rows["corruption"] == CLEAN]
    corrupted = rows[rows["corruption"] != CLEAN]
    sets = []
    for name, mask in (("benchmark", corrupted["benchmark"].astype(bool)), ("extra", ~corrupted["benchmark"].astype(bool))):
        if mask.any():
            sets.append((name, pd.concat([clean, corrupted[mask]])))
    return sets


def _series_colors(series: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(series) <= 10 else "tab20"]
    return {name: palette(i % palette.N) for i, name in enumerate(sorted(series))}


def _legend_below(figure: Figure, axes) -> None:
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)


def _curve_by_severity(group: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Severities and, per severity, mean over seeds of `metric` (each run first averaged over the
    corruptions of `group`) with the t half-width."""
    per_run = group.groupby(["severity", "run_id"])[metric].mean().reset_index()
    severities, means, halves = [], [], []
    for severity, runs in per_run.groupby("severity"):
        mean, half = _seed_summary(runs[metric].to_numpy())
        severities.append(int(severity))
        means.append(mean)
        halves.append(half)
    return np.asarray(severities), np.asarray(means), np.asarray(halves)


def error_vs_severity_grid(rows: pd.DataFrame, out: Path | str, *, title: str = "") -> Path | None:
    """Small multiples: one panel per corruption, error (%) against severity 0 (clean) … 5, a line per series
    with 95 % t-interval bars over seeds. Benchmark corruptions first, then the extra ones, each marked."""
    rows = _with_series(rows)
    corruptions = [c for c in dict.fromkeys(rows.loc[rows["corruption"] != CLEAN, "corruption"])]
    if not corruptions:
        return None
    benchmark = set(rows.loc[rows["benchmark"].astype(bool), "corruption"])
    corruptions.sort(key=lambda c: (c not in benchmark, c))
    columns = min(5, len(corruptions))
    grid_rows = math.ceil(len(corruptions) / columns)
    figure = _new_figure(2.6 * columns, 2.2 * grid_rows + 0.8)
    axes = figure.subplots(grid_rows, columns, squeeze=False, sharex=True)
    colors = _series_colors(rows["series"].unique())
    clean = rows[rows["corruption"] == CLEAN]
    for index, corruption in enumerate(corruptions):
        ax = axes[index // columns][index % columns]
        part = pd.concat([clean, rows[rows["corruption"] == corruption]])
        for series, group in part.groupby("series", sort=True):
            x, mean, half = _curve_by_severity(group, "error")
            ax.errorbar(x, PERCENT * mean, yerr=PERCENT * half, label=series, color=colors[series], marker="o",
                        markersize=3, linewidth=1.2, capsize=2)
        ax.set_title(corruption + ("" if corruption in benchmark else " (extra)"), fontsize=9)
        ax.set_xticks(range(0, 6))
        ax.grid(alpha=0.3)
        if index % columns == 0:
            ax.set_ylabel("error (%)")
        if index // columns == grid_rows - 1:
            ax.set_xlabel("severity (0 = clean)")
    for index in range(len(corruptions), grid_rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle(title or "Error against severity per corruption (mean over seeds, 95 % t-interval)")
    _legend_below(figure, axes[0][0])
    return _save(figure, out)


def metric_vs_severity(rows: pd.DataFrame, out: Path | str, *, metric: str, ylabel: str, title: str = "") -> Path | None:
    """`metric` (%) against severity, averaged over the corruptions of one set per panel: one panel for the
    benchmark corruptions and one for the extra ones (never pooled), a line per series."""
    rows = _with_series(rows)
    if metric not in rows or rows[metric].isna().all():
        return None
    sets = _benchmark_split(rows)
    if not sets:
        return None
    figure = _new_figure(4.2 * len(sets), 3.6)
    axes = figure.subplots(1, len(sets), squeeze=False)[0]
    colors = _series_colors(rows["series"].unique())
    for ax, (name, part) in zip(axes, sets):
        for series, group in part.groupby("series", sort=True):
            x, mean, half = _curve_by_severity(group, metric)
            ax.errorbar(x, PERCENT * mean, yerr=PERCENT * half, label=series, color=colors[series], marker="o",
                        markersize=3, capsize=2)
        count = part.loc[part["corruption"] != CLEAN, "corruption"].nunique()
        ax.set_title(f"{name} corruptions ({count}), mean over them", fontsize=9)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(0, 6))
        ax.grid(alpha=0.3)
    figure.suptitle(title or f"{ylabel} against severity")
    _legend_below(figure, axes[0])
    return _save(figure, out)


def _run_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per run: series, clean error and mean error over the benchmark corruptions × severities."""
    out = []
    for (series, run_id), group in rows.groupby(["series", "run_id"], sort=True):
        clean = group.loc[group["corruption"] == CLEAN, "error"]
        corrupted = group[(group["corruption"] != CLEAN) & group["benchmark"].astype(bool)]
        if clean.empty or corrupted.empty:
            continue
        out.append({"series": series, "run_id": run_id, "clean_error": float(clean.mean()),
                    "mean_ce": float(corrupted["error"].mean())})
    return pd.DataFrame(out)


def effective_robustness(rows: pd.DataFrame, out: Path | str, *, title: str = "") -> Path | None:
    """Clean error against mean corruption error (benchmark corruptions × severities), one point per run,
    coloured per series, with the y = x line: distance above it is what corruptions cost."""
    rows = _with_series(rows)
    summary = _run_summary(rows)
    if summary.empty:
        return None
    figure = _new_figure(6.0, 4.8)
    ax = figure.subplots()
    colors = _series_colors(summary["series"].unique())
    for series, group in summary.groupby("series", sort=True):
        ax.scatter(PERCENT * group["clean_error"], PERCENT * group["mean_ce"], label=series, color=colors[series], s=24)
    high = PERCENT * max(summary["clean_error"].max(), summary["mean_ce"].max()) * 1.05
    ax.plot([0, high], [0, high], color="grey", linewidth=0.8, linestyle="--", label="mean CE = clean error")
    ax.set_xlabel("clean error (%)")
    ax.set_ylabel("mean CE, benchmark corruptions (%)")
    ax.grid(alpha=0.3)
    figure.suptitle(title or "Effective robustness (one point per run)")
    _legend_below(figure, ax)
    return _save(figure, out)


def error_per_corruption_bars(rows: pd.DataFrame, out: Path | str, *, title: str = "") -> Path | None:
    """Error (%) per corruption, mean over severities, grouped bars per series with 95 % t-intervals over
    seeds; benchmark corruptions first, extras after a gap and marked."""
    rows = _with_series(rows)
    corrupted = rows[rows["corruption"] != CLEAN]
    if corrupted.empty:
        return None
    benchmark = set(corrupted.loc[corrupted["benchmark"].astype(bool), "corruption"])
    corruptions = sorted(corrupted["corruption"].unique(), key=lambda c: (c not in benchmark, c))
    series_names = sorted(corrupted["series"].unique())
    colors = _series_colors(series_names)
    per_run = corrupted.groupby(["series", "run_id", "corruption"])["error"].mean().reset_index()
    # about 0.7 in per corruption, capped so the figure still reads when embedded at page width
    figure = _new_figure(min(16.0, max(6.0, 0.7 * len(corruptions) + 2)), 4.6)
    ax = figure.subplots()
    width = 0.8 / len(series_names)
    positions = np.arange(len(corruptions)) + np.asarray([0.6 if c not in benchmark else 0.0 for c in corruptions])
    for k, series in enumerate(series_names):
        mine = per_run[per_run["series"] == series]
        stats = [_seed_summary(mine.loc[mine["corruption"] == c, "error"].to_numpy()) for c in corruptions]
        means = np.asarray([s[0] for s in stats])
        halves = np.asarray([s[1] for s in stats])
        ax.bar(positions + (k - (len(series_names) - 1) / 2) * width, PERCENT * means, width, yerr=PERCENT * halves,
               capsize=2, label=series, color=colors[series])
    ax.set_xticks(positions)
    ax.set_xticklabels([c if c in benchmark else f"{c}*" for c in corruptions], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("error (%), mean over severities")
    ax.grid(axis="y", alpha=0.3)
    figure.suptitle(title or "Error per corruption (95 % t-interval over seeds; * = extra corruption)")
    _legend_below(figure, ax)
    return _save(figure, out)


def flip_probability_bars(rows: pd.DataFrame, out: Path | str, *, title: str = "") -> Path | None:
    """Flip probability (%) per perturbation of a -P suite, bars per series with t-intervals over seeds."""
    rows = _with_series(rows)
    rows = rows[rows["flip_probability"].notna()]
    if rows.empty:
        return None
    perturbations = sorted(rows["corruption"].unique())
    series_names = sorted(rows["series"].unique())
    colors = _series_colors(series_names)
    figure = _new_figure(max(6.0, 0.6 * len(perturbations) + 2), 3.8)
    ax = figure.subplots()
    width = 0.8 / len(series_names)
    for k, series in enumerate(series_names):
        mine = rows[rows["series"] == series]
        stats = [_seed_summary(mine.loc[mine["corruption"] == p, "flip_probability"].to_numpy()) for p in perturbations]
        ax.bar(np.arange(len(perturbations)) + (k - (len(series_names) - 1) / 2) * width,
               [PERCENT * s[0] for s in stats], width, yerr=[PERCENT * s[1] for s in stats], capsize=2,
               label=series, color=colors[series])
    ax.set_xticks(np.arange(len(perturbations)))
    ax.set_xticklabels(perturbations, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("flip probability (%)")
    ax.grid(axis="y", alpha=0.3)
    figure.suptitle(title or "Flip probability per perturbation")
    _legend_below(figure, ax)
    return _save(figure, out)


def training_curves(logs: Mapping[str, pd.DataFrame], out: Path | str, *, title: str = "") -> Path | None:
    """Per run: training loss, learning rate and (where logged with --val-every) clean test error per epoch."""
    logs = {name: log for name, log in logs.items() if len(log) and "epoch" in log}
    if not logs:
        return None
    has_val = any("val_error" in log and log["val_error"].notna().any() for log in logs.values())
    panels = ["loss", "lr"] + (["val_error"] if has_val else [])
    figure = _new_figure(4.0 * len(panels), 3.4)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colors = _series_colors(list(logs))
    names = {"loss": "training loss", "lr": "learning rate", "val_error": "clean test error (%)"}
    for ax, panel in zip(axes, panels):
        for name, log in sorted(logs.items()):
            if panel not in log:
                continue
            values = log[panel].astype(float) * (PERCENT if panel == "val_error" else 1.0)
            ax.plot(log["epoch"], values, label=name, color=colors[name], marker="." if len(log) < 30 else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(names[panel])
        ax.grid(alpha=0.3)
    figure.suptitle(title or "Training curves")
    _legend_below(figure, axes[0])
    return _save(figure, out)


def suite_figures(rows: pd.DataFrame, folder: Path | str, *, suite: str,
                  formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Every figure that applies to the rows of one suite, in each format; returns the files written."""
    folder = Path(folder)
    written: list[Path] = []
    is_p = rows["flip_probability"].notna().any()
    drawers = ([("flip_probability", flip_probability_bars, {})] if is_p else [
        ("error_vs_severity", error_vs_severity_grid, {}),
        ("error_per_corruption", error_per_corruption_bars, {}),
        ("effective_robustness", effective_robustness, {}),
        ("ece_vs_severity", metric_vs_severity, {"metric": "ece", "ylabel": "ECE (%)"}),
        ("rms_vs_severity", metric_vs_severity, {"metric": "rms_adaptive", "ylabel": "RMS calibration error (%)"}),
    ])
    for name, draw, options in drawers:
        for fmt in formats:
            path = draw(rows, folder / f"{suite}_{name}.{fmt}", **options)
            if path is not None:
                written.append(path)
    return written
