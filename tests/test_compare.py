"""Paired comparison: differences, paired bootstrap, McNemar and Holm on hand-made per-image results."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from corrbench.errors import InvalidValueError, MissingDataError, UnknownNameError
from corrbench.report.compare import compare, pack_correct, unpack_correct
from corrbench.stats import clustered_mcnemar_exact, paired_bootstrap_difference

N = 400


def rows_for(method: str, seed: int, patterns: dict[tuple[str, int], np.ndarray], **extra) -> list[dict]:
    rows = []
    for (corruption, severity), correct in patterns.items():
        rows.append({"kind": "eval", "run_id": f"{method}-s{seed}", "label": f"{method}-s{seed}", "method": method,
                     "augment": "none", "suite": "cifar10-c", "source": "generated", "generator_seed": 0,
                     "corruption": corruption, "severity": severity, "benchmark": corruption != "clean",
                     "n": N, "error": 1 - correct.mean(), "sample_correct": pack_correct(correct), **extra})
    return rows


def patterns(rng, accuracy: dict[str, float]) -> dict[tuple[str, int], np.ndarray]:
    out = {("clean", 0): rng.random(N) < 0.9}
    for corruption, acc in accuracy.items():
        for severity in (1, 2):
            out[(corruption, severity)] = rng.random(N) < acc
    return out


def test_pack_round_trips():
    correct = np.random.default_rng(0).random(13) < 0.5
    assert unpack_correct(pack_correct(correct), 13).tolist() == correct.tolist()


def test_compare_finds_the_better_model_where_it_is_and_only_there():
    rng = np.random.default_rng(1)
    base = patterns(rng, {"fog": 0.6, "contrast": 0.7})
    better = {k: v.copy() for k, v in base.items()}
    flip = rng.random(N) < 0.5                       # B fixes half of A's fog errors at both severities
    for severity in (1, 2):
        better[("fog", severity)] = base[("fog", severity)] | flip
    frame = pd.DataFrame(rows_for("a", 0, base) + rows_for("b", 0, better))
    result = compare(frame, "a", "b", resamples=500)
    fog = result.corruptions.set_index("corruption").loc["fog"]
    ca = np.concatenate([base[("fog", s)] for s in (1, 2)])
    cb = np.concatenate([better[("fog", s)] for s in (1, 2)])
    only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
    assert only_a == 0 and only_b > 50
    # severities of an image are one cluster: the test equals the clustered exact McNemar on [severity, image]
    stacked = (np.stack([base[("fog", s)] for s in (1, 2)]), np.stack([better[("fog", s)] for s in (1, 2)]))
    assert fog["p_value"] == pytest.approx(clustered_mcnemar_exact(*stacked), rel=1e-12)
    assert 0 < fog["p_value"] < 1e-6
    assert fog["p_value"] > binomtest(only_a, only_a + only_b, 0.5).pvalue   # pooling pairs would overstate it
    assert fog["difference"] == pytest.approx(cb.mean() - ca.mean(), abs=1e-12)   # A's error − B's error
    assert fog["verdict"] == "B better" and fog["high"] > fog["low"] > 0
    contrast = result.corruptions.set_index("corruption").loc["contrast"]
    assert contrast["difference"] == 0 and contrast["p_value"] == 1.0 and contrast["verdict"] == "n.s."
    assert (result.a_better, result.b_better) == (0, 1)
    stacked_a = np.stack([base[k] for k in [("contrast", 1), ("contrast", 2), ("fog", 1), ("fog", 2)]])
    stacked_b = np.stack([better[k] for k in [("contrast", 1), ("contrast", 2), ("fog", 1), ("fog", 2)]])
    assert result.overall["difference"] == pytest.approx(
        paired_bootstrap_difference(stacked_a, stacked_b).estimate, abs=1e-12)
    assert len(result.cells) == 5 and set(result.cells["severity"]) == {0, 1, 2}


def test_compare_averages_seeds_per_image_and_checks_images_match():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rows_for("a", 0, patterns(rng, {"fog": 0.5})) + rows_for("a", 1, patterns(rng, {"fog": 0.5}))
                         + rows_for("b", 0, patterns(rng, {"fog": 0.5})))
    result = compare(frame, "a", "b", resamples=200)
    assert (result.seeds_a, result.seeds_b) == (2, 1)
    other = frame.copy()
    other.loc[other["method"] == "b", "generator_seed"] = 1
    with pytest.raises(InvalidValueError, match="different images"):
        compare(other, "a", "b")
    with pytest.raises(UnknownNameError, match="unknown run 'a-s9'. Did you mean 'a-s[01]'"):
        compare(frame, "a-s9", "b")
    with pytest.raises(MissingDataError):
        compare(frame.drop(columns=["sample_correct"]), "a", "b")
