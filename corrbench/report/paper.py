"""Paper tables: the published numbers (corrbench/paper_tables/*.csv) beside corrbench's reproduction.

A paper table is laid out as printed: one row per (dataset, arch, method) and one column per
(suite, corruption, metric) of its CSV, in the CSV's order (recipes may choose other row/column keys,
e.g. ESP's methods × datasets). Each cell shows `published / ours (ours − published)`, aggregated over
seeds the way the paper does (mean (min / max) for NoisyMix, mean ± std for ESP). Missing cells stay
missing — nothing is invented.

Which runs feed a cell: the recipes that name the table (`[recipe] table = NAME`) say how each row is
trained; a run enters the cell only if its full training configuration — everything but the seed, with
the method's hyperparameters resolved to their values — equals the recipe's for that row (a table row
`magn+augmix[lambda1=5;…]` changes those hyperparameters of the recipe's row). Rows a recipe marks as
evaluated from public checkpoints (`[[recipe.checkpoints]]`) take the results of that model source. A
run's configuration comes from its results rows (`run_config`) or else `<runs-dir>/<run_id>/config.json`.
`explain()` lists per row the runs used and every left-out candidate with the reason.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from corrbench.bundled import paper_tables_dir
from corrbench.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS
from corrbench.engine.run import expected_model_source
from corrbench.errors import MissingDataError, UnknownNameError, UserError
from corrbench.metrics import CalibrationBins, binned_calibration_error, pool_calibration_bins
from corrbench.report.render import Table

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
# NoisyMix Tables 13/14 print ImageNet-P's test list (Snow, not the CIFAR-10-P test list's spatter), and their
# mFR is the mean of those 10 printed columns (checked on every row). CIFAR-10-P ships snow as a validation
# perturbation, which `flip-rate` evaluates too.
P_PRINTED = {"noisymix": ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "snow", "brightness",
                          "translate", "rotate", "tilt", "scale")}
# Printed row ids that name a corrbench method under another name (the row's method, as trained).
ROW_METHODS = {"noisymix_table4": {"ablation-row01": "standard", "ablation-row03": "manifold-mixup",
                                   "ablation-row04": "nfm", "ablation-row10": "noisymix"}}
# Tables with a "gain over row X" column: the printed row the gain is measured from.
GAIN_BASELINE = {"noisymix_table4": "ablation-row01"}
# Lines printed under a table: what a reader must know about its columns.
TABLE_NOTES = {
    "noisymix_table4": "Only rows 1, 3, 4 and 10 can be identified (their values equal Table 3's Baseline, "
                       "Manifold Mixup, NFM and NoisyMix rows); the other rows' component check marks were lost in "
                       "the source text. Gain = CIFAR-100-C accuracy over row 1.",
    "noisymix_table13": "Snow = CIFAR-10-P's snow sequence (a validation perturbation of the official set; the paper "
                        "prints ImageNet-P's column list), not the CIFAR-10-P test list's spatter; mFR = mean of the "
                        "10 printed columns, as the printed mFR is. Puzzle Mix cannot be reproduced (not in corrbench).",
    "noisymix_table14": "Snow = CIFAR-10-P's snow sequence (a validation perturbation of the official set; the paper "
                        "prints ImageNet-P's column list), not the CIFAR-10-P test list's spatter; mFR = mean of the "
                        "10 printed columns, as the printed mFR is. Puzzle Mix cannot be reproduced (not in corrbench).",
    "magn_table3": "RMS calibration error as the authors' code computes it: 16 equal-width bins over the pooled "
                   "test set (clean), resp. the pooled 18 corruptions × 5 severities (corrupted).",
    "magn_table4": "RMS calibration error as in Table 3 (16 equal-width bins, pooled sets).",
}


def paper_dir() -> Path:
    """Where the published CSVs live: corrbench/paper_tables, shipped as package data."""
    return paper_tables_dir()


def list_tables(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or paper_dir()).glob("*.csv"))


def load_published(name: str, directory: Path | None = None) -> pd.DataFrame:
    directory = directory or paper_dir()
    path = directory / f"{name}.csv"
    if not path.is_file():
        if not directory.is_dir():
            raise MissingDataError(f"published tables not found at {directory}; corrbench's package data "
                                   f"(corrbench/paper_tables) is missing from this installation; reinstall corrbench")
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
    return value_and_reason(rows, paper, suite, corruption, metric)[0]


def _pooled_rms(chosen: pd.DataFrame) -> tuple[float, str]:
    """MAGN's RMS calibration error: 16 equal-width bins over the union of the rows' samples (their bin sums)."""
    if "calibration_bins" not in chosen or not chosen["calibration_bins"].map(_present_text).all():
        return math.nan, "its results have no calibration bins (evaluated before they were recorded): re-run eval"
    parts = [CalibrationBins.from_json(text) for text in chosen["calibration_bins"]]
    return 100 * binned_calibration_error(pool_calibration_bins(parts), "l2"), ""


def _present_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def value_and_reason(rows: pd.DataFrame, paper: str, suite: str, corruption: str, metric: str) -> tuple[float, str]:
    """(value in %, "") for a published cell from one run's rows, or (NaN, why it cannot be computed)."""
    suite = SUITE_NAMES.get(suite, suite)
    if suite == "clean":
        clean = rows[(rows["kind"] == "eval") & (rows["corruption"] == "clean")]
        if clean.empty:
            return math.nan, "no clean-test-set row"
        row = clean.iloc[0]
        if metric == "rms_calibration" and paper == "magn":
            return _pooled_rms(clean.iloc[:1])
        value = {"accuracy": 100 * (1 - row["error"]), "rms_calibration": 100 * row["rms_adaptive"],
                 "error": 100 * row["error"]}.get(metric, math.nan)
        return value, "" if not math.isnan(value) else f"metric {metric} is not computed by corrbench"
    if suite.endswith("-p"):
        flips = rows[(rows["kind"] == "flip-rate") & (rows["suite"] == suite)]
        if metric != "flip_probability":
            return math.nan, "ImageNet-P's AlexNet-normalised flip rate needs constants no repo publishes"
        if flips.empty:
            return math.nan, f"no flip-rate rows for {suite}"
        if corruption == "mean":
            columns = P_PRINTED.get(paper, P_TEST)
            chosen = flips[flips["corruption"].isin(columns)].drop_duplicates("corruption")
            if len(chosen) != len(columns):
                absent = sorted(set(columns) - set(chosen["corruption"]))
                return math.nan, f"the mean needs every printed perturbation; missing {', '.join(absent)}"
            return 100 * chosen["flip_probability"].mean(), ""
        match = flips[flips["corruption"] == corruption]
        if match.empty:
            return math.nan, f"no flip-rate row for {corruption}"
        return 100 * match["flip_probability"].iloc[0], ""
    chosen, why = _corrupted_parts(rows, paper, suite, corruption)
    if chosen is None:
        return math.nan, why
    if metric in ("accuracy", "mca"):
        return 100 * (1 - chosen["error"].mean()), ""
    if metric == "error":
        return 100 * chosen["error"].mean(), ""
    if metric == "rms_calibration":
        if paper == "magn":   # the authors' code: 16 equal-width bins on the pooled 18 × 5 corrupted sets
            if chosen.groupby("corruption")["severity"].nunique().min() < 5:
                return math.nan, "the pooled RMS needs all 5 severities of every corruption"
            return _pooled_rms(chosen)
        return 100 * chosen["rms_adaptive"].mean(), ""
    if metric == "aurra":
        return 100 * chosen["aurra"].mean(), ""
    return math.nan, f"metric {metric} is not computed by corrbench"


