"""Metrics on hand-computed cases, and against brute-force forms of the published definitions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from corrbench import metrics as M
from corrbench.errors import InvalidValueError, UnknownNameError, UserError

# ----------------------------------------------------------------------------------------------------------
# Per-sample statistics
# ----------------------------------------------------------------------------------------------------------


def test_sample_stats_from_known_logits():
    # row 0: exp([0, ln3, 0]) = [1, 3, 1] → p = [1/5, 3/5, 1/5]; label 0 → NLL ln 5, predicted 1 (wrong), conf 3/5
    # row 1: exp([ln2, 0, 0]) = [2, 1, 1] → p = [1/2, 1/4, 1/4]; label 0 → NLL ln 2, correct, conf 1/2
    # row 2: [1, 1, 0] tie → argmax is the first index (0); label 0 → correct, conf e/(2e+1), NLL −ln(e/(2e+1))
    logits = torch.tensor([[0.0, math.log(3), 0.0], [math.log(2), 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0])
    stats = M.sample_stats(logits, labels)
    e = math.e
    np.testing.assert_allclose(stats.confidence, [3 / 5, 1 / 2, e / (2 * e + 1)], rtol=1e-12)
    np.testing.assert_array_equal(stats.correct, [False, True, True])
    np.testing.assert_allclose(stats.nll, [math.log(5), math.log(2), -math.log(e / (2 * e + 1))], rtol=1e-12)
    assert stats.confidence.dtype == np.float64 and stats.nll.dtype == np.float64 and stats.correct.dtype == bool
    assert M.mean_nll(stats.nll) == pytest.approx((math.log(5) + math.log(2) - math.log(e / (2 * e + 1))) / 3)
    assert M.error_rate(stats.correct) == pytest.approx(1 / 3)
    assert M.error_rate(torch.tensor([True, False, False, False])) == 0.75


def test_sample_stats_low_precision_logits_are_upcast():
    logits = torch.tensor([[0.0, math.log(3), 0.0]], dtype=torch.bfloat16)
    stats = M.sample_stats(logits, torch.tensor([1]))
    # bfloat16 rounds ln 3 (1.0986) to 1.1015625; the softmax itself runs in float32.
    z = 1.1015625
    assert stats.nll[0] == pytest.approx(-(z - math.log(2 + math.exp(z))), rel=1e-6)


def test_sample_stats_concat_keeps_order():
    a = M.SampleStats(np.array([0.5, 0.6]), np.array([True, False]), np.array([1.0, 2.0]))
    b = M.SampleStats(np.array([0.7]), np.array([True]), np.array([3.0]))
    joined = M.SampleStats.concat([a, b])
    np.testing.assert_array_equal(joined.confidence, [0.5, 0.6, 0.7])
    np.testing.assert_array_equal(joined.correct, [True, False, True])
    np.testing.assert_array_equal(joined.nll, [1.0, 2.0, 3.0])
    assert len(M.SampleStats.concat([])) == 0


def test_sample_stats_rejects_bad_shapes_and_labels():
    with pytest.raises(InvalidValueError, match="logits"):
        M.sample_stats(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(InvalidValueError, match="labels must lie in"):
        M.sample_stats(torch.zeros(2, 4), torch.tensor([0, 4]))


# ----------------------------------------------------------------------------------------------------------
# Equal-width calibration error (torchmetrics binning)
# ----------------------------------------------------------------------------------------------------------

# n_bins = 4 → bins [0, .25), [.25, .5), [.5, .75), [.75, 1) and torchmetrics' extra bin for exactly 1.0.
CONF = [0.0, 0.1, 0.3, 0.5, 0.6, 0.9, 1.0, 1.0]
CORRECT = [0, 1, 0, 1, 1, 1, 1, 0]
# bin 0: {0.0 ✗, 0.1 ✓}  conf .05, acc .5, gap .45, weight 2/8
# bin 1: {0.3 ✗}         conf .3,  acc 0,  gap .3,  weight 1/8
# bin 2: {0.5 ✓, 0.6 ✓}  conf .55, acc 1,  gap .45, weight 2/8   (0.5 is a left edge: right=True puts it here)
# bin 3: {0.9 ✓}         conf .9,  acc 1,  gap .1,  weight 1/8
# bin 4: {1.0 ✓, 1.0 ✗}  conf 1,   acc .5, gap .5,  weight 2/8
# l1  = (2·.45 + .3 + 2·.45 + .1 + 2·.5) / 8 = 3.2 / 8 = 0.4
#       (had 1.0 been folded into bin 3: bin 3 gap |2.9/3 − 2/3| = .3 at weight 3/8 → 3.0 / 8 = 0.375)
# l2  = sqrt((2·.2025 + .09 + 2·.2025 + .01 + 2·.25) / 8) = sqrt(1.41 / 8)
# max = .5


def test_calibration_error_hand_worked_with_zero_and_one():
    assert M.calibration_error(CONF, CORRECT, n_bins=4, norm="l1") == pytest.approx(0.4, rel=1e-12)
    assert M.calibration_error(CONF, CORRECT, n_bins=4, norm="l2") == pytest.approx(math.sqrt(1.41 / 8), rel=1e-12)
    assert M.calibration_error(CONF, CORRECT, n_bins=4, norm="max") == pytest.approx(0.5, rel=1e-12)


def test_calibration_error_accepts_torch_and_matches_numpy():
    from_torch = M.calibration_error(torch.tensor(CONF, dtype=torch.float64), torch.tensor(CORRECT, dtype=torch.bool),
                                     n_bins=4)
    assert from_torch == pytest.approx(0.4, rel=1e-12)


def test_calibration_error_torchmetrics_docstring_example():
    # torchmetrics binary_calibration_error docs: preds [.25,.25,.55,.75,.75], target [0,0,1,1,1], n_bins=2
    # bin [0,.5): conf .25, acc 0, gap .25, w .4; bin [.5,1): conf 2.05/3, acc 1, gap .95/3, w .6
    conf, correct = [0.25, 0.25, 0.55, 0.75, 0.75], [0, 0, 1, 1, 1]
    assert M.calibration_error(conf, correct, n_bins=2, norm="l1") == pytest.approx(0.29, rel=1e-12)
    expected_l2 = math.sqrt(0.4 * 0.25**2 + 0.6 * (0.95 / 3) ** 2)  # 0.2918 in the docs
    assert M.calibration_error(conf, correct, n_bins=2, norm="l2") == pytest.approx(expected_l2, rel=1e-12)
    assert M.calibration_error(conf, correct, n_bins=2, norm="max") == pytest.approx(0.95 / 3, rel=1e-12)


def test_calibration_error_rejects_bad_arguments():
    with pytest.raises(UnknownNameError, match="calibration norm 'l3'"):
        M.calibration_error(CONF, CORRECT, norm="l3")
    with pytest.raises(InvalidValueError, match="n_bins"):
        M.calibration_error(CONF, CORRECT, n_bins=0)
    with pytest.raises(InvalidValueError, match="logits"):
        M.calibration_error([1.5, 0.2], [1, 0])
    with pytest.raises(InvalidValueError, match="differ in length"):
        M.calibration_error([0.5, 0.2], [1])


# ----------------------------------------------------------------------------------------------------------
# Hendrycks adaptive RMS calibration error
# ----------------------------------------------------------------------------------------------------------


def _five_groups() -> tuple[np.ndarray, np.ndarray]:
    # 50 samples each at confidence .1, .3, .5, .7, .9 with 15, 15, 40, 40, 0 correct.
    conf = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], 50)
    correct = np.concatenate([np.arange(50) < n for n in (15, 15, 40, 40, 0)])
    shuffle = np.random.default_rng(0).permutation(250)  # the metric must sort by confidence itself
    return conf[shuffle], correct[shuffle]


def test_adaptive_rms_skips_the_last_bin():
    conf, correct = _five_groups()
    # N=250, beta=100 → N // beta = 2 bins: [0,100) and [100,250) (the last absorbs the remainder of 50).
    # Only bin 0 is used: the .1s and .3s, mean conf .2, accuracy 30/100 → gap −.1, weight 100/250.
    # The skipped bin (150 samples: mean conf .6667, accuracy 80/150) would have added a lot.
    # → sqrt(.4 · .01) = sqrt(.004)
    assert M.rms_calibration_error_adaptive(conf, correct, beta=100) == pytest.approx(math.sqrt(0.004), rel=1e-12)
    # beta=50 → 5 bins of 50, one per confidence; the last (.9) skipped.
    # gaps: .1 − .3 = −.2, .3 − .3 = 0, .5 − .8 = −.3, .7 − .8 = −.1 → sqrt(.2 · (.04 + 0 + .09 + .01)) = sqrt(.028)
    assert M.rms_calibration_error_adaptive(conf, correct, beta=50) == pytest.approx(math.sqrt(0.028), rel=1e-12)


def test_adaptive_rms_two_used_bins():
    conf, correct = _five_groups()
    conf = np.concatenate([conf, np.full(100, 0.95)])
    correct = np.concatenate([correct, np.ones(100, bool)])
    # N=350, beta=100 → bins [0,100), [100,200), [200,350), the last skipped. Used: {.1,.3} gap .2 − .3 = −.1 and
    # {.5,.7} gap .6 − .8 = −.2, each weight 100/350 → sqrt((100/350)(.01 + .04))
    assert M.rms_calibration_error_adaptive(conf, correct) == pytest.approx(math.sqrt(100 / 350 * 0.05), rel=1e-12)


def test_adaptive_rms_small_inputs():
    conf, correct = _five_groups()
    assert math.isnan(M.rms_calibration_error_adaptive(conf[:99], correct[:99], beta=100))
    # beta ≤ N < 2·beta: a single bin, which is the skipped last one → 0.0 as in the reference
    assert M.rms_calibration_error_adaptive(conf[:150], correct[:150], beta=100) == 0.0


# ----------------------------------------------------------------------------------------------------------
# AURRA
# ----------------------------------------------------------------------------------------------------------


def test_aurra_four_samples():
    # by confidence: .9 ✓, .8 ✗, .7 ✓, .6 ✗ → accuracy of the top k: 1, 1/2, 2/3, 2/4 → mean (8/3)/4 = 2/3
    assert M.aurra([0.9, 0.6, 0.8, 0.7], [1, 0, 0, 1]) == pytest.approx(2 / 3, rel=1e-12)
    assert M.aurra(torch.tensor([0.9, 0.6, 0.8, 0.7]), torch.tensor([True, False, False, True])) == pytest.approx(2 / 3)


def test_aurra_ties_answer_the_later_sample_first():
    # equal confidences: the later sample (✗) comes first → accuracies 0, 1/2 → 1/4
    assert M.aurra([0.5, 0.5], [1, 0]) == pytest.approx(0.25)
    assert M.aurra([0.5, 0.5], [0, 1]) == pytest.approx(0.75)


# ----------------------------------------------------------------------------------------------------------
# Temperature scaling
# ----------------------------------------------------------------------------------------------------------


def _synthetic_logits() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    true_logits = 2.0 * torch.randn(4000, 10, generator=gen)
    labels = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=gen)[:, 0]  # labels drawn from the model
    return true_logits, labels


def test_fit_temperature_recovers_a_known_temperature():
    true_logits, labels = _synthetic_logits()
    assert M.fit_temperature(true_logits * 3, labels) == pytest.approx(3.0, rel=0.05)
    assert M.fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.05)


def test_fit_temperature_is_the_nll_minimum_and_deterministic():
    true_logits, labels = _synthetic_logits()
    logits = true_logits * 3
    t = M.fit_temperature(logits, labels)
    assert M.fit_temperature(logits, labels) == t

    def nll(temperature: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits.double() / temperature, labels))

    assert nll(t) <= nll(t * 1.001) and nll(t) <= nll(t / 1.001)


# ----------------------------------------------------------------------------------------------------------
# mCE
# ----------------------------------------------------------------------------------------------------------

# The "avg" column of the AlexNet table (anchors §2.4): guards the transcription of the per-severity numbers.
ALEXNET_AVG = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880,
    "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572,
    "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500, "speckle_noise": 0.845388, "gaussian_blur": 0.787108,
    "spatter": 0.717512, "saturate": 0.658248,
}


def test_alexnet_table_matches_its_average_column():
    assert set(M.ALEXNET_ERRORS) == set(ALEXNET_AVG) and len(M.ALEXNET_ERRORS) == 19
    for name, per_severity in M.ALEXNET_ERRORS.items():
        assert len(per_severity) == 5
        assert sum(per_severity) / 5 == pytest.approx(ALEXNET_AVG[name], abs=1e-9), name


def test_mce_of_alexnet_itself_is_one():
    alexnet = {name: list(errs) for name, errs in M.ALEXNET_ERRORS.items()}
    assert M.mce(alexnet, M.ALEXNET_ERRORS) == pytest.approx(1.0, rel=1e-12)
    assert M.mce(alexnet, M.ALEXNET_ERRORS, relative=True, clean_error=M.ALEXNET_CLEAN_ERROR,
                 normaliser_clean_error=M.ALEXNET_CLEAN_ERROR) == pytest.approx(1.0, rel=1e-12)


def test_mce_hand_computed():
    errors = {"gaussian_noise": [0.5] * 5, "brightness": [0.3] * 5}
    # Σ_s AlexNet: gaussian_noise .69528+.82542+.93554+.98138+.99452 = 4.43214; brightness 2.82296
    expected = (2.5 / 4.43214 + 1.5 / 2.82296) / 2
    assert M.mce(errors, M.ALEXNET_ERRORS) == pytest.approx(expected, rel=1e-12)
    # relative, clean error .2: (2.5 − 1.0)/(4.43214 − 5·.43478) and (1.5 − 1.0)/(2.82296 − 2.1739)
    expected_relative = (1.5 / (4.43214 - 2.1739) + 0.5 / (2.82296 - 2.1739)) / 2
    assert M.mce(errors, M.ALEXNET_ERRORS, relative=True, clean_error=0.2,
                 normaliser_clean_error=M.ALEXNET_CLEAN_ERROR) == pytest.approx(expected_relative, rel=1e-12)
    # unnormalised: mean of the per-corruption mean errors; relative unnormalised subtracts the clean error
    assert M.mce(errors, None) == pytest.approx(0.4, rel=1e-12)
    assert M.mce(errors, None, relative=True, clean_error=0.2) == pytest.approx(0.2, rel=1e-12)


def test_corruption_error():
    assert M.corruption_error([0.1, 0.2, 0.3, 0.4, 0.5], None) == pytest.approx(0.3, rel=1e-12)
    assert M.corruption_error([0.1, 0.2], [0.4, 0.2]) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(InvalidValueError, match="same severities"):
        M.corruption_error([0.1, 0.2], M.ALEXNET_ERRORS["fog"])


def test_mce_missing_normaliser_names_the_corruption():
    with pytest.raises(ValueError, match="'translate'") as raised:
        M.mce({"fog": [0.5] * 5, "translate": [0.5] * 5}, M.ALEXNET_ERRORS)
    assert isinstance(raised.value, UserError)
    with pytest.raises(InvalidValueError, match="normaliser_clean_error"):
        M.mce({"fog": [0.5] * 5}, M.ALEXNET_ERRORS, relative=True, clean_error=0.1)


# ----------------------------------------------------------------------------------------------------------
# -P metrics
# ----------------------------------------------------------------------------------------------------------

PREDICTIONS = np.array([[0, 0, 1, 1, 0],
                        [2, 3, 3, 3, 3]])


def test_flip_probability_hand_built():
    # consecutive pairs: video 0 flips 0,1,0,1 → 2/4; video 1 flips 1,0,0,0 → 1/4; mean (1/2 + 1/4)/2
    assert M.flip_probability(PREDICTIONS, noise=False) == pytest.approx(0.375)
    # noise: every frame vs frame 0: video 0 [0,1,1,0] vs 0 → 2/4; video 1 [3,3,3,3] vs 2 → 4/4; mean 3/4
    assert M.flip_probability(PREDICTIONS, noise=True) == pytest.approx(0.75)
    # difficulty 2: pairs (0,2), (1,3), (2,4): video 0 (0≠1, 0≠1, 1≠0) → 1; video 1 (2≠3, 3=3, 3=3) → 1/3
    assert M.flip_probability(PREDICTIONS, noise=False, difficulty=2) == pytest.approx(2 / 3)
    # the reference always uses step 1 for noise sequences, whatever the difficulty
    assert M.flip_probability(PREDICTIONS, noise=True, difficulty=2) == pytest.approx(0.75)
    assert M.flip_probability(torch.from_numpy(PREDICTIONS), noise=False) == pytest.approx(0.375)


def _flip_probability_by_chains(predictions: np.ndarray, noise: bool, difficulty: int) -> float:
    """The reference's chain walk, written out per video: equal weight per video."""
    per_video = []
    for video in predictions:
        flips = []
        step = 1 if noise else difficulty
        for offset in range(step):
            chain = video[offset::step]
            previous = chain[0]
            for current in chain[1:]:
                flips.append(previous != current)
                if not noise:
                    previous = current
        per_video.append(np.mean(flips))
    return float(np.mean(per_video))


