"""Figures as PNG (or PDF/SVG by suffix): reliability diagrams and error bar/line charts.

Figures are drawn on `matplotlib.figure.Figure` with an explicit Agg canvas, never through pyplot, so
importing this module neither changes the process-wide backend nor keeps figures alive in pyplot's
registry. Every file is written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from corrbench.atomic import atomic_path
from corrbench.errors import InvalidValueError

_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_DPI = 150


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, out: Path | str) -> Path:
    out = Path(out)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise InvalidValueError(f"plot file '{out}' must end in .png, .pdf or .svg")
    with atomic_path(out) as temp:
        figure.savefig(temp, format=fmt, dpi=_DPI)
    return out


# ---------------------------------------------------------------- reliability

def _as_numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on an accelerator
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _bin_edges(n_bins: int) -> np.ndarray:
    # The float32 edges of torchmetrics' binning, which corrbench.metrics.calibration_error reproduces: the same
    # edges put every sample in the same bin as the ECE reported in tables. (Imported here: torch is heavy.)
    import torch

    return torch.linspace(0, 1, n_bins + 1, dtype=torch.float32).numpy().astype(np.float64)


def bin_reliability(confidence: np.ndarray, correct: np.ndarray,
                    n_bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width confidence bins on [0, 1]: (mean confidence, accuracy, count) per bin.

    Bin b holds confidences in [b/n, (b+1)/n) — the binning of `corrbench.metrics.calibration_error`
    (torchmetrics' float32 edges) — except that a confidence of exactly 1.0, which that function gives
    an extra bin of its own, is counted in the last bin here so the diagram keeps n equal bins. Empty
    bins have NaN mean confidence and accuracy and a count of 0. Accepts numpy arrays or torch tensors.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InvalidValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    confidence = _as_numpy(confidence).astype(np.float64)
    correct = _as_numpy(correct).astype(np.float64)
    if confidence.ndim != 1 or correct.shape != confidence.shape:
        raise InvalidValueError(f"confidence and correct must be 1-D arrays of equal length, got shapes "
                                f"{confidence.shape} and {correct.shape}")
    if confidence.size and not (np.all(confidence >= 0.0) and np.all(confidence <= 1.0)):
        raise InvalidValueError("confidence values must lie in [0, 1] (and not be NaN); pass max softmax "
                                "probabilities, not logits")
    index = np.searchsorted(_bin_edges(n_bins), confidence, side="right") - 1
    index = np.minimum(index, n_bins - 1)  # 1.0 joins the last bin
    count = np.bincount(index, minlength=n_bins).astype(np.int64)
    confidence_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(index, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return confidence_sum / count, correct_sum / count, count


def _expected_calibration_error(bin_confidence: np.ndarray, bin_accuracy: np.ndarray,
                                bin_count: np.ndarray) -> float:
    # ECE = Σ_b (n_b/N) · |acc_b − conf_b|  (Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3)
    filled = bin_count > 0
    weights = bin_count[filled] / bin_count.sum()
    return float(np.sum(weights * np.abs(bin_accuracy[filled] - bin_confidence[filled])))


def reliability_diagram(confidence: np.ndarray, correct: np.ndarray, out: Path | str, *,
                        n_bins: int = 15, title: str = "") -> Path:
    """Reliability diagram of per-prediction confidences and correctness; see `reliability_diagram_from_bins`.

    The ECE in the legend is `corrbench.metrics.calibration_error(confidence, correct, n_bins)`, the
    number the report's tables show, even where confidences of exactly 1.0 make it differ slightly from
    the ECE of the drawn bins.
    """
    from corrbench.metrics import calibration_error

    bins = bin_reliability(confidence, correct, n_bins)
    if bins[2].sum() == 0:
        raise InvalidValueError("no predictions to draw a reliability diagram from")
    ece = calibration_error(_as_numpy(confidence), _as_numpy(correct).astype(np.float64), n_bins)
    return _draw_reliability(*bins, ece, out, title)


def reliability_diagram_from_bins(bin_confidence: Sequence[float] | np.ndarray,
                                  bin_accuracy: Sequence[float] | np.ndarray,
                                  bin_count: Sequence[int] | np.ndarray,
                                  out: Path | str, *, title: str = "") -> Path:
    """Reliability diagram from aggregated equal-width bins on [0, 1] (as `bin_reliability` returns).

    Top panel: accuracy per bin as bars, the gap to the bin's mean confidence shaded, the diagonal of
    perfect calibration, and the ECE of these bins in the legend. Bottom panel: the share of predictions per bin with
    the overall accuracy and mean confidence marked. Empty bins draw nothing.
    """
    bin_confidence = _as_numpy(bin_confidence).astype(np.float64)
    bin_accuracy = _as_numpy(bin_accuracy).astype(np.float64)
    bin_count = _as_numpy(bin_count)
    n_bins = bin_count.size
    if n_bins == 0 or bin_count.ndim != 1 or bin_confidence.shape != bin_count.shape \
            or bin_accuracy.shape != bin_count.shape:
        raise InvalidValueError(f"bin_confidence, bin_accuracy and bin_count must be 1-D of one non-zero "
                                f"length, got shapes {bin_confidence.shape}, {bin_accuracy.shape}, "
                                f"{bin_count.shape}")
    if np.any(bin_count < 0) or bin_count.sum() == 0:
        raise InvalidValueError("bin_count must be non-negative with at least one prediction; "
                                "nothing to draw a reliability diagram from")
    filled = bin_count > 0
    for name, values in (("bin_confidence", bin_confidence), ("bin_accuracy", bin_accuracy)):
        if not (np.all(values[filled] >= 0.0) and np.all(values[filled] <= 1.0)):
            raise InvalidValueError(f"{name} must lie in [0, 1] for every non-empty bin")

    ece = _expected_calibration_error(bin_confidence, bin_accuracy, bin_count)
    return _draw_reliability(bin_confidence, bin_accuracy, bin_count, ece, out, title)


def calibration_diagrams(reliability: Mapping[tuple[str, str], object], out_dir: Path | str, *, label: str,
                         suite: str, temperature: float) -> list[Path]:
    """One reliability diagram per (clean|corrupted, before|after) of a calibrate result's pooled per-sample
    statistics (`CalibrateResult.reliability`: objects with .confidence and .correct arrays)."""
    out_dir = Path(out_dir)
    paths = []
    for (group, tag), stats in reliability.items():
        name = f"{label}__{suite}__reliability_{group}_{tag}.png"
        scaling = "T=1" if tag == "before" else f"temperature {temperature:.3f}"
        paths.append(reliability_diagram(stats.confidence, stats.correct, out_dir / name,
                                         title=f"{label} — {group} ({scaling})"))
    return paths


def _draw_reliability(bin_confidence: np.ndarray, bin_accuracy: np.ndarray, bin_count: np.ndarray,
                      ece: float, out: Path | str, title: str) -> Path:
    n_bins = bin_count.size
    filled = bin_count > 0
    width = 1.0 / n_bins
    centers = (np.arange(n_bins) + 0.5) * width
    share = bin_count / bin_count.sum()

    figure = _new_figure(5.0, 6.0)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centers[filled], bin_accuracy[filled], width=width, color="#3b75af", edgecolor="black",
            linewidth=0.6, label="Accuracy")
    # Gap: from the accuracy up (or down) to the bin's mean confidence.
    gap_low = np.minimum(bin_accuracy[filled], bin_confidence[filled])
    gap_height = np.abs(bin_confidence[filled] - bin_accuracy[filled])
    top.bar(centers[filled], gap_height, bottom=gap_low, width=width, color="#d62728", alpha=0.3,
            edgecolor="#d62728", hatch="//", linewidth=0.6, label="Gap to confidence")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1.0, label="Perfect calibration")
    handles, labels = top.get_legend_handles_labels()
    handles.append(Line2D([], [], linestyle="none"))
    labels.append(f"ECE = {100 * ece:.2f}%")
    top.legend(handles, labels, loc="upper left", fontsize="small")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("Accuracy")
    if title:
        top.set_title(title)

    bottom.bar(centers[filled], share[filled], width=width, color="#7f7f7f", edgecolor="black", linewidth=0.6)
    accuracy = float(np.sum(share[filled] * bin_accuracy[filled]))
    mean_confidence = float(np.sum(share[filled] * bin_confidence[filled]))
    bottom.axvline(accuracy, color="#3b75af", linestyle="-", linewidth=1.2)
    bottom.axvline(mean_confidence, color="#d62728", linestyle="--", linewidth=1.2)
    bottom.legend([Line2D([], [], color="#3b75af"), Line2D([], [], color="#d62728", linestyle="--")],
                  [f"Accuracy {100 * accuracy:.1f}%", f"Mean confidence {100 * mean_confidence:.1f}%"],
                  loc="upper left", fontsize="x-small")
    bottom.set_ylim(0, max(1e-9, float(share.max())) * 1.15)
    bottom.set_xlabel("Confidence")
    bottom.set_ylabel("Share")
    return _save(figure, out)


# ---------------------------------------------------------------- error charts

def error_per_corruption(errors: Mapping[str, Mapping[str, float]], out: Path | str, *,
                         title: str = "") -> Path:
    """Grouped bars: one group per corruption (x), one bar per method; `errors[method][corruption]` in %.

    Corruptions appear in the order they are first met; a method missing a corruption has no bar there.
    """
    methods = list(errors)
    corruptions = list(dict.fromkeys(c for method in methods for c in errors[method]))
    if not methods or not corruptions:
        raise InvalidValueError("error_per_corruption needs at least one method with one corruption")
    group_width = 0.8
    bar_width = group_width / len(methods)
    x = np.arange(len(corruptions))
    figure = _new_figure(max(6.0, 0.45 * len(corruptions) * max(1.0, len(methods) / 2) + 1.5), 4.0)
    axes = figure.subplots()
    for i, method in enumerate(methods):
        values = np.array([errors[method].get(c, np.nan) for c in corruptions], dtype=np.float64)
        present = ~np.isnan(values)
        offset = -group_width / 2 + (i + 0.5) * bar_width
        axes.bar(x[present] + offset, values[present], width=bar_width, label=method,
                 color=f"C{i % 10}", edgecolor="black", linewidth=0.4)
    axes.set_xticks(x, [c.replace("_", " ") for c in corruptions], rotation=45, ha="right")
    axes.set_xlim(-0.6, len(corruptions) - 0.4)
    axes.set_ylabel("Error (%)")
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", linewidth=0.4, alpha=0.5)
    axes.set_axisbelow(True)
    axes.legend(fontsize="small", ncols=min(len(methods), 4))
    if title:
        axes.set_title(title)
    return _save(figure, out)


def error_vs_severity(errors: Mapping[str, Sequence[float]], out: Path | str, *, title: str = "") -> Path:
    """One line per method: error (%) against corruption severity.

    Five values are severities 1..5. Six values are clean error first (drawn at x = 0, labelled
    "clean") followed by severities 1..5. NaN values leave a gap in the line.
    """
    if not errors:
        raise InvalidValueError("error_vs_severity needs at least one method")
    for method, values in errors.items():
        if len(values) not in (5, 6):
            raise InvalidValueError(f"method '{method}' has {len(values)} errors; give 5 (severities 1-5) "
                                    f"or 6 (clean, then severities 1-5)")
    with_clean = any(len(values) == 6 for values in errors.values())
    figure = _new_figure(6.0, 4.0)
    axes = figure.subplots()
    for i, (method, values) in enumerate(errors.items()):
        severities = np.arange(6 - len(values), 6)
        axes.plot(severities, np.asarray(values, dtype=np.float64), marker="o", label=method, color=f"C{i % 10}")
    ticks = list(range(0 if with_clean else 1, 6))
    axes.set_xticks(ticks, ["clean" if t == 0 else str(t) for t in ticks])
    axes.set_xlabel("Severity")
    axes.set_ylabel("Error (%)")
    axes.set_ylim(bottom=0)
    axes.grid(linewidth=0.4, alpha=0.5)
    axes.legend(fontsize="small")
    if title:
        axes.set_title(title)
    return _save(figure, out)
