"""Paper tables: the published numbers (results/paper/*.csv) beside corrbench's reproduction.

A paper table is laid out as printed: one row per (dataset, arch, method) and one column per
(suite, corruption, metric) of its CSV, in the CSV's order (recipes may choose other row/column keys,
e.g. ESP's methods × datasets). Each cell shows `published / ours (ours − published)`. Ours is computed
from the results rows of the runs matching the cell's dataset, arch and method, aggregated over seeds
the way the paper does (mean (min / max) for NoisyMix, mean ± std for ESP). Missing cells stay
missing — nothing is invented.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from corrbench.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS
from corrbench.errors import MissingDataError, UnknownNameError
from corrbench.report.render import Table

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"
KEY = ["dataset", "suite", "arch", "method", "corruption", "metric"]
NOISE = ("gaussian_noise", "shot_noise", "impulse_noise")
# MAGN's CIFAR -C protocol: the 19 corruptions without gaussian_noise (held out: MAGN trains with noise).
MAGN_CORRUPTIONS = tuple(c for c in ALL_CORRUPTIONS if c != "gaussian_noise")
# The papers' architecture ids -> corrbench arch names.
ARCH_NAMES = {"resnet18": "resnet18", "preactresnet18": "preact_resnet18", "wrn-28-2": "wrn_28_2",
              "wrn-40-2": "wrn_40_2", "densenet121": "densenet121", "inception-v3": "inception_v3",
              "resnet50": "resnet50", "cnn-rony2019": "cnn_rony2019"}
# Layouts that differ from the default (rows dataset/arch/method × columns suite/corruption/metric).
TABLE_LAYOUTS = {"esp_table1": (("method",), ("suite", "corruption", "metric"))}
# The papers' suite ids -> corrbench suite names, where they differ.
SUITE_NAMES = {"mnist-c": "mnist-mnistc"}
P_TEST = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter", "brightness", "translate",
          "rotate", "tilt", "scale")


def paper_dir() -> Path:
    """Where the published CSVs live: results/paper of the source tree (shipped with corrbench)."""
    return PAPER_DIR


def list_tables(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or paper_dir()).glob("*.csv"))


def load_published(name: str, directory: Path | None = None) -> pd.DataFrame:
    directory = directory or paper_dir()
    path = directory / f"{name}.csv"
    if not path.is_file():
        if not directory.is_dir():
            raise MissingDataError(f"published tables not found at {directory}; corrbench's results/paper folder is "
                                   f"missing from this installation")
        raise UnknownNameError("table", name, list_tables(directory))
    return pd.read_csv(path, dtype={"value": str, "severity": str}, keep_default_na=False)


def corruption_set(paper: str, name: str) -> tuple[str, ...]:
    """Which corruptions a paper's aggregate column averages over."""
    if paper == "magn":
        base = MAGN_CORRUPTIONS
    else:
        base = BENCHMARK_CORRUPTIONS
    if name == "mean_noise":
        return tuple(c for c in base if c in NOISE)
    if name == "mean_excluding_noise":
        return tuple(c for c in base if c not in NOISE)
    return base


def reproduced_value(rows: pd.DataFrame, paper: str, suite: str, corruption: str, metric: str) -> float:
    """One run's value (in %) for a published cell, from its results rows; NaN if it cannot be computed."""
    suite = SUITE_NAMES.get(suite, suite)
    if suite == "clean":
        clean = rows[(rows["kind"] == "eval") & (rows["corruption"] == "clean")]
        if clean.empty:
            return math.nan
        row = clean.iloc[0]
        return {"accuracy": 100 * (1 - row["error"]), "rms_calibration": 100 * row["rms_adaptive"],
                "error": 100 * row["error"]}.get(metric, math.nan)
    if suite.endswith("-p"):
        flips = rows[(rows["kind"] == "flip-rate") & (rows["suite"] == suite)]
        if metric != "flip_probability" or flips.empty:
            return math.nan   # ImageNet-P's AlexNet-normalised flip rate needs constants no repo publishes
        if corruption == "mean":
            chosen = flips[flips["corruption"].isin(P_TEST)]
            return 100 * chosen["flip_probability"].mean() if len(chosen) == len(P_TEST) else math.nan
        match = flips[flips["corruption"] == corruption]
        return 100 * match["flip_probability"].iloc[0] if len(match) else math.nan
    corrupted = rows[(rows["kind"] == "eval") & (rows["suite"] == suite) & (rows["corruption"] != "clean")]
    if corrupted.empty:
        return math.nan
    if corruption in ALL_CORRUPTIONS:
        chosen = corrupted[corrupted["corruption"] == corruption]
        wanted: tuple[str, ...] = (corruption,)
    elif corruption == "mean" and suite.endswith("-mnistc"):
        from corrbench.mnistc import MNISTC_CORRUPTIONS
        wanted = tuple(MNISTC_CORRUPTIONS)
        chosen = corrupted[corrupted["corruption"].isin(wanted)]
    elif corruption in ("mean", "mean_noise", "mean_excluding_noise", "all"):
        wanted = corruption_set(paper, "mean" if corruption == "all" else corruption)
        chosen = corrupted[corrupted["corruption"].isin(wanted)]
    else:
        return math.nan
    if set(chosen["corruption"]) != set(wanted):
        return math.nan   # a partial set would be a different number than the paper's
    if metric in ("accuracy", "mca"):
        return 100 * (1 - chosen["error"].mean())
    if metric == "error":
        return 100 * chosen["error"].mean()
    if metric == "rms_calibration":
        return 100 * chosen["rms_adaptive"].mean()
    if metric == "aurra":
        return 100 * chosen["aurra"].mean()
    return math.nan


