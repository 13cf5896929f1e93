"""Paired comparison of two models on the same images: A − B error per corruption × severity, per
corruption and overall with paired bootstrap intervals over test images (seeds averaged per image), McNemar's
exact test per corruption (clustered by image: an image's severities are not independent pairs), and Holm's
correction over the corruptions.

Both sides are selected from results rows by run id, label or method name (several seeds allowed); their
rows must come from the same suite, source and generator seed, so image i is the same image on both sides.
Per-image correctness comes from the `sample_correct` column (docs/results-schema.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from corrbench.errors import InvalidValueError, MissingDataError, UnknownNameError
from corrbench.stats import DEFAULT_CONFIDENCE, clustered_mcnemar_exact, holm, paired_bootstrap_difference

CLEAN = "clean"


def unpack_correct(packed: bytes, n: int) -> np.ndarray:
    """Per-image correctness from the `sample_correct` column (little-endian packed bits)."""
    return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=int(n), bitorder="little").astype(bool)


def pack_correct(correct: np.ndarray) -> bytes:
    """The `sample_correct` value of per-image correctness (inverse of `unpack_correct`)."""
    return np.packbits(np.asarray(correct, dtype=bool), bitorder="little").tobytes()


@dataclass
class Comparison:
    """The result of `compare`: per (corruption, severity) rows, per corruption rows, and the overall line."""

    a: str
    b: str
    suite: str
    cells: pd.DataFrame        # corruption, severity, error_a, error_b, difference, low, high
    corruptions: pd.DataFrame  # corruption, benchmark, error_a, error_b, difference, low, high, p_value, p_holm, verdict
    overall: dict              # error_a, error_b, difference, low, high over benchmark corruptions × severities
    seeds_a: int
    seeds_b: int
    alpha: float

    @property
    def a_better(self) -> int:
        return int((self.corruptions["verdict"] == "A better").sum())

    @property
    def b_better(self) -> int:
        return int((self.corruptions["verdict"] == "B better").sum())


def select_side(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    """Rows of the runs named by run id, label, or method[+augment] (all seeds of it)."""
    method = rows["method"].astype(str).where(rows["augment"].fillna("none") == "none",
                                              rows["method"].astype(str) + "+" + rows["augment"].astype(str))
    for candidate in (rows["run_id"] == name, rows.get("label", pd.Series(False, index=rows.index)) == name,
                      method == name):
        if candidate.any():
            return rows[candidate]
    known = sorted(set(rows["run_id"]) | set(method) | set(rows.get("label", pd.Series(dtype=str)).dropna()))
    raise UnknownNameError("run", name, known)


def _correctness(side: pd.DataFrame, corruption: str, severity: int) -> np.ndarray:
    """[seeds, images] correctness of one part, seeds in run-id order."""
    part = side[(side["corruption"] == corruption) & (side["severity"] == severity)].sort_values("run_id")
    if part["sample_correct"].isna().any():
        raise MissingDataError("these results carry no per-image correctness (written before schema v2); "
                               "evaluate again to compare them")
    return np.stack([unpack_correct(b, n) for b, n in zip(part["sample_correct"], part["n"])])


def _paired_seeds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seed i of A with seed i of B (the first min(k_a, k_b) seeds): [k, images] binary pairs for McNemar."""
    k = min(a.shape[0], b.shape[0])
    return a[:k], b[:k]


