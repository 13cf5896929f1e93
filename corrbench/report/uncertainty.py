"""The uncertainty every table prints beside a number (docs/results-schema.md, "Intervals").

- Several runs (seeds) of one method: mean ± standard deviation over the runs (n − 1), and the 95 % Student t
  interval of the mean (`stats.t_interval`).
- One run: no spread over seeds exists; the interval is a percentile bootstrap over test images from the rows'
  per-image correctness (`sample_correct`), 2000 resamples, seeded — for mean CE an image is resampled jointly
  in every benchmark corruption × severity (`stats.bootstrap_error` on a [parts, images] matrix).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from corrbench.report.render import Estimate
from corrbench.stats import DEFAULT_RESAMPLES, bootstrap_error, sample_std, t_interval

CLEAN = "clean"
BOOTSTRAP_SEED = 0

INTERVAL_NOTE = ("± = standard deviation over seeds; 95 % interval = Student t over seeds, or for a single run a "
                 f"percentile bootstrap over test images ({DEFAULT_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}; "
                 "for mean CE each image resampled in all benchmark parts at once)")


def _unpack(packed: object, n: int) -> np.ndarray | None:
    if not isinstance(packed, (bytes, bytearray, memoryview)):
        return None
    return np.unpackbits(np.frombuffer(bytes(packed), dtype=np.uint8), count=int(n), bitorder="little").astype(bool)


def correctness_matrix(run_rows: pd.DataFrame, which: str) -> np.ndarray | None:
    """[parts, images] per-image correctness of one run: the clean row (`which="clean"`) or every benchmark
    corruption × severity (`which="benchmark"`); None when a part lacks per-image data or parts differ in size."""
    if "sample_correct" not in run_rows:
        return None
    if which == CLEAN:
        parts = run_rows[run_rows["corruption"] == CLEAN]
    else:
        parts = run_rows[(run_rows["corruption"] != CLEAN) & run_rows["benchmark"].astype(bool)]
    parts = parts.sort_values(["corruption", "severity"])
    if parts.empty:
        return None
    unpacked = [_unpack(b, n) for b, n in zip(parts["sample_correct"], parts["n"])]
    if any(u is None for u in unpacked) or len({u.shape[0] for u in unpacked}) != 1:
        return None
    return np.stack(unpacked)


def estimate(values: Sequence[float], *, scale: float = 100.0, correct: np.ndarray | None = None,
             resamples: int = DEFAULT_RESAMPLES) -> Estimate:
    """An Estimate (× `scale`) of per-run values: t over seeds for several, the bootstrap over the images of
    `correct` ([parts, images] of the single run) for one, no interval when neither applies."""
    array = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                       dtype=np.float64)
    if array.size == 0:
        return Estimate(math.nan)
    if array.size > 1:
        interval = t_interval(array)
        return Estimate(scale * interval.estimate, scale * sample_std(array), scale * interval.low, scale * interval.high)
    if correct is not None:
        interval = bootstrap_error(correct, resamples=resamples, seed=BOOTSTRAP_SEED)
        return Estimate(scale * float(array[0]), math.nan, scale * interval.low, scale * interval.high)
    return Estimate(scale * float(array[0]))


def error_estimate(rows: pd.DataFrame, per_run: pd.Series, which: str, *, scale: float = 100.0) -> Estimate:
    """Estimate of an error over the runs of one table row: `per_run` is the error per run id (clean error or
    mean CE); with one run, its bootstrap interval from `rows`' per-image correctness."""
    correct = None
    if len(per_run.dropna()) == 1:
        run_id = per_run.dropna().index[0]
        correct = correctness_matrix(rows[rows["run_id"] == run_id], which)
    return estimate(list(per_run), scale=scale, correct=correct)
