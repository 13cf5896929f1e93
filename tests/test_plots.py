"""Plots: reliability binning by hand, valid image files, atomic writes, input checks."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from corrbench.errors import InvalidValueError, WriteError
from corrbench.metrics import calibration_error
from corrbench.report import plots
from corrbench.report.plots import (bin_reliability, error_per_corruption, error_vs_severity,
                                    reliability_diagram, reliability_diagram_from_bins)


def assert_png(path: Path, min_side: int = 300) -> None:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) >= min_side and max(image.size) <= 4000


def test_bin_reliability_by_hand() -> None:
    # 4 bins [0,.25) [.25,.5) [.5,.75) [.75,1]: an edge starts the upper bin and 1.0 joins the last bin.
    confidence = np.array([0.0, 0.2, 0.25, 0.3, 0.5, 0.74, 0.75, 1.0])
    correct = np.array([0, 1, 1, 0, 1, 1, 0, 1])
    bin_confidence, bin_accuracy, bin_count = bin_reliability(confidence, correct, 4)
    np.testing.assert_allclose(bin_confidence, [0.1, 0.275, 0.62, 0.875])
    np.testing.assert_allclose(bin_accuracy, [0.5, 0.5, 1.0, 0.5])
    np.testing.assert_array_equal(bin_count, [2, 2, 2, 2])
    assert bin_count.dtype == np.int64


def test_bin_reliability_empty_bins_are_nan_with_zero_count() -> None:
    bin_confidence, bin_accuracy, bin_count = bin_reliability(np.array([0.1, 0.9, 0.95]),
                                                              np.array([True, False, True]), 5)
    np.testing.assert_array_equal(bin_count, [1, 0, 0, 0, 2])
    np.testing.assert_allclose(bin_confidence[[0, 4]], [0.1, 0.925])
    np.testing.assert_allclose(bin_accuracy[[0, 4]], [1.0, 0.5])
    assert np.isnan(bin_confidence[1:4]).all() and np.isnan(bin_accuracy[1:4]).all()


def test_bin_reliability_accepts_torch_tensors() -> None:
    bins = bin_reliability(torch.tensor([0.1, 0.9, 0.95]), torch.tensor([True, False, True]), 5)
    np.testing.assert_array_equal(bins[2], [1, 0, 0, 0, 2])


@pytest.mark.parametrize("n_bins", [10, 15])
def test_each_bin_edge_starts_its_bin(n_bins: int) -> None:
    lower_edges = plots._bin_edges(n_bins)[:-1]
    counts = bin_reliability(lower_edges, np.ones(n_bins), n_bins)[2]
    np.testing.assert_array_equal(counts, np.ones(n_bins))
    just_below = lower_edges[1:] - 1e-9
    counts = bin_reliability(just_below, np.ones(n_bins - 1), n_bins)[2]
    np.testing.assert_array_equal(counts, [1] * (n_bins - 1) + [0])


@pytest.mark.parametrize("n_bins", [10, 15])
def test_bins_give_the_ece_of_metrics(n_bins: int) -> None:
    # The diagram's bins must be the bins behind the ECE in the report's tables (float32 data, edges included).
    generator = torch.Generator().manual_seed(0)
    confidence = torch.rand(3000, generator=generator)
    confidence[:n_bins] = torch.linspace(0, 1, n_bins + 1)[:-1]
    correct = torch.rand(3000, generator=generator) < confidence
    ece_of_bins = plots._expected_calibration_error(*bin_reliability(confidence, correct, n_bins))
    assert ece_of_bins == pytest.approx(calibration_error(confidence, correct.double(), n_bins), abs=1e-12)


def test_bin_reliability_rejects_bad_input() -> None:
    with pytest.raises(InvalidValueError, match=r"\[0, 1\]"):
        bin_reliability(np.array([0.5, 1.5]), np.array([1, 0]), 10)
    with pytest.raises(InvalidValueError, match=r"\[0, 1\]"):
        bin_reliability(np.array([np.nan]), np.array([1]), 10)
    with pytest.raises(InvalidValueError, match="equal length"):
        bin_reliability(np.array([0.5, 0.5]), np.array([1]), 10)
    with pytest.raises(InvalidValueError, match="n_bins"):
        bin_reliability(np.array([0.5]), np.array([1]), 0)
    with pytest.raises(InvalidValueError, match="no predictions"):
        reliability_diagram(np.array([]), np.array([]), Path("unused.png"))


def test_ece_from_bins_by_hand() -> None:
    # Equal counts: mean of |acc - conf| = (0.4 + 0.225 + 0.38 + 0.375) / 4.
    ece = plots._expected_calibration_error(np.array([0.1, 0.275, 0.62, 0.875]),
                                            np.array([0.5, 0.5, 1.0, 0.5]), np.array([2, 2, 2, 2]))
    assert ece == pytest.approx(0.345)
    # Empty bins (NaN) are ignored; weights are counts.
    ece = plots._expected_calibration_error(np.array([0.2, np.nan, 0.9]), np.array([0.0, np.nan, 1.0]),
                                            np.array([1, 0, 3]))
    assert ece == pytest.approx(0.25 * 0.2 + 0.75 * 0.1)


def test_reliability_diagram_writes_png_identical_to_from_bins(tmp_path: Path) -> None:
    generator = np.random.default_rng(0)
    confidence = generator.uniform(0.4, 1.0, 500)  # the low bins stay empty
    correct = generator.uniform(size=500) < confidence
    direct = reliability_diagram(confidence, correct, tmp_path / "direct.png", n_bins=10, title="ERM")
    from_bins = reliability_diagram_from_bins(*bin_reliability(confidence, correct, 10),
                                              tmp_path / "bins.png", title="ERM")
    assert direct == tmp_path / "direct.png" and from_bins == tmp_path / "bins.png"
    assert_png(direct)
    assert direct.read_bytes() == from_bins.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["bins.png", "direct.png"]


def test_reliability_from_bins_rejects_no_predictions(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="at least one prediction"):
        reliability_diagram_from_bins([np.nan] * 3, [np.nan] * 3, [0, 0, 0], tmp_path / "r.png")
    with pytest.raises(InvalidValueError, match="1-D"):
        reliability_diagram_from_bins([0.5], [0.5, 0.5], [1, 1], tmp_path / "r.png")
    assert os.listdir(tmp_path) == []


def test_error_per_corruption_png_with_a_missing_bar(tmp_path: Path) -> None:
    errors = {"ERM": {"gaussian_noise": 48.2, "fog": 9.1, "jpeg_compression": 20.0},
              "AugMix": {"gaussian_noise": 25.0, "fog": 8.0}}
    out = error_per_corruption(errors, tmp_path / "figs" / "per_corruption.png", title="CIFAR-10-C")
    assert_png(out)
    assert os.listdir(tmp_path / "figs") == ["per_corruption.png"]
    with pytest.raises(InvalidValueError):
        error_per_corruption({}, tmp_path / "empty.png")


def test_error_vs_severity_png_with_and_without_clean(tmp_path: Path) -> None:
    out = error_vs_severity({"ERM": [5.0, 10, 20, 30, 40, 50], "AugMix": [8, 12, 15, np.nan, 25]},
                            tmp_path / "severity.png")
    assert_png(out)
    with pytest.raises(InvalidValueError, match="give 5"):
        error_vs_severity({"ERM": [1.0, 2.0]}, tmp_path / "bad.png")
    assert os.listdir(tmp_path) == ["severity.png"]


def test_suffix_picks_format_and_unknown_suffix_is_rejected(tmp_path: Path) -> None:
    out = error_vs_severity({"ERM": [1.0, 2, 3, 4, 5]}, tmp_path / "s.svg")
    assert b"<svg" in out.read_bytes()[:2000]
    with pytest.raises(InvalidValueError, match=r"\.png, \.pdf or \.svg"):
        error_vs_severity({"ERM": [1.0, 2, 3, 4, 5]}, tmp_path / "s.jpg")
    assert os.listdir(tmp_path) == ["s.svg"]


def test_failed_save_keeps_previous_file_and_leaves_no_temp(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "rel.png"
    out.write_bytes(b"previous figure")

    def crash_midway(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", crash_midway)
    with pytest.raises(WriteError, match="disk full"):   # atomic writes turn an OSError into one line
        reliability_diagram(np.array([0.2, 0.8]), np.array([0, 1]), out)
    assert out.read_bytes() == b"previous figure"
    assert os.listdir(tmp_path) == ["rel.png"]


def test_module_leaves_pyplot_and_backend_alone(tmp_path: Path) -> None:
    script = (
        # Reading rcParams['backend'] would itself resolve the backend; ask without auto-selecting.
        "import sys, matplotlib\n"
        "before = matplotlib.get_backend(auto_select=False)\n"
        "from corrbench.report.plots import error_vs_severity\n"
        f"error_vs_severity({{'m': [1, 2, 3, 4, 5]}}, {str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.get_backend(auto_select=False) == before\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert_png(tmp_path / "x.png")