def _corrupted_parts(rows: pd.DataFrame, paper: str, suite: str, corruption: str) -> tuple[pd.DataFrame | None, str]:
    """The eval rows (corruption × severity parts) a published -C cell averages, or (None, why not)."""
    corrupted = rows[(rows["kind"] == "eval") & (rows["suite"] == suite) & (rows["corruption"] != "clean")]
    if corrupted.empty:
        return None, f"no {suite} rows"
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
        return None, f"column {corruption} is not a corruption or an average corrbench computes"
    if set(chosen["corruption"]) != set(wanted):
        # a partial set would be a different number than the paper's
        absent = sorted(set(wanted) - set(chosen["corruption"]))
        return None, f"needs all {len(wanted)} corruptions; missing {', '.join(absent[:4])}" + (
            " …" if len(absent) > 4 else "")
    return chosen, ""


def single_run_interval(rows: pd.DataFrame, paper: str, suite: str, corruption: str,
                        metric: str) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval (in %) over test images of one run's error / accuracy cell, from the
    rows' per-image correctness (an image resampled in all the cell's parts at once); None for other metrics
    or rows without per-image data (report/uncertainty.py)."""
    from corrbench.report.uncertainty import BOOTSTRAP_SEED, correctness_matrix
    from corrbench.stats import bootstrap_error

    if metric not in ("error", "accuracy", "mca") or suite.endswith("-p"):
        return None
    suite = SUITE_NAMES.get(suite, suite)
    if suite == "clean":
        chosen = rows[(rows["kind"] == "eval") & (rows["corruption"] == "clean")].iloc[:1]
        correct = correctness_matrix(chosen, "clean") if len(chosen) else None
    else:
        chosen, _ = _corrupted_parts(rows, paper, suite, corruption)
        if chosen is None:
            return None
        correct = correctness_matrix(chosen.assign(benchmark=True), "benchmark")
    if correct is None:
        return None
    interval = bootstrap_error(correct, seed=BOOTSTRAP_SEED)
    if metric == "error":
        return 100 * interval.low, 100 * interval.high
    return 100 * (1 - interval.high), 100 * (1 - interval.low)


@dataclass
class Cell:
    published: dict[str, str]      # stat -> printed value
    ours: list[float]              # one value per run (seed) that fed the cell
    note: str = ""
    match: tuple = ()              # the (dataset, arch, printed method) whose runs feed this cell
    runs: list[str] = field(default_factory=list)                  # the run ids behind `ours`, in order
    missing: list[tuple[str, str]] = field(default_factory=list)   # (run id, why it gives no value here)
    single_interval: tuple[float, float] | None = None             # bootstrap over images when one run feeds it

    def interval(self) -> tuple[float, float] | None:
        """Our 95 % interval: Student t over seeds (≥ 2 runs), else the single run's bootstrap over images."""
        values = [v for v in self.ours if not math.isnan(v)]
        if len(values) > 1:
            from corrbench.stats import t_interval

            found = t_interval(values)
            return found.low, found.high
        return self.single_interval if len(values) == 1 else None

    def published_outside(self) -> bool:
        """Whether the published (mean) value lies outside our interval."""
        interval = self.interval()
        printed = self.published.get("mean") or next(iter(self.published.values()), "")
        try:
            value = float(printed)
        except (TypeError, ValueError):
            return False
        return interval is not None and not interval[0] <= value <= interval[1]

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
class RowMatch:
    """Which runs feed one printed row (dataset, arch, method) and why the other candidates do not."""

    expected: "Expected | None"
    used: list[str] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)   # (run id, reason)