@pytest.mark.parametrize("noise,difficulty", [(False, 1), (False, 3), (True, 1), (True, 3)])
def test_flip_probability_matches_chain_walk(noise, difficulty):
    predictions = np.random.default_rng(1).integers(0, 3, size=(7, 11))
    assert M.flip_probability(predictions, noise=noise, difficulty=difficulty) == pytest.approx(
        _flip_probability_by_chains(predictions, noise, difficulty), rel=1e-12)


def test_flip_probability_rejects_too_short_sequences():
    with pytest.raises(InvalidValueError, match="frame pairs"):
        M.flip_probability(PREDICTIONS, noise=False, difficulty=5)


def test_top5_distance_hand_built():
    same = np.array([[[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]])
    assert M.top5_distance(same, noise=False) == 0.0
    swapped = np.array([[[0, 1, 2, 3, 4], [1, 0, 2, 3, 4]]])
    assert M.top5_distance(swapped, noise=False) == 2.0          # |0 − 1| + |1 − 0|
    # the top class falls out of the top-5: its term is |0 − 5| = 5, and classes 1..4 each move up one: 4
    dropped = np.array([[[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]])
    assert M.top5_distance(dropped, noise=False) == 9.0
    # noise pairs every frame with frame 0: (f0,f1)=2 and (f0,f2)=0 → 1; chained: (f0,f1)=2, (f1,f2)=2 → 2
    three = np.array([[[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [0, 1, 2, 3, 4]]])
    assert M.top5_distance(three, noise=True) == 1.0
    assert M.top5_distance(three, noise=False) == 2.0


def _paper_top5_distance(sigma: np.ndarray) -> int:
    """Σ_{i=1..5} Σ_{j=min(i,σ(i))+1}^{max(i,σ(i))} 1(1 ≤ j−1 ≤ 5), σ(i) the new rank of the old rank-i class."""
    total = 0
    for i in range(1, 6):
        s = int(sigma[i - 1])
        total += sum(1 for j in range(min(i, s) + 1, max(i, s) + 1) if 1 <= j - 1 <= 5)
    return total


def _top5_distance_from_full_rankings(logits: np.ndarray, noise: bool, difficulty: int) -> float:
    ranks = rankdata(-logits, method="ordinal", axis=-1)  # [V, T, K], 1 = top class
    step = 1 if noise else difficulty
    per_video = []
    for video_ranks in ranks:
        distances = []
        for t in range(step, len(video_ranks)):
            before = video_ranks[0] if noise else video_ranks[t - step]
            class_at_rank = np.argsort(before)        # class_at_rank[i − 1] = the class ranked i before
            sigma = video_ranks[t][class_at_rank]     # its new rank
            distances.append(_paper_top5_distance(sigma))
        per_video.append(np.mean(distances))
    return float(np.mean(per_video))


@pytest.mark.parametrize("noise,difficulty", [(False, 1), (False, 2), (True, 1)])
def test_top5_distance_matches_paper_formula_on_random_logits(noise, difficulty):
    gen = torch.Generator().manual_seed(2)
    # rounding to one decimal makes ties, so the tie rule of topk_ordinal is exercised too
    logits = torch.round(torch.randn(4, 6, 12, generator=gen), decimals=1)
    top5 = M.topk_ordinal(logits, 5).numpy()
    expected = _top5_distance_from_full_rankings(logits.numpy(), noise, difficulty)
    assert expected > 0
    assert M.top5_distance(top5, noise=noise, difficulty=difficulty) == pytest.approx(expected, rel=1e-12)


def test_topk_ordinal_tie_rule_matches_rankdata():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randint(0, 4, (3, 20, 8), generator=gen).to(torch.float32)  # many ties
    top5 = M.topk_ordinal(logits, 5)
    ranks = rankdata(-logits.numpy(), method="ordinal", axis=-1)
    expected = np.argsort(ranks, axis=-1)[..., :5]  # the class at ranks 1..5
    np.testing.assert_array_equal(top5.numpy(), expected)
    assert M.topk_ordinal(torch.tensor([1.0, 3.0, 3.0, 0.0]), 2).tolist() == [1, 2]
    with pytest.raises(InvalidValueError, match="at least 5 classes"):
        M.topk_ordinal(torch.zeros(2, 3), 5)


def test_is_noise_perturbation():
    assert M.is_noise_perturbation("gaussian_noise") and M.is_noise_perturbation("speckle_noise_2")
    assert not M.is_noise_perturbation("motion_blur") and not M.is_noise_perturbation("translate")
