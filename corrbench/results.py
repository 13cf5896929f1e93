"""Results: the Parquet schema, the results store (write, load, migrate, merge) and `aggregate()`.

One Parquet file per `eval` / `calibrate` / `flip-rate` call, one row per (model, suite, corruption,
severity) — documented, with the store's rules, in docs/results-schema.md (SCHEMA_VERSION below).
The store cannot lose or mix rows: every file gets a name no other file has (claimed exclusively),
temp files live in `<results>/.tmp/` which readers never look at, unreadable files are skipped with one
warning, and readers merge rows by key (newest row wins) instead of picking files. The aggregates that
`eval` prints and `report` tabulates both come from `aggregate()`, so they cannot disagree.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from corrbench.atomic import sweep_temps, write_new_file
from corrbench.errors import CorrbenchWarning, MissingDataError, UserError
from corrbench.metric_catalog import ROW_METRICS, metric_values
from corrbench.metrics import SampleStats, calibration_bin_sums, mce

SCHEMA_VERSION = 2
CLEAN = "clean"
TEMP_FOLDER = ".tmp"        # inside the results folder; never read as results

IDENTITY_COLUMNS = ["schema_version", "kind", "label", "model_source", "run_id", "method", "method_params", "augment",
                    "arch", "dataset", "seed", "run_config", "suite", "source", "generator_seed", "corruption",
                    "severity", "benchmark", "n"]
INFERENCE_COLUMNS = ["preprocessing", "class_map", "precision"]
METRIC_COLUMNS = [m.column for m in ROW_METRICS] + ["temperature", "normaliser_error"]
DEFINITION_COLUMNS = ["ece_binning", "ece_bins", "rms_adaptive_binning", "rms_adaptive_beta",
                      "rms_equal_width_bins", "mce_normaliser", "difficulty"]
# Per-image data for pooled calibration and intervals / paired tests (docs/results-schema.md).
SAMPLE_COLUMNS = ["calibration_bins", "sample_correct", "sample_confidence"]
# Rows of `eval --shard i/n` (and torchrun): which images of the part they cover, and their per-image
# statistics in float64 so merged shards give exactly the full part's metrics (docs/results-schema.md, Shards).
SHARD_COLUMNS = ["shard_index", "shard_count", "image_start", "image_stop", "part_n", "shard_confidence",
                 "shard_nll", "shard_prob_sq_sum"]
PROVENANCE_COLUMNS = ["corrbench_version", "weights_sha256", "checkpoint_epoch", "checkpoint_complete", "device",
                      "timestamp", "torch_version", "eval_batch_size"]
COLUMNS = (IDENTITY_COLUMNS + INFERENCE_COLUMNS + METRIC_COLUMNS + DEFINITION_COLUMNS + SAMPLE_COLUMNS
           + SHARD_COLUMNS + PROVENANCE_COLUMNS)

_DTYPES = {
    "schema_version": "int64", "seed": "Int64", "generator_seed": "Int64", "severity": "int64", "benchmark": "bool",
    "n": "int64", "ece_bins": "Int64", "rms_adaptive_beta": "Int64", "rms_equal_width_bins": "Int64",
    "difficulty": "Int64", "eval_batch_size": "Int64", "checkpoint_epoch": "Int64", "checkpoint_complete": "boolean",
    "shard_index": "Int64", "shard_count": "Int64", "image_start": "Int64", "image_stop": "Int64", "part_n": "Int64",
    **{c: "float64" for c in METRIC_COLUMNS},
}
# Rows with equal values here measure the same thing; the newest one wins (docs/results-schema.md).
# `temperature_role` is derived: calibrate's rows at T = 1 ("identity") and at the fitted T ("fitted").
KEY_COLUMNS = ["kind", "run_id", "suite", "source", "generator_seed", "corruption", "severity", "difficulty",
               "temperature_role", "precision"]


def utc_timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def to_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Rows (dicts) -> a DataFrame with exactly the schema's columns, in order, with their dtypes.

    Defaults for rows of corrbench runs: label = run_id, model_source = "run:<run_id>", class_map "".
    """
    frame = pd.DataFrame(list(rows))
    frame["schema_version"] = SCHEMA_VERSION
    return conform(frame)


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Any frame of results rows -> the schema's columns in order, dtypes applied, defaults filled."""
    frame = frame.copy()
    for column in COLUMNS:
        if column not in frame:
            frame[column] = None
    frame = frame[COLUMNS]
    run_ids = frame["run_id"].astype(object)
    frame["label"] = frame["label"].where(_present(frame["label"]), run_ids)
    frame["model_source"] = frame["model_source"].where(_present(frame["model_source"]), "run:" + run_ids.astype(str))
    frame["class_map"] = frame["class_map"].where(frame["class_map"].notna(), "")
    frame["preprocessing"] = frame["preprocessing"].where(frame["preprocessing"].notna(), "")
    for column, dtype in _DTYPES.items():
        frame[column] = frame[column].astype(dtype)
    return frame