@dataclass
class PaperTable:
    name: str
    cells: dict[tuple, dict[tuple, Cell]]      # row key -> column key -> cell
    row_keys: list[tuple]
    column_keys: list[tuple]
    row_fields: list[str]
    column_fields: list[str]
    style: str                                 # 'single' | 'minmax' | 'std'
    matches: dict[tuple, RowMatch] = field(default_factory=dict)   # (dataset, arch, printed method) -> runs
    note: str = ""

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
                      "single": ""}[self.style] + "; — = not reproduced yet (`--explain` says why); † = the "
                   "published value lies outside our 95 % interval (Student t over seeds; for a single run a "
                   "bootstrap over test images, error and accuracy cells only).")
        if self.note:
            caption += " " + self.note
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
        return f"{published} / {ours}{difference}" + (" †" if cell.published_outside() else "")

    def tidy(self) -> pd.DataFrame:
        """One row per cell: key fields, published value(s), our mean/min/max/std/n, the difference, the runs."""
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
                record["runs"] = ";".join(run for run, value in zip(cell.runs, cell.ours) if not math.isnan(value))
                interval = cell.interval()
                record["ours_low"], record["ours_high"] = interval if interval is not None else (math.nan, math.nan)
                record["published_outside_interval"] = cell.published_outside()
                records.append(record)
        return pd.DataFrame(records)

    def explain(self) -> Table:
        """Per printed row: what the recipe expects, the runs used and the candidates left out (with why);
        then every cell that some used run could not fill."""
        rows: list[list[object]] = []
        for key, match in self.matches.items():
            expected = match.expected.describe() if match.expected else "no recipe produces this row"
            used = ", ".join(match.used) or "none"
            left = "; ".join(f"{run}: {why}" for run, why in match.left_out) or "—"
            rows.append([" / ".join(key), expected, used, left])
        for row_key in self.row_keys:
            for column_key, cell in self.cells[row_key].items():
                for run, why in cell.missing:
                    rows.append([" / ".join(cell.match), f"cell {' '.join(map(str, column_key))}", f"{run}: no value",
                                 why])
        return Table(title=f"{self.name}: runs behind each row", columns=["row", "expected", "runs used",
                                                                         "left out (why)"],
                     rows=rows, row_header=1,
                     caption="A run feeds a row when its training configuration (all but the seed) equals the "
                             "recipe's for that row.")


