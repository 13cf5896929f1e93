"""Every metric corrbench reports, described once: its results column, how it is computed from a part's
per-sample statistics, its unit, how the summary aggregates it over parts, how it prints, and its definition.

The evaluation engine computes a row's metrics by walking `ROW_METRICS`; results, report, the HTML report and
the CLI read names, units, formatting and definitions from here. Adding a metric is one entry below (plus its
function in `corrbench.metrics`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from corrbench.metrics import (SampleStats, aurra, brier_score, calibration_error, calibration_error_equal_mass,
                               error_rate, mean_nll, rms_calibration_error_adaptive)

ECE_BINS = 15          # equal-width bins of ECE / RMS / MCE (torchmetrics' default)
RMS_BETA = 100         # Hendrycks' calib_err bin size
ADAPTIVE_ECE_BINS = 15


@dataclass(frozen=True)
class Metric:
    """One reported number. `compute` is None for metrics made elsewhere (-P flip rates, normalisers)."""

    column: str
    label: str                  # short name in tables
    unit: str                   # "fraction" (printed in %), "nats", or "score"
    definition: str
    compute: Callable[[SampleStats], float] | None = None
    summary: str | None = None  # the summary column that averages it over corrupted parts (None: not averaged)
    lower_is_better: bool = True

    @property
    def percent(self) -> bool:
        return self.unit == "fraction"

    def format(self, value: float) -> str:
        return f"{100 * value:.2f}" if self.percent else f"{value:.3f}"


def _brier(stats: SampleStats) -> float:
    return float("nan") if stats.prob_sq_sum is None else brier_score(stats.nll, stats.prob_sq_sum)


ROW_METRICS: tuple[Metric, ...] = (
    Metric("error", "error", "fraction", "top-1 error: fraction of images whose arg-max class is not the label",
           lambda s: error_rate(s.correct), summary="mean_corruption_error"),
    Metric("nll", "NLL", "nats", "mean negative log-likelihood of the true class (natural log)",
           lambda s: mean_nll(s.nll), summary="mean_nll"),
    Metric("ece", "ECE", "fraction",
           f"expected calibration error: {ECE_BINS} equal-width confidence bins, Σ_b (n_b/N)|acc_b − conf_b| "
           f"(torchmetrics' binning; a confidence of exactly 1 gets its own bin)",
           lambda s: calibration_error(s.confidence, s.correct, n_bins=ECE_BINS, norm="l1"), summary="mean_ece"),
    Metric("ece_adaptive", "adaptive ECE", "fraction",
           f"ECE with {ADAPTIVE_ECE_BINS} equal-mass bins (samples sorted by confidence, split as numpy.array_split; "
           f"Nixon et al. 2019)",
           lambda s: calibration_error_equal_mass(s.confidence, s.correct, n_bins=ADAPTIVE_ECE_BINS),
           summary="mean_ece_adaptive"),
    Metric("rms_equal_width", "RMS (equal-width)", "fraction",
           f"RMS calibration error over the same {ECE_BINS} equal-width bins: sqrt(Σ_b (n_b/N)(acc_b − conf_b)²)",
           lambda s: calibration_error(s.confidence, s.correct, n_bins=ECE_BINS, norm="l2"),
           summary="mean_rms_equal_width"),
    Metric("rms_adaptive", "RMS", "fraction",
           f"RMS calibration error of Hendrycks' calib_err(p='2'): equal-count bins of {RMS_BETA} sorted by "
           f"confidence, the last (remainder) bin dropped; NaN for fewer than {RMS_BETA} images",
           lambda s: rms_calibration_error_adaptive(s.confidence, s.correct, beta=RMS_BETA),
           summary="mean_rms_adaptive"),
    Metric("max_calibration_error", "MCE", "fraction",
           f"maximum over non-empty equal-width bins ({ECE_BINS}) of |acc_b − conf_b|",
           lambda s: calibration_error(s.confidence, s.correct, n_bins=ECE_BINS, norm="max")),
    Metric("brier", "Brier", "score",
           "multi-class Brier score: mean over images of Σ_k (p_k − y_k)², in [0, 2] (Brier 1950)",
           _brier, summary="mean_brier"),
    Metric("aurra", "AURRA", "fraction",
           "area under the response-rate / accuracy curve (answer the most confident first; Hendrycks et al.)",
           lambda s: aurra(s.confidence, s.correct), summary="mean_aurra", lower_is_better=False),
    Metric("flip_probability", "flip prob.", "fraction",
           "-P: mean over videos of the per-video flip rate (noise sequences: every frame against frame 0; others: "
           "consecutive frames `difficulty` apart; Hendrycks & Dietterich 2019)", summary="mean_flip_probability"),
    Metric("top5_distance", "top-5 dist.", "score",
           "-P: mean top-5 distance with the same frame pairing (Hendrycks & Dietterich 2019)",
           summary="mean_top5_distance"),
)

SUMMARY_DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("clean_error", "top-1 error on the clean test set"),
    ("mean_corruption_error", "mean CE: unnormalised mean of the error over the benchmark corruptions × "
                              "severities present (AugMix's CIFAR 'mean corruption error'); extra corruptions "
                              "are never averaged in"),
    ("mean_corruption_accuracy", "1 − mean CE (MAGN's 'mCA')"),
    ("relative_mean_ce", "mean over benchmark corruptions × severities of (error − clean error)"),
    ("mce", "mCE (Hendrycks & Dietterich 2019, §3): mean over corruptions of Σ_s E_{c,s} / Σ_s N_{c,s}, N the "
            "normaliser's errors (AlexNet for ImageNet-C, or a baseline run)"),
    ("relative_mce", "relative mCE: as mCE with the clean errors subtracted from numerator and denominator"),
)

_BY_COLUMN = {metric.column: metric for metric in ROW_METRICS}


def metric(column: str) -> Metric:
    """The descriptor of a results column (KeyError for columns that are not metrics)."""
    return _BY_COLUMN[column]


def computed_metrics() -> tuple[Metric, ...]:
    """The metrics the evaluation engine computes from per-sample statistics, in column order."""
    return tuple(m for m in ROW_METRICS if m.compute is not None)


def metric_values(stats: SampleStats) -> dict[str, float]:
    """{column: value} of every computed metric for one part's per-sample statistics."""
    return {m.column: m.compute(stats) for m in computed_metrics()}


def definitions() -> list[tuple[str, str]]:
    """(name, definition) of every row metric and summary number, for reports and docs."""
    rows = [(f"{m.label} ({m.column})", m.definition) for m in ROW_METRICS]
    rows += [(column, text) for column, text in SUMMARY_DEFINITIONS]
    return rows