def _present(values: pd.Series) -> pd.Series:
    return values.notna() & (values.astype(object) != "")


def migrate(frame: pd.DataFrame, version: int) -> pd.DataFrame:
    """Rows of an older schema -> the current one (v1 -> v2, docs/results-schema.md)."""
    frame = frame.copy()
    if version < 2:
        frame = frame.rename(columns={"checkpoint_sha256": "weights_sha256"})
        frame["label"] = frame["run_id"]
        frame["model_source"] = "run:" + frame["run_id"].astype(str)
        device = frame["device"].astype(str).str.lower() if "device" in frame else pd.Series("", index=frame.index)
        frame["precision"] = device.map(lambda name: "bf16" if _looks_like_gpu(name) else "fp32")
        frame["checkpoint_epoch"] = None
        frame["checkpoint_complete"] = None
        frame["preprocessing"] = ""
        frame["class_map"] = ""
    frame["schema_version"] = SCHEMA_VERSION
    return frame


def _looks_like_gpu(device: str) -> bool:
    # v1 wrote "cpu" (or "mps") where inference ran in fp32, and torch.cuda.get_device_name() on CUDA,
    # where it ran under bf16 autocast.
    device = device.strip()
    return bool(device) and device not in ("nan", "none") and not device.startswith(("cpu", "mps"))


def result_stem(kind: str, run_id: str, suite: str, timestamp: str) -> str:
    stamp = timestamp.replace(":", "").replace("-", "").replace("+0000", "Z").replace("+00:00", "Z")
    return f"{kind}__{_name_part(run_id)}__{_name_part(suite)}__{_name_part(stamp)}"


def _name_part(text: str, limit: int = 80) -> str:
    """`text` as a portable piece of a file name: suites like `cfolder:/data/x` or `npy:A,B-c` keep
    their readable part and gain a short hash of the original, so different suites never share a name."""
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", text)
    if safe == text and len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{safe[:limit]}-{digest}"


def result_filename(kind: str, run_id: str, suite: str, timestamp: str) -> str:
    return result_stem(kind, run_id, suite, timestamp) + ".parquet"


def write_results(frame: pd.DataFrame, results_dir: Path | str, *, kind: str, run_id: str, suite: str,
                  shard: str = "") -> Path:
    """Write one call's rows to a new file; returns its path.

    The name is `<kind>__<run_id>__<suite>__<stamp>.parquet` with the rows' timestamp (`-2`, `-3` … when
    another file already has it); the name is claimed exclusively, so two calls writing at once both
    keep their rows. The temp file lives in `<results_dir>/.tmp/`; an OSError becomes one line (WriteError)."""
    results_dir = Path(results_dir)
    temp_dir = results_dir / TEMP_FOLDER
    sweep_results_temps(results_dir)
    stamps = frame["timestamp"].dropna() if "timestamp" in frame else pd.Series([], dtype=object)
    stem = result_stem(kind, run_id, suite, str(stamps.max()) if len(stamps) else utc_timestamp())
    if shard:   # `eval --shard 1/4` → …__<stamp>__shard1of4.parquet
        stem += f"__shard{shard.replace('/', 'of')}"
    names = (f"{stem}.parquet" if i == 1 else f"{stem}-{i}.parquet" for i in range(1, 100_000))
    path = write_new_file(results_dir, names, lambda temp: frame.to_parquet(temp, index=False), temp_dir=temp_dir)
    _remove_empty(temp_dir)
    return path


def sweep_results_temps(results_dir: Path) -> None:
    """Remove the temp files of writers that are gone: in `.tmp/`, and hidden ones next to the results
    (where corrbench before schema 2 wrote them); `.tmp/` itself goes when empty."""
    sweep_temps(results_dir / TEMP_FOLDER)
    sweep_temps(results_dir)
    _remove_empty(results_dir / TEMP_FOLDER)


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()          # only succeeds when empty; a concurrent writer recreates it
    except OSError:
        pass


