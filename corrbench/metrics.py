"""Robustness and calibration metrics on per-sample arrays.

The evaluation engine keeps, per (corruption, severity), only per-sample arrays (`SampleStats`), and for
-P suites the per-frame prediction and top-5 class indices. Every metric here takes those arrays (numpy or
torch) and returns a Python float. Fractions stay fractions: an mCE equal to AlexNet's is 1.0, not 100.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from corrbench.errors import InvalidValueError
from corrbench.registry import Registry

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


class MissingNormaliserError(InvalidValueError, ValueError):
    """A corruption has no entry in the mCE normaliser table (a UserError that is also a ValueError)."""


def _to_numpy(values: ArrayLike, dtype: type, name: str) -> np.ndarray:
    """`values` as a 1-D numpy array of `dtype` (torch tensors are detached and moved to the CPU)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values).astype(dtype, copy=False)
    if array.ndim != 1:
        raise InvalidValueError(f"{name} must be a 1-D array with one entry per sample, got shape {array.shape}")
    return array


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise InvalidValueError(f"per-sample arrays differ in length ({shown}); pass one entry per sample to each")
    return next(iter(lengths.values()))


def _check_confidence(confidence: np.ndarray) -> None:
    if confidence.size and (np.isnan(confidence).any() or confidence.min() < 0.0 or confidence.max() > 1.0):
        raise InvalidValueError("confidence must be probabilities in [0, 1] (the max softmax probability), "
                                "got values outside it; pass softmax outputs, not logits")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------------------
# Per-sample statistics
# ---------------------------------------------------------------------------------------------------------