# ------------------------------------------------------------------------------------------------ expectations

@dataclass
class Expected:
    """How a printed row is produced: a recipe's training configuration, or a public checkpoint."""

    recipe: str
    config: dict[str, Any] | None = None     # comparable_config() of the row's run (seed removed)
    model_source: str | None = None          # evaluated-not-trained rows: the results' model_source
    label: str | None = None                 # … and their label, where files share a model_source
    note: str = ""
    preferred: bool = False                  # from the recipe being run (`corrbench run … --set …`)

    def describe(self) -> str:
        if self.model_source:
            label = f" labelled {self.label}" if self.label else ""
            return f"{self.recipe}: checkpoint {self.model_source}{label}" + (f" ({self.note})" if self.note else "")
        config = self.config or {}
        shown = ", ".join(f"{k} {config.get(k)}" for k in ("epochs", "lr", "schedule", "batch_size")
                          if k in config)
        return f"{self.recipe}: {shown}"


def comparable_config(config: "RunConfig") -> dict[str, Any]:
    """A run's training identity without the seed, method hyperparameters resolved to their values, as
    plain JSON values: equal dicts = runs that differ at most in their seed."""
    from corrbench.methods import create_method

    try:
        config = config.resolved()
    except UserError:
        pass   # e.g. a dataset this installation cannot describe: compare what was recorded
    identity = config.identity()
    identity.pop("seed", None)
    try:
        identity["method_params"] = create_method(config.method, config.method_params).hyperparameters()
    except UserError:
        pass
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