def result_files(results_dir: Path) -> list[Path]:
    """The results files of a folder: every *.parquet below it except hidden paths (temp files, .tmp/)
    and the published tables (paper/)."""
    files = []
    for path in results_dir.rglob("*.parquet"):
        parts = path.relative_to(results_dir).parts
        if any(part.startswith(".") for part in parts) or "paper" in parts[:-1]:
            continue
        files.append(path)
    return sorted(files)


def _read(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """(rows in the current schema, None), (None, None) for a Parquet file that is not corrbench's,
    or (None, why) for one that cannot be used."""
    try:
        frame = pd.read_parquet(path)
    except Exception as error:   # pyarrow raises OSError, ArrowInvalid (ValueError) … for damaged files
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = reason.replace(f"Could not open Parquet input source '{path}': ", "")
        return None, reason[:160]
    if "schema_version" not in frame:
        return None, None
    versions = set(pd.to_numeric(frame["schema_version"], errors="coerce").dropna().astype(int))
    if not versions:
        return (None, None) if frame.empty else (None, "no schema version")
    version = max(versions)
    if version > SCHEMA_VERSION:
        return None, f"schema version {version}, written by a newer corrbench (upgrade to read it)"
    try:
        return conform(migrate(frame, version) if version < SCHEMA_VERSION else frame), None
    except Exception as error:   # columns of the wrong type: a damaged or hand-edited file
        return None, f"does not fit schema version {version} ({type(error).__name__})"


def load_results(results_dir: Path | str, *, kinds: Iterable[str] | None = None, merge: bool = True) -> pd.DataFrame:
    """Every results file under `results_dir` (recursively, except paper/ and hidden paths) as one frame.

    v1 files are migrated to the current schema. Files that cannot be read are skipped with one
    CorrbenchWarning naming them and their count. With `merge`, rows with the same key (KEY_COLUMNS) keep
    only the newest (timestamp, then file name), so split evaluations add up and re-evaluations replace.
    A `file` column names each row's file. Temp files of writers that are gone are swept on the way.
    """
    results_dir = Path(results_dir)
    sweep_results_temps(results_dir)
    files = result_files(results_dir) if results_dir.is_dir() else []
    if not files:
        raise MissingDataError(f"no results in {results_dir}; run `corrbench eval` first (or pass --results DIR)")
    frames, skipped = [], []
    for path in files:
        frame, problem = _read(path)
        if problem is not None:
            skipped.append((path, problem))
        if frame is not None:
            frame["file"] = str(path)
            frames.append(frame)
    if skipped:
        first, why = skipped[0]
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        warnings.warn(f"skipped {len(skipped)} unreadable results file{'s' if len(skipped) > 1 else ''} in "
                      f"{results_dir}: {first.name} ({why}){more}; move or delete {'them' if more else 'it'}",
                      CorrbenchWarning, stacklevel=2)
    if not frames:
        raise MissingDataError(f"no readable corrbench results in {results_dir}; run `corrbench eval` first")
    data = pd.concat(frames, ignore_index=True)
    data.attrs["skipped_files"] = [str(path) for path, _ in skipped]
    if kinds is not None:
        data = data[data["kind"].isin(list(kinds))]
    if merge and not data.empty:
        data = merge_rows(merge_shards(data))
    return data.reset_index(drop=True)


def row_keys(rows: pd.DataFrame) -> pd.DataFrame:
    """The KEY_COLUMNS of each row (temperature_role derived from kind and temperature)."""
    keys = rows[[c for c in KEY_COLUMNS if c != "temperature_role"]].copy()
    fitted = (rows["kind"] == "calibrate") & rows["temperature"].notna() & (rows["temperature"] != 1.0)
    keys["temperature_role"] = fitted.map({True: "fitted", False: "identity"})
    return keys[KEY_COLUMNS]


def merge_rows(rows: pd.DataFrame, extra_keys: Sequence[str] = ()) -> pd.DataFrame:
    """For each key (+ `extra_keys`) the newest row (timestamp, then the later-written file, then position);
    order kept."""
    keys = pd.concat([row_keys(rows), rows[list(extra_keys)]], axis=1).astype(str)
    files = rows["file"].astype(str) if "file" in rows else pd.Series("", index=rows.index)
    numbered = files.str.extract(r"^(?P<base>.*?)(?:-(?P<number>\d+))?\.parquet$")
    order = pd.DataFrame({"timestamp": rows["timestamp"].astype(object).fillna("").astype(str),
                          "base": numbered["base"].fillna(files),
                          "number": pd.to_numeric(numbered["number"]).fillna(1),
                          "position": range(len(rows))}, index=rows.index)
    newest = order.sort_values(["timestamp", "base", "number", "position"]).index
    winners = keys.loc[newest].drop_duplicates(keep="last").index
    return rows[rows.index.isin(winners)]


class ShardMergeError(UserError):
    """Shards of one results key that overlap, leave images out, or were measured on different weights."""


def sample_columns(stats: SampleStats) -> dict:
    """Per-image data of a row: pooled-calibration bin sums, correctness bits, float16 confidences."""
    return {"calibration_bins": calibration_bin_sums(stats.confidence, stats.correct).to_json(),
            "sample_correct": np.packbits(stats.correct.astype(bool), bitorder="little").tobytes(),
            "sample_confidence": stats.confidence.astype("<f2").tobytes()}


def shard_columns(stats: SampleStats, shard_index: int, shard_count: int, start: int, stop: int,
                  part_n: int) -> dict:
    """The columns of a shard's row: its place in the part and its per-image statistics as float64 bytes."""
    squares = stats.prob_sq_sum if stats.prob_sq_sum is not None else np.full(len(stats), np.nan)
    return {"shard_index": shard_index, "shard_count": shard_count, "image_start": start, "image_stop": stop,
            "part_n": part_n, "shard_confidence": stats.confidence.astype("<f8").tobytes(),
            "shard_nll": stats.nll.astype("<f8").tobytes(), "shard_prob_sq_sum": squares.astype("<f8").tobytes()}


def shard_stats(row) -> SampleStats:
    """The per-image statistics a shard row carries (shard_columns), back as SampleStats."""
    n = int(row["n"])
    correct = np.unpackbits(np.frombuffer(row["sample_correct"], np.uint8), count=n, bitorder="little")
    squares = np.frombuffer(row["shard_prob_sq_sum"], "<f8").astype(np.float64)
    return SampleStats(confidence=np.frombuffer(row["shard_confidence"], "<f8").astype(np.float64),
                       correct=correct.astype(bool), nll=np.frombuffer(row["shard_nll"], "<f8").astype(np.float64),
                       prob_sq_sum=None if np.isnan(squares).any() else squares)


def merge_shards(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of `eval --shard i/n` merged into one row per key: the newest row of each shard, checked to tile
    the part's images exactly once (ShardMergeError otherwise), per-image data concatenated in image order
    and every metric recomputed from it (corrbench.metric_catalog) — so a merge equals the unsharded row."""
    if "shard_count" not in rows or not rows["shard_count"].notna().any():
        return rows
    sharded = rows["shard_count"].notna()
    shards = merge_rows(rows[sharded], extra_keys=["shard_count", "shard_index"])
    keys = pd.Series(["\x1f".join(map(str, key)) for key in row_keys(shards).itertuples(index=False)],
                     index=shards.index)
    merged = [_merge_shard_group(group) for _, group in shards.groupby(keys, sort=False)]
    files = [row.pop("file", None) for row in merged]
    frame = conform(pd.DataFrame(merged))
    if "file" in rows:
        frame["file"] = files
    return pd.concat([rows[~sharded], frame], ignore_index=True)


def _merge_shard_group(group: pd.DataFrame) -> dict:
    group = group.sort_values(["image_start", "image_stop", "shard_count"])
    first = group.iloc[0]
    where = f"{first['label']} on {first['suite']} {first['corruption']} s{int(first['severity'])}"
    sizes = set(group["part_n"].astype(int))
    if len(sizes) > 1:
        raise ShardMergeError(f"shards of {where} cover parts of different sizes ({', '.join(map(str, sorted(sizes)))} "
                              f"images); evaluate all shards with the same suite options")
    part_n = sizes.pop()
    if group["weights_sha256"].astype(object).nunique(dropna=False) > 1:
        raise ShardMergeError(f"shards of {where} were measured on different weights; evaluate every shard "
                              f"again on the current checkpoint")
    position, previous = 0, None
    for _, row in group.iterrows():
        name = f"{int(row['shard_index'])}/{int(row['shard_count'])}"
        start, stop = int(row["image_start"]), int(row["image_stop"])
        if start < position:
            raise ShardMergeError(f"shards {previous} and {name} of {where} overlap (images {start}–{position - 1} "
                                  f"twice); remove the results files of one split ({row.get('file', '')})")
        if start > position:
            raise ShardMergeError(f"shards of {where} leave images {position}–{start - 1} of {part_n} unevaluated; "
                                  f"run the missing shard (present: {_shard_names(group)})")
        if row["shard_confidence"] is None or row["sample_correct"] is None:
            raise ShardMergeError(f"shard {name} of {where} has no per-image data; evaluate it again")
        position, previous = stop, name
    if position != part_n:
        raise ShardMergeError(f"shards of {where} leave images {position}–{part_n - 1} of {part_n} unevaluated; "
                              f"run the missing shard (present: {_shard_names(group)})")
    stats = SampleStats.concat([shard_stats(row) for _, row in group.iterrows()])
    newest = group.sort_values("timestamp").iloc[-1]
    merged = newest.to_dict()
    merged.update({"n": part_n, **metric_values(stats), **sample_columns(stats),
                   **{column: None for column in SHARD_COLUMNS}})
    return merged


def _shard_names(group: pd.DataFrame) -> str:
    return ", ".join(f"{int(i)}/{int(c)}" for i, c in zip(group["shard_index"], group["shard_count"]))


def stale_rows(rows: pd.DataFrame, current_sha256: dict[str, str]) -> pd.Series:
    """True where a row's weights_sha256 differs from its run's current checkpoint sha256 (`run_id` ->
    sha256); runs not in the mapping are never stale."""
    current = rows["run_id"].map(current_sha256)
    return current.notna() & (rows["weights_sha256"].astype(object) != current)


def incomplete_checkpoint_warning(rows: pd.DataFrame) -> str | None:
    """One line about rows measured on a checkpoint that had not finished its schedule, or None."""
    incomplete = rows[rows["checkpoint_complete"].eq(False).fillna(False).astype(bool)]
    if incomplete.empty:
        return None
    runs = incomplete.groupby("label", sort=True)["checkpoint_epoch"].max()
    shown = ", ".join(f"{label} (epoch {'?' if pd.isna(epoch) else int(epoch)})" for label, epoch in runs.items())
    return (f"{len(incomplete)} result rows come from unfinished training runs: {shown}; finish them with "
            f"`corrbench train … --resume` and evaluate again")


def warn_about_rows(rows: pd.DataFrame) -> None:
    """The report's warnings (CorrbenchWarning, one line each): unfinished checkpoints, mixed weights."""
    for message in (incomplete_checkpoint_warning(rows), mixed_weights_warning(rows)):
        if message is not None:
            warnings.warn(message, CorrbenchWarning, stacklevel=2)


def mixed_weights_warning(rows: pd.DataFrame) -> str | None:
    """One line about (run, suite) pairs whose rows come from different weights (split evaluations of a
    checkpoint that changed in between), or None."""
    known = rows[rows["weights_sha256"].notna()]
    counts = known.groupby(["label", "suite"], sort=True)["weights_sha256"].nunique()
    mixed = counts[counts > 1]
    if mixed.empty:
        return None
    shown = ", ".join(f"{label} on {suite}" for label, suite in mixed.index)
    return (f"rows of {shown} come from {int(mixed.max())} different checkpoints (evaluated before and after more "
            f"training); evaluate the whole suite again to compare like with like")


def aggregate(rows: pd.DataFrame, corruptions: Sequence[str] | None = None) -> pd.DataFrame:
    """Summary per (run, suite, temperature): the numbers every table quotes.

    - clean_error; mean_corruption_error = unnormalised mean of E_{c,s} over corruptions × severities
      (AugMix's CIFAR "mean corruption error"); mean_corruption_accuracy = 1 − that;
    - relative_mean_ce = mean of (E_{c,s} − E_clean);
    - mce / relative_mce (Hendrycks & Dietterich 2019, §3): mean over c of Σ_s E_{c,s} / Σ_s N_{c,s}
      (and with clean errors subtracted) where the rows carry a normaliser N (AlexNet or a baseline run);
    - every row metric with a summary name in corrbench.metric_catalog (mean_nll, mean_ece, mean_brier, …,
      mean_flip_probability) averaged over the corrupted rows, and clean_<metric> from the clean row.
    `corruptions` defaults to the benchmark corruptions present (rows with benchmark=True).
    """
    keys = ["kind", "label", "run_id", "model_source", "method", "augment", "arch", "dataset", "seed", "suite",
            "source", "precision", "temperature"]
    keys = [key for key in keys if key in rows]   # frames built by hand may lack the v2 columns
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
        for metric in ROW_METRICS:   # error's summary is mean_corruption_error, above
            if metric.summary is None or metric.column == "error" or metric.column not in group:
                continue
            record[metric.summary] = _mean(corrupted[metric.column])
            if metric.column not in ("flip_probability", "top5_distance"):
                record[f"clean_{metric.column}"] = float(clean[metric.column].iloc[0]) if len(clean) else math.nan
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
