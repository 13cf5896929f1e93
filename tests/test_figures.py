"""Paper figures from results rows: the plotted numbers by hand, benchmark and extra sets never pooled,
valid PNG and PDF files."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from corrbench.report import figures


def hand_rows() -> pd.DataFrame:
    """Two methods × two seeds; corruptions contrast, fog (benchmark) and spatter (extra); error of run r at
    (corruption c, severity s) = base_r + 0.01·s + offset_c."""
    rows = []
    offsets = {"contrast": 0.0, "fog": 0.1, "spatter": 0.3}
    for method, bases in (("standard", (0.10, 0.12)), ("augmix", (0.05, 0.07))):
        for seed, base in enumerate(bases):
            run_id = f"cifar10-resnet18-{method}-s{seed}"
            common = {"kind": "eval", "run_id": run_id, "method": method, "augment": "none", "arch": "resnet18",
                      "seed": seed, "suite": "cifar10-c", "flip_probability": np.nan}
            rows.append({**common, "corruption": "clean", "severity": 0, "benchmark": False, "error": base,
                         "ece": 0.01, "rms_adaptive": 0.02})
            for corruption, offset in offsets.items():
                for severity in range(1, 6):
                    rows.append({**common, "corruption": corruption, "severity": severity,
                                 "benchmark": corruption != "spatter", "error": base + 0.01 * severity + offset,
                                 "ece": 0.02 * severity, "rms_adaptive": 0.03 * severity})
    return pd.DataFrame(rows)


def test_severity_curve_is_the_seed_mean_with_a_t_interval():
    rows = figures._with_series(hand_rows())
    standard_fog = rows[(rows["series"] == "standard") & rows["corruption"].isin(["clean", "fog"])]
    severities, means, halves = figures._curve_by_severity(standard_fog, "error")
    assert severities.tolist() == [0, 1, 2, 3, 4, 5]
    expected = [0.11] + [0.11 + 0.01 * s + 0.1 for s in range(1, 6)]
    np.testing.assert_allclose(means, expected, rtol=1e-12)
    # two seeds 0.02 apart: s = 0.02/√2, half-width = t_{1, 0.975} · s / √2 = 12.7062 · 0.01
    np.testing.assert_allclose(halves, 12.706204736174707 * 0.01, rtol=1e-9)


def test_benchmark_and_extra_corruptions_are_never_pooled():
    sets = dict(figures._benchmark_split(hand_rows()))
    assert set(sets["benchmark"]["corruption"]) == {"clean", "contrast", "fog"}
    assert set(sets["extra"]["corruption"]) == {"clean", "spatter"}


def test_effective_robustness_points_use_benchmark_corruptions_only():
    summary = figures._run_summary(figures._with_series(hand_rows())).set_index("run_id")
    run = summary.loc["cifar10-resnet18-augmix-s1"]
    assert run["clean_error"] == pytest.approx(0.07, rel=1e-12)
    assert run["mean_ce"] == pytest.approx(0.07 + 0.03 + 0.05, rel=1e-12)   # mean of 0.01·s (0.03) and offsets 0, 0.1


def test_series_label_uses_the_label_of_external_models_and_arch_when_archs_differ():
    rows = hand_rows().head(2).copy()
    rows["label"] = ["mine", "theirs"]
    rows["model_source"] = ["run:x", "timm:resnet50"]
    assert figures.series_label(rows).tolist() == ["standard", "theirs"]
    rows["arch"] = ["resnet18", "resnet50"]
    assert figures.series_label(rows).tolist() == ["standard / resnet18", "theirs / resnet50"]


def test_suite_figures_writes_valid_png_and_pdf(tmp_path):
    written = figures.suite_figures(hand_rows(), tmp_path, suite="cifar10-c")
    names = sorted(p.name for p in written)
    for stem in ("error_vs_severity", "error_per_corruption", "effective_robustness", "ece_vs_severity",
                 "rms_vs_severity"):
        assert f"cifar10-c_{stem}.png" in names and f"cifar10-c_{stem}.pdf" in names
    for path in written:
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
        else:
            assert path.read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob(".*"))   # no temp files left


def test_flip_probability_and_training_curves(tmp_path):
    rows = pd.DataFrame([{"kind": "flip-rate", "run_id": f"r{seed}", "method": "standard", "augment": "none",
                          "arch": "a", "seed": seed, "corruption": p, "severity": 0, "benchmark": True,
                          "flip_probability": 0.01 * (seed + 1), "error": math.nan}
                         for seed in range(2) for p in ("gaussian_noise", "zoom_blur")])
    assert [p.suffix for p in figures.suite_figures(rows, tmp_path, suite="cifar10-p", formats=("png",))] == [".png"]
    log = pd.DataFrame({"epoch": [1, 2, 3], "loss": [2.0, 1.5, 1.2], "lr": [0.1, 0.05, 0.0],
                        "val_error": [0.5, np.nan, 0.3]})
    assert figures.training_curves({"run-a": log}, tmp_path / "curves.png").exists()
    assert figures.training_curves({}, tmp_path / "none.png") is None
