"""Results: the Parquet schema, atomic writes, loading a results folder, and `aggregate()`.

One Parquet file per `eval` / `calibrate` / `flip-rate` call, one row per (run, suite, corruption,
severity) — documented in docs/results-schema.md (SCHEMA_VERSION below). The aggregates that
`eval` prints and `report` tabulates both come from `aggregate()`, so they cannot disagree.
"""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from corrbench.atomic import atomic_path
from corrbench.errors import MissingDataError
from corrbench.metrics import mce

SCHEMA_VERSION = 1
CLEAN = "clean"

IDENTITY_COLUMNS = ["schema_version", "kind", "run_id", "method", "method_params", "augment", "arch", "dataset", "seed",
                    "suite", "source", "generator_seed", "corruption", "severity", "benchmark", "n"]
METRIC_COLUMNS = ["error", "nll", "ece", "rms_adaptive", "rms_equal_width", "max_calibration_error", "aurra",
                  "temperature", "normaliser_error", "flip_probability", "top5_distance"]
DEFINITION_COLUMNS = ["ece_binning", "ece_bins", "rms_adaptive_binning", "rms_adaptive_beta",
                      "rms_equal_width_bins", "mce_normaliser", "difficulty"]
PROVENANCE_COLUMNS = ["corrbench_version", "checkpoint_sha256", "device", "timestamp", "torch_version",
                      "eval_batch_size"]
COLUMNS = IDENTITY_COLUMNS + METRIC_COLUMNS + DEFINITION_COLUMNS + PROVENANCE_COLUMNS

_DTYPES = {
    "schema_version": "int64", "seed": "int64", "generator_seed": "Int64", "severity": "int64", "benchmark": "bool",
    "n": "int64", "ece_bins": "Int64", "rms_adaptive_beta": "Int64", "rms_equal_width_bins": "Int64",
    "difficulty": "Int64", "eval_batch_size": "Int64",
    **{c: "float64" for c in METRIC_COLUMNS},
}


def utc_timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def to_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Rows (dicts) -> a DataFrame with exactly the schema's columns, in order, with their dtypes."""
    frame = pd.DataFrame(list(rows))
    frame["schema_version"] = SCHEMA_VERSION
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame = frame[COLUMNS]
    for column, dtype in _DTYPES.items():
        frame[column] = frame[column].astype(dtype)
    return frame


def result_filename(kind: str, run_id: str, suite: str, timestamp: str) -> str:
    stamp = timestamp.replace(":", "").replace("-", "").replace("+0000", "Z").replace("+00:00", "Z")
    return f"{kind}__{run_id}__{suite}__{stamp}.parquet"


