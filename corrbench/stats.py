"""Uncertainty and significance for robustness numbers: intervals over seeds and over test images, paired
comparisons of two models on the same images, McNemar's exact test and Holm's correction.

Everything takes per-image correctness (bool, one entry per test image, in suite order) or per-seed values
and returns plain floats. Resampling is vectorised and seeded through an explicit numpy Generator, so a seed
reproduces an interval to the last digit. Intervals are two-sided at `confidence` (default 95 %).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from corrbench.errors import InvalidValueError

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000
# Bootstrap draws are made in blocks of at most this many indices so memory stays bounded (~32 MB of int64).
_BLOCK_INDICES = 4_000_000
# Tail probabilities below this are FFT rounding noise in the clustered McNemar distribution.
_FFT_TAIL_FLOOR = 1e-12


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided interval; `method` names how the interval was made."""

    estimate: float
    low: float
    high: float
    method: str
    n: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _check_confidence_level(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _as_correctness(values: np.ndarray | Sequence[bool], name: str) -> np.ndarray:
    """A 2-D float array [runs, images] of correctness (a single 1-D run becomes one row)."""
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidValueError(f"{name} must hold per-image correctness (1-D, or 2-D runs × images), got shape "
                                f"{array.shape}")
    return array.astype(np.float64)


def t_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Mean over seeds with Student's t interval: mean ± t_{n−1, (1+c)/2} · s / √n (s with n − 1 in the
    denominator). One value gives a degenerate interval [mean, mean] marked `single`."""
    from scipy.stats import t as student_t

    _check_confidence_level(confidence)
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    if array.size == 0:
        return Interval(math.nan, math.nan, math.nan, "none", 0)
    mean = float(array.mean())
    if array.size == 1:
        return Interval(mean, mean, mean, "single", 1)
    half = float(student_t.ppf((1 + confidence) / 2, df=array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return Interval(mean, mean - half, mean + half, "t", int(array.size))


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation over seeds with n − 1 in the denominator (NaN for fewer than two values)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    return float(array.std(ddof=1)) if array.size > 1 else math.nan


def _bootstrap_means(per_image: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` bootstrap resamples (with replacement) of the 1-D array `per_image`."""
    rng = np.random.default_rng(seed)
    n = per_image.shape[0]
    rows_per_block = max(1, _BLOCK_INDICES // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows_per_block):
        rows = min(rows_per_block, resamples - start)
        indices = rng.integers(0, n, size=(rows, n))
        means[start:start + rows] = per_image[indices].mean(axis=1)
    return means


def _percentile_interval(estimate: float, draws: np.ndarray, confidence: float, n: int) -> Interval:
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(estimate, float(low), float(high), "bootstrap", n)


def bootstrap_error(correct: np.ndarray | Sequence[bool], *, confidence: float = DEFAULT_CONFIDENCE,
                    resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Interval:
    """Top-1 error with a percentile bootstrap interval over test images.

    `correct` is [images] or [parts, images] where every part holds the same images in the same order
    (a suite's corruptions × severities): an image is resampled in all parts at once, so the interval of a
    mean over corruptions accounts for images that are hard under every corruption.
    """
    _check_confidence_level(confidence)
    matrix = _as_correctness(correct, "correct")
    per_image_error = 1.0 - matrix.mean(axis=0)
    draws = _bootstrap_means(per_image_error, resamples, seed)
    return _percentile_interval(float(per_image_error.mean()), draws, confidence, matrix.shape[1])


def paired_bootstrap_difference(correct_a: np.ndarray | Sequence[bool], correct_b: np.ndarray | Sequence[bool], *,
                                confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
                                seed: int = 0) -> Interval:
    """Error of A minus error of B on the same images, with a paired percentile bootstrap interval.

    Each side is [images] or [runs, images] (several seeds: per-image correctness is averaged over them)
    or [parts, images]; both must cover the same images in the same order. Negative: A makes fewer errors.
    """
    _check_confidence_level(confidence)
    a, b = _as_correctness(correct_a, "correct_a"), _as_correctness(correct_b, "correct_b")
    if a.shape[1] != b.shape[1]:
        raise InvalidValueError(f"A and B were evaluated on different images ({a.shape[1]} vs {b.shape[1]}); "
                                f"compare results of the same suite, source and generator seed")
    per_image = (1.0 - a.mean(axis=0)) - (1.0 - b.mean(axis=0))
    draws = _bootstrap_means(per_image, resamples, seed)
    return _percentile_interval(float(per_image.mean()), draws, confidence, a.shape[1])


def mcnemar_exact(correct_a: np.ndarray | Sequence[bool], correct_b: np.ndarray | Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value (McNemar 1947, exact binomial form).

    With b = images A gets right and B wrong, c = the reverse, p = min(1, 2 · P[X ≤ min(b, c)]) for
    X ~ Binomial(b + c, 1/2); p = 1 when the two never disagree.
    """
    from scipy.stats import binom

    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise InvalidValueError(f"McNemar needs per-image correctness of the same images for A and B, got shapes "
                                f"{a.shape} and {b_.shape}")
    only_a = int(np.count_nonzero(a & ~b_))
    only_b = int(np.count_nonzero(~a & b_))
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(only_a, only_b), discordant, 0.5)))


def clustered_mcnemar_exact(correct_a: np.ndarray | Sequence[bool], correct_b: np.ndarray | Sequence[bool]) -> float:
    """Two-sided exact McNemar test for several paired outcomes per image (severities, paired seeds).

    The outcomes of one image are not independent, so pooling them into McNemar's table would overstate
    significance. Instead each image i contributes d_i = #(A right, B wrong) − #(A wrong, B right) over its
    parts; under H0 (A and B exchangeable on every image) each d_i is symmetric about 0, and the exact
    distribution of S = Σ_i d_i under independent sign flips gives p = P(|S| ≥ |s_observed|) — a sign-flip
    (randomisation) test clustered by image. With one part per image it is exactly McNemar's exact test.
    Inputs are [parts, images] (or [images]) correctness of A and B on the same images.
    """
    from scipy.signal import fftconvolve
    from scipy.stats import binom

    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.ndim == 1:
        a, b_ = a[None, :], b_[None, :]
    if a.shape != b_.shape or a.ndim != 2:
        raise InvalidValueError(f"the clustered McNemar test needs [parts, images] correctness of the same images "
                                f"for A and B, got shapes {a.shape} and {b_.shape}")
    d = (a & ~b_).sum(axis=0).astype(np.int64) - (~a & b_).sum(axis=0).astype(np.int64)
    observed = abs(int(d.sum()))
    magnitudes = np.abs(d[d != 0])
    if magnitudes.size == 0:
        return 1.0
    if np.all(magnitudes == 1):   # McNemar's exact test on the discordant images
        only_a, only_b = int(np.count_nonzero(d == 1)), int(np.count_nonzero(d == -1))
        return float(min(1.0, 2.0 * binom.cdf(min(only_a, only_b), only_a + only_b, 0.5)))
    # S = Σ_k k · (2·X_k − n_k), X_k ~ Binomial(n_k, 1/2) for the n_k images with |d_i| = k: its pmf on the
    # integer grid [−Σ k·n_k, Σ k·n_k] is the convolution of the scaled binomials.
    pmf = np.ones(1)
    for k, n_k in zip(*np.unique(magnitudes, return_counts=True)):
        k, n_k = int(k), int(n_k)
        term = np.zeros(2 * k * n_k + 1)
        term[:: 2 * k] = binom.pmf(np.arange(n_k + 1), n_k, 0.5)
        pmf = np.clip(fftconvolve(pmf, term), 0.0, None) if pmf.size > 1 else term
    half = (pmf.size - 1) // 2
    values = np.abs(np.arange(pmf.size) - half)
    tail = float(pmf[values >= observed].sum() / pmf.sum())
    if tail < _FFT_TAIL_FLOOR:
        # Below the FFT's rounding floor the sum is noise: use Hoeffding's bound 2·exp(−s²/(2·Σ d_i²)), which
        # is valid (never smaller than the exact p) and tiny here.
        tail = min(_FFT_TAIL_FLOOR, 2.0 * math.exp(-observed ** 2 / (2.0 * float(np.sum(magnitudes ** 2)))))
    return float(min(1.0, tail))


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm–Bonferroni step-down (Holm 1979): (rejected, adjusted p-values), in the input order.

    Adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j)) over the sorted p-values; reject where ≤ alpha.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return np.zeros(0, bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted_sorted = np.maximum.accumulate(scaled)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= alpha, adjusted