def compare(rows: pd.DataFrame, a: str, b: str, *, suite: str | None = None, alpha: float = 0.05,
            confidence: float = DEFAULT_CONFIDENCE, resamples: int = 2000, seed: int = 0) -> Comparison:
    """Compare A and B on one suite of `rows` (eval rows of a results folder)."""
    rows = rows[rows["kind"] == "eval"]
    if "sample_correct" not in rows:
        raise MissingDataError("these results carry no per-image correctness (written before schema v2); "
                               "evaluate again to compare them")
    side_a, side_b = select_side(rows, a), select_side(rows, b)
    common = sorted(set(side_a["suite"]) & set(side_b["suite"]))
    if suite is not None:
        common = [s for s in common if s == suite]
    if not common:
        raise MissingDataError(f"{a} and {b} have no suite in common{' named ' + suite if suite else ''}; evaluate "
                               f"both on the same suite")
    if len(common) > 1:
        raise InvalidValueError(f"{a} and {b} share several suites ({', '.join(common)}); choose one with --suite")
    suite = common[0]
    side_a, side_b = side_a[side_a["suite"] == suite], side_b[side_b["suite"] == suite]
    for column in ("source", "generator_seed"):
        values_a, values_b = set(side_a[column].astype(str)), set(side_b[column].astype(str))
        if values_a != values_b or len(values_a) != 1:
            raise InvalidValueError(f"{a} and {b} were evaluated on different images of {suite} ({column} "
                                    f"{sorted(values_a)} vs {sorted(values_b)}); evaluate both with the same "
                                    f"--source and --seed")
    keys_a = set(zip(side_a["corruption"], side_a["severity"]))
    keys = sorted(keys_a & set(zip(side_b["corruption"], side_b["severity"])), key=lambda k: (k[0] != CLEAN, k))
    benchmark = dict(zip(side_a["corruption"], side_a["benchmark"].astype(bool)))
    cells, parts = [], {}
    for index, (corruption, severity) in enumerate(keys):
        ca, cb = _correctness(side_a, corruption, severity), _correctness(side_b, corruption, severity)
        if ca.shape[1] != cb.shape[1]:
            raise InvalidValueError(f"{corruption} severity {severity}: {ca.shape[1]} images for {a} but "
                                    f"{cb.shape[1]} for {b}; evaluate both on the same images")
        parts[(corruption, severity)] = (ca, cb)
        interval = paired_bootstrap_difference(ca, cb, confidence=confidence, resamples=resamples, seed=seed + index)
        cells.append({"corruption": corruption, "severity": int(severity), "error_a": 1 - ca.mean(),
                      "error_b": 1 - cb.mean(), "difference": interval.estimate, "low": interval.low,
                      "high": interval.high})
    per_corruption = []
    corruption_names = list(dict.fromkeys(c for c, _ in keys))
    for index, corruption in enumerate(corruption_names):
        mine = [parts[k] for k in keys if k[0] == corruption]
        # seeds averaged per image, severities stacked as parts over the same images
        ca = np.stack([p[0].mean(axis=0) for p in mine])
        cb = np.stack([p[1].mean(axis=0) for p in mine])
        interval = paired_bootstrap_difference(ca, cb, confidence=confidence, resamples=resamples,
                                               seed=seed + 10_000 + index)
        pairs_a, pairs_b = zip(*[_paired_seeds(*p) for p in mine])
        # severities (and paired seeds) of one image are dependent: the exact test is clustered by image
        p_value = clustered_mcnemar_exact(np.concatenate(pairs_a), np.concatenate(pairs_b))
        per_corruption.append({"corruption": corruption, "benchmark": bool(benchmark.get(corruption, False)),
                               "error_a": 1 - ca.mean(), "error_b": 1 - cb.mean(), "difference": interval.estimate,
                               "low": interval.low, "high": interval.high, "p_value": p_value})
    corruptions = pd.DataFrame(per_corruption)
    tested = corruptions["corruption"] != CLEAN if len(corruptions) else pd.Series(dtype=bool)
    corruptions["p_holm"] = math.nan
    corruptions["verdict"] = "n.s."
    if tested.any():
        rejected, adjusted = holm(corruptions.loc[tested, "p_value"].to_numpy(), alpha)
        corruptions.loc[tested, "p_holm"] = adjusted
        significant = np.zeros(len(corruptions), bool)
        significant[np.flatnonzero(tested.to_numpy())] = rejected
        better_a = significant & (corruptions["difference"].to_numpy() < 0)
        better_b = significant & (corruptions["difference"].to_numpy() > 0)
        corruptions.loc[better_a, "verdict"] = "A better"
        corruptions.loc[better_b, "verdict"] = "B better"
    corrupted = [k for k in keys if k[0] != CLEAN and benchmark.get(k[0], False)]
    overall: dict = {"parts": len(corrupted)}
    if corrupted:
        ca = np.stack([parts[k][0].mean(axis=0) for k in corrupted])
        cb = np.stack([parts[k][1].mean(axis=0) for k in corrupted])
        interval = paired_bootstrap_difference(ca, cb, confidence=confidence, resamples=resamples, seed=seed + 20_000)
        overall.update(error_a=1 - ca.mean(), error_b=1 - cb.mean(), difference=interval.estimate,
                       low=interval.low, high=interval.high)
    return Comparison(a=a, b=b, suite=suite, cells=pd.DataFrame(cells), corruptions=corruptions, overall=overall,
                      seeds_a=side_a["run_id"].nunique(), seeds_b=side_b["run_id"].nunique(), alpha=alpha)