def write_results(frame: pd.DataFrame, results_dir: Path | str, *, kind: str, run_id: str, suite: str) -> Path:
    """Atomically write one call's rows; returns the file's path."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / result_filename(kind, run_id, suite, utc_timestamp())
    counter = 1
    while path.exists():  # two calls within one second
        path = path.with_name(path.stem + f"-{counter}.parquet")
        counter += 1
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def load_results(results_dir: Path | str, *, kinds: Iterable[str] | None = None, latest_only: bool = True) -> pd.DataFrame:
    """Every results file under `results_dir` (recursively, except paper/) as one DataFrame.

    With `latest_only`, a (kind, run, suite) evaluated several times keeps only its newest file.
    """
    results_dir = Path(results_dir)
    files = sorted(p for p in results_dir.rglob("*.parquet") if "paper" not in p.relative_to(results_dir).parts)
    if not files:
        raise MissingDataError(f"no results in {results_dir}; run `corrbench eval` first (or pass --results DIR)")
    frames = []
    for path in files:
        frame = pd.read_parquet(path)
        if "schema_version" not in frame:
            continue
        frame["file"] = str(path)
        frames.append(frame)
    if not frames:
        raise MissingDataError(f"no corrbench results in {results_dir}; run `corrbench eval` first")
    data = pd.concat(frames, ignore_index=True)
    if kinds is not None:
        data = data[data["kind"].isin(list(kinds))]
    if latest_only and not data.empty:
        newest = data.groupby(["kind", "run_id", "suite"])["timestamp"].transform("max")
        data = data[data["timestamp"] == newest]
    return data.reset_index(drop=True)


def aggregate(rows: pd.DataFrame, corruptions: Sequence[str] | None = None) -> pd.DataFrame:
    """Summary per (run, suite, temperature): the numbers every table quotes.

    - clean_error; mean_corruption_error = unnormalised mean of E_{c,s} over corruptions × severities
      (AugMix's CIFAR "mean corruption error"); mean_corruption_accuracy = 1 − that;
    - relative_mean_ce = mean of (E_{c,s} − E_clean);
    - mce / relative_mce (Hendrycks & Dietterich 2019, §3): mean over c of Σ_s E_{c,s} / Σ_s N_{c,s}
      (and with clean errors subtracted) where the rows carry a normaliser N (AlexNet or a baseline run);
    - mean NLL, ECE, RMS (both schemes) over the corrupted rows; mean flip probability / top-5 distance.
    `corruptions` defaults to the benchmark corruptions present (rows with benchmark=True).
    """
    keys = ["kind", "run_id", "method", "augment", "arch", "dataset", "seed", "suite", "source", "temperature"]
    out = []
    for key, group in rows.groupby(keys, dropna=False, sort=False):
        record = dict(zip(keys, key))
        clean = group[group["corruption"] == CLEAN]
        corrupted = group[group["corruption"] != CLEAN]
        if corruptions is not None:
            corrupted = corrupted[corrupted["corruption"].isin(list(corruptions))]
        elif corrupted["benchmark"].any():
            corrupted = corrupted[corrupted["benchmark"]]
        clean_error = float(clean["error"].iloc[0]) if len(clean) else math.nan
        record["clean_error"] = clean_error
        record["corruptions"] = int(corrupted["corruption"].nunique())
        record["mean_corruption_error"] = _mean(corrupted["error"])
        record["mean_corruption_accuracy"] = 1.0 - record["mean_corruption_error"]
        record["relative_mean_ce"] = _mean(corrupted["error"] - clean_error)
        record["mce"], record["relative_mce"], record["mce_normaliser"] = _mce(clean, corrupted)
        for metric in ("nll", "ece", "rms_adaptive", "rms_equal_width", "aurra"):
            record[f"mean_{metric}"] = _mean(corrupted[metric])
            record[f"clean_{metric}"] = float(clean[metric].iloc[0]) if len(clean) else math.nan
        record["mean_flip_probability"] = _mean(corrupted["flip_probability"])
        record["mean_top5_distance"] = _mean(corrupted["top5_distance"])
        out.append(record)
    return pd.DataFrame(out)


def per_corruption_error(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean error over severities per (run, suite, temperature, corruption), clean included as 'clean'."""
    keys = ["run_id", "suite", "temperature", "corruption"]
    return rows.groupby(keys, dropna=False, sort=False)["error"].mean().reset_index()


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mean()) if len(values) else math.nan


def _mce(clean: pd.DataFrame, corrupted: pd.DataFrame) -> tuple[float, float, str | None]:
    """(mCE, relative mCE, normaliser name) via metrics.mce, or NaN where the rows carry no normaliser."""
    if corrupted.empty or corrupted["normaliser_error"].isna().any():
        return math.nan, math.nan, None
    ordered = corrupted.sort_values("severity")
    errors = {c: list(g["error"]) for c, g in ordered.groupby("corruption", sort=False)}
    normaliser = {c: list(g["normaliser_error"]) for c, g in ordered.groupby("corruption", sort=False)}
    value = mce(errors, normaliser)
    relative = math.nan
    if len(clean) and not clean["normaliser_error"].isna().any():
        relative = mce(errors, normaliser, relative=True, clean_error=float(clean["error"].iloc[0]),
                       normaliser_clean_error=float(clean["normaliser_error"].iloc[0]))
    return value, relative, str(corrupted["mce_normaliser"].iloc[0])