def config_differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """'epochs 1 (recipe 150)'-style lines for every setting that differs."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key), actual.get(key)
        if key == "method_params" and isinstance(want, dict) and isinstance(got, dict):
            out += [f"{key}.{k} {got.get(k)} (recipe {want.get(k)})" for k in sorted(set(want) | set(got))
                    if want.get(k) != got.get(k)]
        elif want != got:
            out.append(f"{key} {got} (recipe {want})")
    return out


def _method_label(method: str, augment: str | None) -> str:
    return method if augment in ("none", None, "") else f"{method}+{augment}"


def _job_label(config) -> str:
    return _method_label(config.method, config.augment)


@dataclass
class TableExpectations:
    """Per (dataset, corrbench arch, method label): how the table's recipes produce that row."""

    rows: dict[tuple[str, str, str], Expected] = field(default_factory=dict)
    arch_names: dict[str, str] = field(default_factory=lambda: dict(ARCH_NAMES))

    def arch(self, printed: str) -> str:
        return self.arch_names.get(printed, printed)

    def find(self, dataset: str, printed_arch: str, method: str) -> tuple[tuple[str, str, str], Expected | None]:
        """The row's key and expectation: a recipe's arch for the printed id (its arch_names), else corrbench's
        default name; rows of the recipe being run come first (e.g. `--set arch=wrn_28_2`)."""
        candidates = []
        for arch in (self.arch(printed_arch), ARCH_NAMES.get(printed_arch, printed_arch)):
            if (dataset, arch, method) not in candidates:
                candidates.append((dataset, arch, method))
        found = [key for key in candidates if key in self.rows]
        preferred = [key for key in found if self.rows[key].preferred]
        key = (preferred or found or candidates)[0]
        return key, self.rows.get(key)


def _recipe_extras(path: Path | None) -> dict[str, Any]:
    """[recipe] keys the run planner does not need: arch_names, checkpoints."""
    if path is None or not Path(path).is_file():
        return {}
    from corrbench.recipes import tomllib
    return tomllib.loads(Path(path).read_text()).get("recipe", {})


def _add_recipe(expectations: TableExpectations, recipe, assignments: Sequence[str] = (), *,
                replace: bool) -> None:
    from corrbench.recipes import expand

    extras = _recipe_extras(recipe.path)
    expectations.arch_names.update(extras.get("arch_names", {}))
    train_jobs, _ = expand(recipe, assignments)
    for job in train_jobs:
        config = job.config
        key = (config.dataset, config.arch, _job_label(config))
        if replace or key not in expectations.rows:
            expectations.rows[key] = Expected(recipe=recipe.name, config=comparable_config(config), preferred=replace)
    for entry in extras.get("checkpoints", []):
        key = (entry["dataset"], entry["arch"], entry["method"])
        if replace or key not in expectations.rows:
            expectations.rows[key] = Expected(recipe=recipe.name,
                                              model_source=expected_model_source(entry["model"], entry.get("weights")),
                                              label=entry.get("label"), note=entry.get("origin", ""),
                                              preferred=replace)


def table_expectations(name: str, recipe=None, assignments: Sequence[str] = ()) -> TableExpectations:
    """The rows of table `name` as its bundled recipes produce them; `recipe` (with `--set` assignments,
    e.g. the one `corrbench run` ran) takes precedence for the rows it produces."""
    from corrbench.bundled import recipes_dir
    from corrbench.recipes import load_recipe

    expectations = TableExpectations()
    if recipe is not None:
        _add_recipe(expectations, recipe, assignments, replace=True)
    for path in sorted(recipes_dir().glob("*.toml")):
        bundled = load_recipe(path)
        if bundled.table == name and (recipe is None or bundled.path != recipe.path):
            _add_recipe(expectations, bundled, replace=False)
    return expectations


# ------------------------------------------------------------------------------------------------ runs

@dataclass
class RunRows:
    run_id: str
    rows: pd.DataFrame
    key: tuple[str, str, str]              # (dataset, arch, method label)
    model_source: str
    config: dict[str, Any] | None          # comparable_config, or None when unknown / not a corrbench run
    label: str = ""


def _run_config(text: str, run_id: str, runs_dir: Path | None) -> dict[str, Any] | None:
    """The comparable configuration recorded in the results (`text`), else read from the run's folder."""
    if not text:
        path = Path(runs_dir) / run_id / "config.json" if runs_dir is not None else None
        if path is None or not path.is_file():
            return None
        text = path.read_text()
    return json.loads(_comparable_from_text(text))


@functools.lru_cache(maxsize=4096)
def _comparable_from_text(text: str) -> str:
    """comparable_config of a recorded configuration (JSON in, JSON out: cached, immutable)."""
    from corrbench.config import RunConfig
    return json.dumps(comparable_config(RunConfig.from_json(json.loads(text))), sort_keys=True)