@dataclass
class SampleStats:
    """Per-sample arrays of one evaluation cell: max softmax probability, correctness, NLL of the label."""

    confidence: np.ndarray  # float64 [N]
    correct: np.ndarray     # bool [N]
    nll: np.ndarray         # float64 [N]
    # Σ_k p_k² per sample (float64 [N]): with p_y = exp(−nll) it gives the Brier score; None when unknown.
    prob_sq_sum: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.confidence)

    @staticmethod
    def concat(parts: list["SampleStats"]) -> "SampleStats":
        """The samples of all `parts`, in order (an empty list gives empty arrays)."""
        if not parts:
            return SampleStats(np.zeros(0, np.float64), np.zeros(0, bool), np.zeros(0, np.float64),
                               np.zeros(0, np.float64))
        squares = (None if any(p.prob_sq_sum is None for p in parts)
                   else np.concatenate([p.prob_sq_sum for p in parts]).astype(np.float64))
        return SampleStats(confidence=np.concatenate([p.confidence for p in parts]).astype(np.float64),
                           correct=np.concatenate([p.correct for p in parts]).astype(bool),
                           nll=np.concatenate([p.nll for p in parts]).astype(np.float64), prob_sq_sum=squares)


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise InvalidValueError(f"expected logits [N, K] and labels [N], got {tuple(logits.shape)} and "
                                f"{tuple(labels.shape)}; pass one row of logits per label")
    if not logits.is_floating_point():
        raise InvalidValueError(f"logits must be a float tensor, got {logits.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]):
        raise InvalidValueError(f"labels must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} classes, "
                                f"got range [{int(labels.min())}, {int(labels.max())}]")


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax in at least float32 (half/bfloat16 logits are upcast; float64 stays float64)."""
    work_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    return torch.log_softmax(logits.detach().to(work_dtype), dim=1)


def sample_stats(logits: torch.Tensor, labels: torch.Tensor) -> SampleStats:
    """Confidence (max softmax prob), correctness of the argmax (ties → first index) and NLL per sample."""
    _check_logits_labels(logits, labels)
    log_probs = _log_probs(logits)
    labels = labels.to(device=log_probs.device, dtype=torch.int64)
    max_log_prob, prediction = log_probs.max(dim=1)
    nll = -log_probs.gather(1, labels[:, None])[:, 0]
    return SampleStats(confidence=max_log_prob.exp().cpu().numpy().astype(np.float64),
                       correct=(prediction == labels).cpu().numpy(),
                       nll=nll.cpu().numpy().astype(np.float64),
                       prob_sq_sum=log_probs.mul(2).exp().sum(dim=1).cpu().numpy().astype(np.float64))


def error_rate(correct: ArrayLike) -> float:
    """Top-1 error: the fraction of samples not correct (NaN for no samples)."""
    correct = _to_numpy(correct, bool, "correct")
    return float("nan") if correct.size == 0 else float(1.0 - correct.mean(dtype=np.float64))


def mean_nll(nll: ArrayLike) -> float:
    """Mean negative log-likelihood of the true label (NaN for no samples)."""
    nll = _to_numpy(nll, np.float64, "nll")
    return float("nan") if nll.size == 0 else float(nll.mean())


# ---------------------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------------------

# A norm reduces the per-bin |accuracy − confidence| gaps given the bin weights n_b / N.
CALIBRATION_NORMS: Registry[Callable[[np.ndarray, np.ndarray], float]] = Registry("calibration norm")
CALIBRATION_NORMS.register("l1", lambda gap, weight: float(np.sum(weight * gap)))
CALIBRATION_NORMS.register("l2", lambda gap, weight: float(np.sqrt(np.sum(weight * gap**2))))
# Empty bins have weight 0 and gap 0, and every gap is ≥ 0, so a max over all bins is the max over non-empty ones.
CALIBRATION_NORMS.register("max", lambda gap, weight: float(np.max(gap[weight > 0])))


def calibration_error(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15, norm: str = "l1") -> float:
    """Top-label calibration error with equal-width bins, as torchmetrics `_ce_compute` (anchors §4.5).

    Bins: boundaries are torchmetrics' float32 `linspace(0, 1, n_bins + 1)`; a sample goes to bin
    `bucketize(conf, boundaries, right=True) − 1`, i.e. bin b holds [b/n, (b+1)/n). Like torchmetrics' current
    code, a confidence of exactly 1.0 goes to an extra (n_bins+1-th) bin of its own; 0.0 goes to bin 0.
    norm 'l1' = ECE Σ_b (n_b/N)|acc_b − conf_b|, 'l2' = RMS sqrt(Σ_b (n_b/N)(acc_b − conf_b)²), 'max' = MCE
    max_b |acc_b − conf_b| over non-empty bins. Computed in float64 (torchmetrics casts confidences to float32
    first, so a confidence within float32 rounding of a boundary may bin differently). NaN for no samples.
    """
    reduce = CALIBRATION_NORMS.get(norm)
    _check_positive_int("n_bins", n_bins)
    confidence = _to_numpy(confidence, np.float64, "confidence")
    correct = _to_numpy(correct, np.float64, "correct")
    n = _same_length(confidence=confidence, correct=correct)
    _check_confidence(confidence)
    if n == 0:
        return float("nan")
    boundaries = torch.linspace(0, 1, n_bins + 1, dtype=torch.float32).numpy().astype(np.float64)
    bin_index = np.searchsorted(boundaries, confidence, side="right") - 1  # == torch.bucketize(right=True) − 1
    count = np.bincount(bin_index, minlength=n_bins + 1)
    filled = count > 0
    mean_conf = np.bincount(bin_index, weights=confidence, minlength=n_bins + 1)[filled] / count[filled]
    accuracy = np.bincount(bin_index, weights=correct, minlength=n_bins + 1)[filled] / count[filled]
    return reduce(np.abs(accuracy - mean_conf), count[filled] / n)


def rms_calibration_error_adaptive(confidence: ArrayLike, correct: ArrayLike, beta: int = 100) -> float:
    """Hendrycks' RMS calibration error `calib_err(p='2', beta)` with equal-mass bins (anchors §2.6).

    Samples are sorted ascending by confidence (a stable sort: equal confidences keep their input order; the
    reference's numpy default sort leaves that order unspecified), cut into N // beta consecutive bins of beta
    samples, the last one absorbing the remainder, and — as the reference does — the LAST bin is skipped, so
    the weights n_b/N sum to < 1: sqrt(Σ_{b < last} (beta/N)(mean conf_b − mean correct_b)²). With exactly one
    bin (beta ≤ N < 2·beta) nothing is summed and the value is 0.0, as in the reference. N < beta crashes the
    reference; here it returns NaN.
    """
    _check_positive_int("beta", beta)
    confidence = _to_numpy(confidence, np.float64, "confidence")
    correct = _to_numpy(correct, np.float64, "correct")
    n = _same_length(confidence=confidence, correct=correct)
    _check_confidence(confidence)
    if n < beta:
        return float("nan")
    order = np.argsort(confidence, kind="stable")
    used_bins = n // beta - 1
    used = order[: used_bins * beta]
    gap = confidence[used].reshape(used_bins, beta).mean(axis=1) - correct[used].reshape(used_bins, beta).mean(axis=1)
    return float(np.sqrt(np.sum(beta / n * gap**2)))


def brier_score(nll: ArrayLike, prob_sq_sum: ArrayLike) -> float:
    """Multi-class Brier score (Brier 1950): mean over samples of Σ_k (p_k − y_k)² = Σ_k p_k² − 2·p_y + 1,
    with p_y = exp(−NLL). Ranges over [0, 2]; NaN for no samples."""
    nll = _to_numpy(nll, np.float64, "nll")
    prob_sq_sum = _to_numpy(prob_sq_sum, np.float64, "prob_sq_sum")
    n = _same_length(nll=nll, prob_sq_sum=prob_sq_sum)
    if n == 0:
        return float("nan")
    return float(np.mean(prob_sq_sum - 2.0 * np.exp(-nll) + 1.0))


def calibration_error_equal_mass(confidence: ArrayLike, correct: ArrayLike, n_bins: int = 15) -> float:
    """Adaptive (equal-mass) ECE (Nguyen & O'Connor 2015; Nixon et al. 2019): samples sorted ascending by
    confidence (stable) are split into `n_bins` consecutive bins of ⌊N/n⌋ or ⌈N/n⌉ samples (the first N mod n
    bins take one more, as numpy.array_split), then Σ_b (n_b/N)|acc_b − conf_b|. No bin is dropped (unlike
    Hendrycks' RMS scheme). NaN for no samples; fewer samples than bins gives one sample per bin."""
    _check_positive_int("n_bins", n_bins)
    confidence = _to_numpy(confidence, np.float64, "confidence")
    correct = _to_numpy(correct, np.float64, "correct")
    n = _same_length(confidence=confidence, correct=correct)
    _check_confidence(confidence)
    if n == 0:
        return float("nan")
    bins = min(n_bins, n)
    order = np.argsort(confidence, kind="stable")
    sizes = np.full(bins, n // bins)
    sizes[: n % bins] += 1
    bin_of_rank = np.repeat(np.arange(bins), sizes)
    conf_sum = np.bincount(bin_of_rank, weights=confidence[order], minlength=bins)
    acc_sum = np.bincount(bin_of_rank, weights=correct[order], minlength=bins)
    return float(np.sum(np.abs(acc_sum - conf_sum)) / n)


def aurra(confidence: ArrayLike, correct: ArrayLike) -> float:
    """Area under the response-rate/accuracy curve, as Hendrycks' calibration_tools `aurra`.

    Samples are answered from most to least confident; the value is the mean over k = 1..N of the accuracy of
    the k most confident. Ties: the reference reverses numpy's default (unspecified-order) ascending argsort;
    here the ascending sort is stable and reversed, so among equal confidences the LATER sample is answered
    first. Ties only matter when tied samples differ in correctness. NaN for no samples.
    """
    confidence = _to_numpy(confidence, np.float64, "confidence")
    correct = _to_numpy(correct, np.float64, "correct")
    n = _same_length(confidence=confidence, correct=correct)
    if n == 0:
        return float("nan")
    most_confident_first = np.argsort(confidence, kind="stable")[::-1]
    accuracy_at_k = np.cumsum(correct[most_confident_first]) / np.arange(1, n + 1)
    return float(accuracy_at_k.mean())


# ---------------------------------------------------------------------------------------------------------
# Poolable calibration: per-bin sums that add up over parts (corruptions × severities)
# ---------------------------------------------------------------------------------------------------------

# MAGN's evaluation code (TheoT1/DiGN test-cal-c.py `calibr_metrics`): bin width 0.0666, so ceil(1/0.0666) = 16
# equal-width bins on linspace(0, 1, 17), each right-closed (low, high], over the pooled corrupted test set.
POOLED_CALIBRATION_BINS = 16


@dataclass
class CalibrationBins:
    """Per-bin sample count, confidence sum and correct sum of equal-width, right-closed bins.

    Sums add, so the bins of several parts (e.g. the 18 × 5 corruption sets of MAGN's Table 3) pool into
    the bins of their union exactly (`pool_calibration_bins`)."""

    count: np.ndarray            # int64 [n_bins]
    confidence_sum: np.ndarray   # float64 [n_bins]
    correct_sum: np.ndarray      # int64 [n_bins]

    @property
    def n_bins(self) -> int:
        return len(self.count)

    def to_json(self) -> str:
        """Compact text for a results column; floats round-trip exactly (repr)."""
        import json
        return json.dumps({"bins": self.n_bins, "edges": "equal-width, right-closed (low, high]",
                           "count": [int(v) for v in self.count],
                           "confidence_sum": [float(v) for v in self.confidence_sum],
                           "correct_sum": [int(v) for v in self.correct_sum]}, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> "CalibrationBins":
        import json
        try:
            values = json.loads(text)
            bins = CalibrationBins(count=np.asarray(values["count"], dtype=np.int64),
                                   confidence_sum=np.asarray(values["confidence_sum"], dtype=np.float64),
                                   correct_sum=np.asarray(values["correct_sum"], dtype=np.int64))
        except (TypeError, ValueError, KeyError) as error:
            raise InvalidValueError(f"calibration bins are not valid JSON with count/confidence_sum/correct_sum: "
                                    f"{error}") from None
        if not len(bins.count) == len(bins.confidence_sum) == len(bins.correct_sum):
            raise InvalidValueError("calibration bins: count, confidence_sum and correct_sum differ in length")
        return bins


def calibration_bin_sums(confidence: ArrayLike, correct: ArrayLike,
                         n_bins: int = POOLED_CALIBRATION_BINS) -> CalibrationBins:
    """Equal-width bins on linspace(0, 1, n_bins + 1), bin b = (b/n, (b+1)/n] as MAGN's code compares
    `p > low & p <= high`. A confidence of exactly 0 (impossible for a max softmax) goes to bin 0 here;
    the reference would count it in N but in no bin."""
    _check_positive_int("n_bins", n_bins)
    confidence = _to_numpy(confidence, np.float64, "confidence")
    correct = _to_numpy(correct, np.float64, "correct")
    _same_length(confidence=confidence, correct=correct)
    _check_confidence(confidence)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    return CalibrationBins(count=np.bincount(bin_index, minlength=n_bins).astype(np.int64),
                           confidence_sum=np.bincount(bin_index, weights=confidence, minlength=n_bins),
                           correct_sum=np.rint(np.bincount(bin_index, weights=correct, minlength=n_bins))
                           .astype(np.int64))


def pool_calibration_bins(parts: Sequence[CalibrationBins]) -> CalibrationBins:
    """The bins of the union of the parts' samples (all parts must use the same binning)."""
    if not parts:
        raise InvalidValueError("pool_calibration_bins needs at least one part")
    sizes = {p.n_bins for p in parts}
    if len(sizes) > 1:
        raise InvalidValueError(f"cannot pool calibration bins of different sizes {sorted(sizes)}")
    return CalibrationBins(count=np.sum([p.count for p in parts], axis=0).astype(np.int64),
                           confidence_sum=np.sum([p.confidence_sum for p in parts], axis=0),
                           correct_sum=np.sum([p.correct_sum for p in parts], axis=0).astype(np.int64))


def binned_calibration_error(bins: CalibrationBins, norm: str = "l2") -> float:
    """Calibration error from bin sums: 'l2' = RMS sqrt(Σ_b (n_b/N)(acc_b − conf_b)²), 'l1' = ECE,
    'max' = MCE over non-empty bins (MAGN's RMSE and ECE, test-cal-c.py). NaN for no samples."""
    reduce = CALIBRATION_NORMS.get(norm)
    total = int(bins.count.sum())
    if total == 0:
        return float("nan")
    filled = bins.count > 0
    count = bins.count[filled].astype(np.float64)
    gap = np.abs(bins.correct_sum[filled] / count - bins.confidence_sum[filled] / count)
    return reduce(gap, count / total)


# Temperatures are searched in this range; the NLL may keep decreasing beyond it (e.g. separable data).
TEMPERATURE_RANGE = (1e-2, 1e2)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature T > 0 minimising the mean NLL of softmax(logits / T) (Guo et al. 2017, temperature scaling).

    The NLL is convex in β = 1/T, so its derivative in β is increasing; its root is found by Newton steps
    safeguarded by bisection, in float64, within 1/T ∈ [1/100, 1/0.01]. If the NLL still decreases at a bound
    (the root lies outside), that bound's temperature is returned. Deterministic: no randomness, fixed order.
    """
    _check_logits_labels(logits, labels)
    if logits.shape[0] == 0:
        raise InvalidValueError("fit_temperature needs at least one sample; pass a non-empty validation set")
    z = logits.detach().to(torch.float64)
    z_label = z.gather(1, labels.to(device=z.device, dtype=torch.int64)[:, None])[:, 0]

    def slope_and_curvature(beta: float) -> tuple[float, float]:
        # d/dβ mean NLL = mean(E_p[z] − z_y); d²/dβ² = mean(Var_p[z]) ≥ 0, with p = softmax(β z).
        p = torch.softmax(beta * z, dim=1)
        mean_z = (p * z).sum(1)
        var_z = (p * (z - mean_z[:, None]) ** 2).sum(1)
        return float((mean_z - z_label).mean()), float(var_z.mean())

    low, high = 1.0 / TEMPERATURE_RANGE[1], 1.0 / TEMPERATURE_RANGE[0]
    if slope_and_curvature(low)[0] >= 0:
        return TEMPERATURE_RANGE[1]
    if slope_and_curvature(high)[0] <= 0:
        return TEMPERATURE_RANGE[0]
    beta = 1.0
    for _ in range(100):
        slope, curvature = slope_and_curvature(beta)
        if slope == 0:
            break
        if slope > 0:
            high = beta
        else:
            low = beta
        newton = beta - slope / curvature if curvature > 0 else math.nan
        next_beta = newton if low < newton < high else 0.5 * (low + high)
        converged = abs(next_beta - beta) <= 1e-12 * beta
        beta = next_beta
        if converged:
            break
    return 1.0 / beta


# ---------------------------------------------------------------------------------------------------------
# mCE
# ---------------------------------------------------------------------------------------------------------

# AlexNet ImageNet-C top-1 error per severity 1..5 (hendrycks/robustness README table, anchors §2.4).
ALEXNET_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
    "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
    "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
    "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
    "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
}
# torchvision AlexNet acc@1 56.522 (anchors §2.4, hendrycks/robustness issue #38).
ALEXNET_CLEAN_ERROR: float = 0.43478


def corruption_error(errors: Sequence[float], normaliser: Sequence[float] | None) -> float:
    """CE_c = Σ_s E_s / Σ_s E^ref_s (Hendrycks & Dietterich 2019, anchors §2.4); normaliser None → mean_s E_s."""
    errors_array = np.asarray(errors, dtype=np.float64)
    if errors_array.ndim != 1 or errors_array.size == 0:
        raise InvalidValueError(f"errors must be a non-empty list of per-severity errors, got {errors!r}")
    if normaliser is None:
        return float(errors_array.mean())
    reference = np.asarray(normaliser, dtype=np.float64)
    if reference.shape != errors_array.shape:
        raise InvalidValueError(f"got {errors_array.size} severity errors but {reference.size} normaliser "
                                "errors; pass the normaliser's errors for the same severities")
    denominator = float(reference.sum())
    if denominator == 0:
        raise InvalidValueError("the normaliser's errors sum to 0; a corruption error cannot be normalised by it")
    return float(errors_array.sum()) / denominator


def mce(errors: Mapping[str, Sequence[float]], normaliser: Mapping[str, Sequence[float]] | None, *,
        relative: bool = False, clean_error: float | None = None,
        normaliser_clean_error: float | None = None) -> float:
    """Mean corruption error over the corruptions in `errors` (Hendrycks & Dietterich 2019, anchors §2.4).

    mCE = mean_c CE_c with CE_c = Σ_s E_{s,c} / Σ_s E^ref_{s,c}; normaliser None gives the unnormalised mean
    error (what CIFAR papers report). relative=True: CE_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^ref_{s,c} −
    E^ref_clean), or mean_s (E_{s,c} − E_clean) without a normaliser. A fraction: AlexNet itself scores 1.0.
    """
    if not errors:
        raise InvalidValueError("mce needs at least one corruption's errors")
    if relative:
        if clean_error is None:
            raise InvalidValueError("relative mCE needs clean_error (the model's clean top-1 error)")
        if normaliser is not None and normaliser_clean_error is None:
            raise InvalidValueError("relative mCE with a normaliser needs normaliser_clean_error "
                                    "(e.g. ALEXNET_CLEAN_ERROR for the AlexNet table)")
    per_corruption = []
    for name, corruption_errors in errors.items():
        reference = None
        if normaliser is not None:
            if name not in normaliser:
                raise MissingNormaliserError(f"the mCE normaliser has no errors for corruption '{name}'; "
                                             "drop it or use the unnormalised mean (normaliser None)")
            reference = np.asarray(normaliser[name], dtype=np.float64)
        values = np.asarray(corruption_errors, dtype=np.float64)
        if relative:
            values = values - clean_error
            if reference is not None:
                reference = reference - normaliser_clean_error
        per_corruption.append(corruption_error(values, reference))
    return float(np.mean(per_corruption))


# ---------------------------------------------------------------------------------------------------------
# -P (stability) metrics
# ---------------------------------------------------------------------------------------------------------

def is_noise_perturbation(name: str) -> bool:
    """The reference's rule (cifar-p-eval `'noise' in name`): noise sequences compare every frame with frame 0."""
    return "noise" in name


def topk_ordinal(logits: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Indices [..., k] of the k top classes in rank order; ties as scipy rankdata(-z, 'ordinal') (spec B.3)."""
    _check_positive_int("k", k)
    if logits.shape[-1] < k:
        raise InvalidValueError(f"top-{k} needs at least {k} classes, got {logits.shape[-1]}")
    # A stable ascending sort of −z keeps equal logits in index order: the earlier class gets the better rank.
    return torch.argsort(-logits, dim=-1, stable=True)[..., :k]


def _frame_pairs(n_frames: int, noise: bool, difficulty: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (reference, compared) of every pair, following cifar-p-eval (spec B.3).

    Noise: (0, t) for t ≥ 1, whatever the difficulty (the reference always uses step 1 there). Otherwise the
    chains f_i, f_{i+d}, … compare consecutive elements, i.e. the pairs (t − d, t) for t ≥ d.
    """
    _check_positive_int("difficulty", difficulty)
    step = 1 if noise else difficulty
    if n_frames <= step:
        raise InvalidValueError(f"a sequence of {n_frames} frames has no frame pairs at step {step}; "
                                f"pass at least {step + 1} frames per video")
    compared = np.arange(step, n_frames)
    reference = np.zeros_like(compared) if noise else compared - step
    return reference, compared


def _video_array(values: np.ndarray | torch.Tensor, ndim: int, layout: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.ndim != ndim or not np.issubdtype(values.dtype, np.integer):
        raise InvalidValueError(f"expected an integer array {layout}, got {values.dtype} of shape {values.shape}")
    if values.shape[0] == 0:
        raise InvalidValueError(f"expected an integer array {layout} with at least one video, got none")
    return values


def flip_probability(predictions: np.ndarray | torch.Tensor, *, noise: bool, difficulty: int = 1) -> float:
    """Flip probability FP (Hendrycks & Dietterich 2019; cifar-p-eval `flip_prob`, spec B.3).

    predictions: int [N_videos, T] per-frame top-1 class. FP_video = mean over the video's frame pairs of
    1[p_a ≠ p_b]; FP = mean over videos (equal weight per video).
    """
    predictions = _video_array(predictions, 2, "[N_videos, T]")
    reference, compared = _frame_pairs(predictions.shape[1], noise, difficulty)
    flips = predictions[:, reference] != predictions[:, compared]
    return float(flips.mean(axis=1).mean())


def top5_distance(top5: np.ndarray | torch.Tensor, *, noise: bool, difficulty: int = 1) -> float:
    """Top-5 distance T5D (Hendrycks & Dietterich 2019; cifar-p-eval `ranking_dist(mode='top5')`, spec B.3).

    top5: int [N_videos, T, 5], the class indices at ranks 1..5 of each frame (`topk_ordinal`). For a pair
    a → b, d = Σ_{r=0..4} |r − min(σ_r − 1, 5)| with σ_r the 1-based rank in b of a's rank-(r+1) class; ranks
    beyond 5 are capped, so the class's position in b's top-5 (5 if absent) is all that is needed. Same frame
    pairing and per-video-then-over-videos averaging as `flip_probability`.
    """
    top5 = _video_array(top5, 3, "[N_videos, T, 5]")
    if top5.shape[2] != 5:
        raise InvalidValueError(f"expected the top-5 class indices [N_videos, T, 5], got shape {top5.shape}")
    reference, compared = _frame_pairs(top5.shape[1], noise, difficulty)
    before, after = top5[:, reference], top5[:, compared]               # [V, P, 5]
    same_class = before[..., :, None] == after[..., None, :]            # [V, P, 5 (old rank), 5 (new rank)]
    new_position = np.where(same_class.any(-1), same_class.argmax(-1), 5)
    distance = np.abs(np.arange(5) - new_position).sum(-1)              # [V, P]
    return float(distance.mean(axis=1).mean())