@dataclass
class Cell:
    published: dict[str, str]      # stat -> printed value
    ours: list[float]              # one value per seed
    note: str = ""

    def ours_stats(self) -> dict[str, float]:
        values = [v for v in self.ours if not math.isnan(v)]
        if not values:
            return {}
        stats = {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values)),
                 "n": len(values)}
        stats["std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        return stats


def _format_published(published: dict[str, str]) -> str:
    if "mean" in published and "min" in published:
        return f"{published['mean']} ({published['min']} / {published['max']})"
    if "mean" in published and "std" in published:
        return f"{published['mean']} ± {published['std']}"
    return next(iter(published.values()))


def _format_ours(stats: dict[str, float], style: str, digits: int) -> str:
    if not stats:
        return "—"
    mean = f"{stats['mean']:.{digits}f}"
    if style == "minmax" and stats["n"] > 1:
        return f"{mean} ({stats['min']:.{digits}f} / {stats['max']:.{digits}f})"
    if style == "std" and stats["n"] > 1:
        return f"{mean} ± {stats['std']:.{digits}f}"
    return mean


def _digits(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


@dataclass
class PaperTable:
    name: str
    cells: dict[tuple, dict[tuple, Cell]]      # row key -> column key -> cell
    row_keys: list[tuple]
    column_keys: list[tuple]
    row_fields: list[str]
    column_fields: list[str]
    style: str                                 # 'single' | 'minmax' | 'std'

    def to_table(self, title: str | None = None) -> Table:
        """The paper layout; fields that are the same in every row (column) move into the title."""
        row_vary = [i for i in range(len(self.row_fields)) if len({k[i] for k in self.row_keys}) > 1] or [0]
        column_vary = [i for i in range(len(self.column_fields))
                       if len({k[i] for k in self.column_keys}) > 1] or [0]
        fixed = [f"{self.row_fields[i]} {self.row_keys[0][i]}" for i in range(len(self.row_fields))
                 if i not in row_vary]
        fixed += [f"{self.column_fields[i]} {self.column_keys[0][i]}" for i in range(len(self.column_fields))
                  if i not in column_vary]
        columns = [self.row_fields[i] for i in row_vary]
        columns += [" ".join(str(key[i]) for i in column_vary) for key in self.column_keys]
        body = []
        for row_key in self.row_keys:
            line: list[object] = [row_key[i] for i in row_vary]
            for column_key in self.column_keys:
                cell = self.cells[row_key].get(column_key)
                line.append(self.render_cell(cell) if cell else None)
            body.append(line)
        caption = ("Each cell: published / corrbench (corrbench − published), in %"
                   + {"minmax": "; mean (min / max) over seeds", "std": "; mean ± std over seeds",
                      "single": ""}[self.style] + "; — = not reproduced yet.")
        heading = title or self.name
        if fixed:
            heading += " (" + ", ".join(fixed) + ")"
        return Table(title=heading, columns=columns, rows=body, row_header=len(row_vary), caption=caption)

    def render_cell(self, cell: Cell) -> str:
        published = _format_published(cell.published)
        printed_mean = cell.published.get("mean") or next(iter(cell.published.values()))
        digits = _digits(printed_mean)
        stats = cell.ours_stats()
        ours = _format_ours(stats, self.style, digits)
        try:
            difference = f" ({stats['mean'] - float(printed_mean):+.{digits}f})" if stats else ""
        except ValueError:
            difference = ""
        return f"{published} / {ours}{difference}"

    def tidy(self) -> pd.DataFrame:
        """One row per cell: key fields, published value(s), our mean/min/max/std/n and the difference."""
        records = []
        for row_key in self.row_keys:
            for column_key, cell in self.cells[row_key].items():
                stats = cell.ours_stats()
                printed = cell.published.get("mean") or next(iter(cell.published.values()))
                record = {**dict(zip(self.row_fields, row_key)), **dict(zip(self.column_fields, column_key))}
                record.update({f"published_{k}": v for k, v in cell.published.items()})
                record.update({f"ours_{k}": v for k, v in stats.items()})
                try:
                    record["difference"] = stats["mean"] - float(printed) if stats else math.nan
                except ValueError:
                    record["difference"] = math.nan
                records.append(record)
        return pd.DataFrame(records)


def build_paper_table(name: str, results: pd.DataFrame | None, *, row_fields: Sequence[str] | None = None,
                      column_fields: Sequence[str] | None = None, directory: Path | None = None) -> PaperTable:
    """The table `name` with our values filled in from `results` (rows of a results folder; may be None)."""
    published = load_published(name, directory)
    default_rows, default_columns = TABLE_LAYOUTS.get(name, (("dataset", "arch", "method"),
                                                              ("suite", "corruption", "metric")))
    row_fields = row_fields or default_rows
    column_fields = column_fields or default_columns
    row_fields, column_fields = list(row_fields), list(column_fields)
    stats = set(published["stat"])
    style = "minmax" if {"min", "max"} <= stats else "std" if "std" in stats else "single"
    cells: dict[tuple, dict[tuple, Cell]] = {}
    row_keys: list[tuple] = []
    column_keys: list[tuple] = []
    runs = _runs_by_identity(results)
    for record in published.itertuples(index=False):
        values = record._asdict()
        row_key = tuple(values[f] for f in row_fields)
        column_key = tuple(values[f] for f in column_fields)
        if row_key not in cells:
            cells[row_key] = {}
            row_keys.append(row_key)
        if column_key not in column_keys:
            column_keys.append(column_key)
        cell = cells[row_key].get(column_key)
        if cell is None:
            method, wanted = parse_variant(values["method"])
            candidates = runs.get((values["dataset"], ARCH_NAMES.get(values["arch"], values["arch"]), method), [])
            ours = [reproduced_value(rows, values["paper"], values["suite"], values["corruption"], values["metric"])
                    for rows in candidates if matches_variant(rows, wanted)]
            cell = cells[row_key][column_key] = Cell(published={}, ours=ours, note=values["note"])
        cell.published[values["stat"]] = values["value"]
    return PaperTable(name, cells, row_keys, column_keys, row_fields, column_fields, style)


def _runs_by_identity(results: pd.DataFrame | None) -> dict[tuple, list[pd.DataFrame]]:
    """(dataset, arch, method[+augment]) -> one DataFrame of rows per run (i.e. per seed)."""
    if results is None or results.empty:
        return {}
    out: dict[tuple, list[pd.DataFrame]] = {}
    for run_id, rows in results.groupby("run_id", sort=True):
        first = rows.iloc[0]
        method = first["method"] if first["augment"] in ("none", None) else f"{first['method']}+{first['augment']}"
        out.setdefault((first["dataset"], first["arch"], method), []).append(rows)
    return out


def parse_variant(method: str) -> tuple[str, dict[str, str]]:
    """'magn+augmix[lambda1=3;lambda2=12;sigma_max=0.2]' -> ('magn+augmix', {'lambda1': '3', …})."""
    if not method.endswith("]") or "[" not in method:
        return method, {}
    name, inside = method[:-1].split("[", 1)
    return name, dict(part.split("=", 1) for part in inside.split(";") if "=" in part)


def matches_variant(rows: pd.DataFrame, wanted: dict[str, str]) -> bool:
    """Whether a run's hyperparameters (results column method_params) have the wanted values."""
    if not wanted:
        return True
    import json
    try:
        params = json.loads(rows["method_params"].iloc[0] or "{}")
    except (TypeError, ValueError, KeyError):
        return False
    for key, value in wanted.items():
        if key not in params:
            return False
        try:
            if float(params[key]) != float(value):
                return False
        except (TypeError, ValueError):
            if str(params[key]) != value:
                return False
    return True