# The columns a cell's value is computed from (value_and_reason); runs keep only these, which keeps a large
# results folder fast to tabulate.
VALUE_COLUMNS = ("kind", "suite", "corruption", "severity", "error", "rms_adaptive", "aurra", "flip_probability",
                 "calibration_bins", "n", "benchmark", "sample_correct")   # the last three: single-run intervals


def collect_runs(results: pd.DataFrame | None, runs_dir: Path | str | None = None) -> list[RunRows]:
    """The results rows grouped per run (i.e. per seed), with each run's configuration where it is known."""
    if results is None or results.empty:
        return []
    identity = [c for c in ("dataset", "arch", "method", "augment", "model_source", "label", "run_config")
                if c in results]
    firsts = results.groupby("run_id", sort=True)[identity].first()
    values = results[[c for c in VALUE_COLUMNS if c in results] + ["run_id"]]
    out = []
    for run_id, rows in values.groupby("run_id", sort=True):
        first = firsts.loc[run_id]
        source = first.get("model_source")
        source = source if isinstance(source, str) and source else f"run:{run_id}"
        recorded = first.get("run_config")
        config = _run_config(recorded if isinstance(recorded, str) else "", str(run_id),
                             Path(runs_dir) if runs_dir else None) if source.startswith("run:") else None
        label = first.get("label")
        out.append(RunRows(str(run_id), rows, (first["dataset"], first["arch"],
                                               _method_label(first["method"], first["augment"])), source, config,
                           label if isinstance(label, str) else str(run_id)))
    return out


def match_runs(expected: Expected | None, key: tuple[str, str, str], runs: list[RunRows]) -> RowMatch:
    """The runs that feed a row, and the candidates (same dataset, arch and method) left out, with why."""
    match = RowMatch(expected)
    for run in runs:
        if expected is not None and expected.model_source:
            if run.model_source == expected.model_source and run.key[0] == key[0] and (
                    expected.label is None or run.label == expected.label):
                match.used.append(run.run_id)
            elif run.key == key:
                match.left_out.append((run.run_id, f"this row is evaluated from {expected.model_source}, "
                                                   f"not trained"))
            continue
        if run.key != key:
            continue
        if expected is None:
            match.left_out.append((run.run_id, "no recipe produces this row, so no configuration to compare with"))
        elif run.config is None:
            match.left_out.append((run.run_id, "its training configuration is unknown (no run_config in its results "
                                               "and no config.json in the runs folder; pass --runs-dir)"))
        else:
            differences = config_differences(expected.config or {}, run.config)
            if differences:
                shown = ", ".join(differences[:3]) + (f" and {len(differences) - 3} more" if len(differences) > 3
                                                      else "")
                match.left_out.append((run.run_id, f"configuration differs: {shown}"))
            else:
                match.used.append(run.run_id)
    return match


def build_paper_table(name: str, results: pd.DataFrame | None, *, row_fields: Sequence[str] | None = None,
                      column_fields: Sequence[str] | None = None, directory: Path | None = None,
                      expectations: TableExpectations | None = None,
                      runs_dir: Path | str | None = None) -> PaperTable:
    """The table `name` with our values filled in from `results` (rows of a results folder; may be None).

    `expectations` (default: from the bundled recipes naming the table) say which runs may feed each row;
    `runs_dir` is where run configurations are read for results that do not carry them."""
    published = load_published(name, directory)
    default_rows, default_columns = TABLE_LAYOUTS.get(name, (("dataset", "arch", "method"),
                                                              ("suite", "corruption", "metric")))
    row_fields = list(row_fields or default_rows)
    column_fields = list(column_fields or default_columns)
    stats = set(published["stat"])
    style = "minmax" if {"min", "max"} <= stats else "std" if "std" in stats else "single"
    expectations = expectations if expectations is not None else table_expectations(name)
    if results is not None and not results.empty:   # only the table's datasets can feed it
        results = results[results["dataset"].isin(set(published["dataset"]))]
    runs = collect_runs(results, runs_dir)
    by_id = {run.run_id: run for run in runs}
    aliases = ROW_METHODS.get(name, {})
    cells: dict[tuple, dict[tuple, Cell]] = {}
    row_keys: list[tuple] = []
    column_keys: list[tuple] = []
    matches: dict[tuple, RowMatch] = {}
    gains: list[tuple[Cell, tuple]] = []
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
            printed = (values["dataset"], values["arch"], values["method"])
            if printed not in matches:
                matches[printed] = _row_match(printed, aliases, expectations, runs)
            cell = cells[row_key][column_key] = Cell(published={}, ours=[], note=values["note"], match=printed)
            metric = "mca" if values["metric"] == "robustness_gain" else values["metric"]
            for run_id in matches[printed].used:
                value, why = value_and_reason(by_id[run_id].rows, values["paper"], values["suite"],
                                              values["corruption"], metric)
                cell.runs.append(run_id)
                cell.ours.append(value)
                if why:
                    cell.missing.append((run_id, why))
            if len(matches[printed].used) == 1 and cell.ours and not math.isnan(cell.ours[0]):
                cell.single_interval = single_run_interval(by_id[matches[printed].used[0]].rows, values["paper"],
                                                           values["suite"], values["corruption"], metric)
            if values["metric"] == "robustness_gain":
                gains.append((cell, (values["dataset"], values["arch"], GAIN_BASELINE.get(name, ""))))
        cell.published[values["stat"]] = values["value"]
    for cell, baseline_row in gains:   # NoisyMix Table 4: accuracy gain over row 1, in percentage points
        baseline = _mca_cells(cells, baseline_row, column_fields)
        base_stats = baseline[0].ours_stats() if baseline else {}
        cell.ours = [v - base_stats["mean"] for v in cell.ours] if base_stats else []
        cell.single_interval = None   # a gain's interval would need the baseline's too
        if not base_stats:
            cell.runs = []
    return PaperTable(name, cells, row_keys, column_keys, row_fields, column_fields, style, matches,
                      TABLE_NOTES.get(name, ""))


def _mca_cells(cells: dict[tuple, dict[tuple, Cell]], row: tuple, column_fields: list[str]) -> list[Cell]:
    """The mCA cell of printed row `row` (for gains over a baseline row)."""
    metric_index = column_fields.index("metric") if "metric" in column_fields else None
    out = []
    for cells_of_row in cells.values():
        for column_key, cell in cells_of_row.items():
            if cell.match == row and metric_index is not None and column_key[metric_index] == "mca":
                out.append(cell)
    return out


def _row_match(printed: tuple[str, str, str], aliases: dict[str, str], expectations: TableExpectations,
               runs: list[RunRows]) -> RowMatch:
    dataset, printed_arch, printed_method = printed
    method, variant = parse_variant(printed_method)
    method = aliases.get(method, method)
    key, expected = expectations.find(dataset, printed_arch, method)
    if expected is not None and variant and expected.config is not None:
        expected = _with_variant(expected, variant)
    return match_runs(expected, key, runs)


def _with_variant(expected: Expected, variant: dict[str, str]) -> Expected:
    """The recipe's row with the printed hyperparameters (`magn+augmix[lambda1=5;…]`) set."""
    from corrbench.config import RunConfig

    config = dict(expected.config or {})
    params = {**config.get("method_params", {}), **variant}
    run = RunConfig.from_json({**config, "method_params": params})
    return dataclasses.replace(expected, config=comparable_config(run))


def parse_variant(method: str) -> tuple[str, dict[str, str]]:
    """'magn+augmix[lambda1=3;lambda2=12;sigma_max=0.2]' -> ('magn+augmix', {'lambda1': '3', …})."""
    if not method.endswith("]") or "[" not in method:
        return method, {}
    name, inside = method[:-1].split("[", 1)
    return name, dict(part.split("=", 1) for part in inside.split(";") if "=" in part)
