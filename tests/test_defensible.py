"""Issue 10 wired into the CLI: intervals in every table, `compare`, `report --plots/--html`, plain progress
lines when stderr is not a terminal, `--val-every`, `--logger`, and `corrbench runs` — on tiny real runs."""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from conftest import train_run
from corrbench.cli.app import main
from corrbench.report.compare import unpack_correct
from corrbench.report.render import Estimate, Span, Table, render
from corrbench.results import load_results
from corrbench.stats import bootstrap_error

CORRUPTIONS = ["contrast", "impulse_noise"]
CORRBENCH = str(Path(sys.executable).with_name("corrbench"))


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, mnist_run):
    """Two mnist_cnn runs (standard, gaussian-noise) evaluated on 2 corruptions × 2 severities of mnist5k-c."""
    import corrbench

    runs = mnist_run.parent
    other = train_run(tmp_path_factory.mktemp("runs-b"), method="gaussian-noise")
    results = tmp_path_factory.mktemp("results")
    for run in (mnist_run, other):
        corrbench.evaluate(run, "mnist5k-c", corruptions=CORRUPTIONS, severities=[1, 3], device="cpu",
                           results_dir=results)
    return {"results": results, "runs": runs, "a": mnist_run.name, "b": other.name}


def _correct(rows: pd.DataFrame, run_id: str, clean: bool) -> np.ndarray:
    mine = rows[(rows["run_id"] == run_id) & ((rows["corruption"] == "clean") == clean)]
    mine = mine.sort_values(["corruption", "severity"])
    return np.stack([unpack_correct(b, n) for b, n in zip(mine["sample_correct"], mine["n"])])


# ------------------------------------------------------------------------------------------------ rendering

def test_estimate_cells_read_as_mean_pm_std_and_split_into_csv_columns():
    table = Table(title="t", columns=["method", "clean", "clean 95 %"],
                  rows=[["a", Estimate(12.345, 0.2101, 11.9, 12.8), Span(11.9, 12.8)], ["b", Estimate(7.0), None]])
    assert "12.35 ± 0.21" in render(table, "md") and "[11.90, 12.80]" in render(table, "md")
    frame = pd.read_csv(io.StringIO(render(table, "csv")))
    assert list(frame.columns) == ["method", "clean", "clean std", "clean low", "clean high"]
    assert frame.loc[0, "clean"] == 12.345 and frame.loc[0, "clean high"] == 12.8
    assert frame.loc[1, "clean"] == 7.0 and math.isnan(frame.loc[1, "clean std"])


def test_paper_cell_is_marked_when_the_published_value_is_outside_our_interval():
    from corrbench.report.paper import Cell

    inside = Cell(published={"mean": "12.0"}, ours=[10.0, 12.0, 14.0])
    half = student_t.ppf(0.975, 2) * 2.0 / math.sqrt(3)
    assert inside.interval() == pytest.approx((12.0 - half, 12.0 + half), rel=1e-12)
    assert not inside.published_outside()
    assert Cell(published={"mean": "20.0"}, ours=[10.0, 12.0, 14.0]).published_outside()
    single = Cell(published={"mean": "20.0"}, ours=[12.0], single_interval=(11.0, 13.0))
    assert single.published_outside() and not Cell(published={"mean": "20.0"}, ours=[12.0]).published_outside()


# ------------------------------------------------------------------------------------------------ report tables

def test_report_table_single_run_interval_is_the_image_bootstrap(evaluated):
    from corrbench.report.tables import comparison_tables

    rows = load_results(evaluated["results"])
    (table,) = comparison_tables(rows)
    line = next(r for r in table.rows if r[0] == "standard")
    clean, mean_ce = line[table.columns.index("clean")], line[table.columns.index("mean CE")]
    expected_clean = bootstrap_error(_correct(rows, evaluated["a"], clean=True), seed=0)
    expected_ce = bootstrap_error(_correct(rows, evaluated["a"], clean=False), seed=0)   # images resampled jointly
    assert clean.value == pytest.approx(100 * expected_clean.estimate, abs=1e-9) and math.isnan(clean.std)
    assert (clean.low, clean.high) == pytest.approx((100 * expected_clean.low, 100 * expected_clean.high), abs=1e-9)
    assert (mean_ce.low, mean_ce.high) == pytest.approx((100 * expected_ce.low, 100 * expected_ce.high), abs=1e-9)
    assert mean_ce.value == pytest.approx(100 * expected_ce.estimate, abs=1e-9)
    assert "bootstrap over test images" in table.caption


def test_report_table_over_seeds_is_mean_std_and_t_interval(evaluated):
    from corrbench.report.tables import comparison_tables

    rows = load_results(evaluated["results"])
    base = rows[rows["run_id"] == evaluated["a"]]
    copies = [base.assign(run_id=evaluated["a"] + f"-copy{k}", label=evaluated["a"] + f"-copy{k}", seed=k,
                          error=base["error"] + 0.02 * k)
              for k in (1, 2)]
    (table,) = comparison_tables(pd.concat([base, *copies], ignore_index=True))
    (line,) = table.rows
    assert line[table.columns.index("seeds")] == 3
    clean = line[table.columns.index("clean")]
    e = float(base.loc[base["corruption"] == "clean", "error"].iloc[0])
    half = student_t.ppf(0.975, 2) * 0.02 / math.sqrt(3)   # values e, e + 0.02, e + 0.04: s = 0.02
    assert clean.value == pytest.approx(100 * (e + 0.02), abs=1e-9)
    assert clean.std == pytest.approx(2.0, abs=1e-9)
    assert (clean.low, clean.high) == pytest.approx((100 * (e + 0.02 - half), 100 * (e + 0.02 + half)), abs=1e-9)


# ------------------------------------------------------------------------------------------------ compare

def test_compare_cli_prints_the_library_numbers(capsys, evaluated):
    import corrbench
    from corrbench.report.compare import compare

    a, b, results = evaluated["a"], evaluated["b"], evaluated["results"]
    code, out, err = run_cli(capsys, "compare", a, b, "--results", results, "--format", "csv")
    assert code == 0, err
    expected = compare(load_results(results, kinds=["eval"]), a, b)
    printed = pd.read_csv(io.StringIO("\n".join(out.strip().splitlines()[:-1])))   # last line: the sentence
    by_name = printed.set_index("corruption")
    for r in expected.corruptions.itertuples():
        assert by_name.loc[r.corruption, "A − B"] == pytest.approx(100 * r.difference, abs=1e-9)
        assert by_name.loc[r.corruption, "A"] == pytest.approx(100 * r.error_a, abs=1e-9)
        assert by_name.loc[r.corruption, "verdict"] == r.verdict
    assert f"better on {expected.a_better} and worse on {expected.b_better}" in out
    through_api = corrbench.compare(results, a, b)   # the Python API: a folder or a frame
    pd.testing.assert_frame_equal(through_api.corruptions, expected.corruptions)
    assert through_api.overall == expected.overall


# ------------------------------------------------------------------------------------------------ plots, html

def test_report_plots_and_html(capsys, evaluated, tmp_path):
    from corrbench.report.tables import comparison_tables

    plots, html = tmp_path / "plots", tmp_path / "out" / "report.html"
    html.parent.mkdir()
    code, out, err = run_cli(capsys, "report", "--results", evaluated["results"], "--plots", plots, "--html", html,
                             "--runs-dir", evaluated["runs"])
    assert code == 0, err
    names = ["error_vs_severity", "error_per_corruption", "effective_robustness", "ece_vs_severity",
             "rms_vs_severity"]
    expected = {f"mnist5k-c_{name}.{fmt}" for name in names for fmt in ("png", "pdf")}
    expected |= {"training_curves.png", "training_curves.pdf"}   # the standard run's train_log is under --runs-dir
    assert {p.name for p in plots.iterdir()} == expected
    for path in plots.iterdir():
        assert path.read_bytes()[:4] == (b"\x89PNG" if path.suffix == ".png" else b"%PDF")
    assert [p.name for p in html.parent.iterdir()] == ["report.html"]   # written atomically, nothing left over
    document = html.read_text()
    assert document.count('<img src="data:image/png;base64,') == len(names) + 1
    (table,) = comparison_tables(load_results(evaluated["results"]))
    assert render(table, "html") in document   # the same table the terminal shows
    assert "mnist5k-c (mnist5k, mnist_cnn)" in out


# ------------------------------------------------------------------------------------------------ watching runs

def test_train_without_a_terminal_logs_one_line_per_epoch_and_val_error(capsys, tmp_path):
    runs = tmp_path / "runs"
    args = [CORRBENCH, "train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs", "2", "--batch-size",
            "250", "--holdout", "3500", "--device", "cpu", "--runs-dir", str(runs), "--val-every", "1",
            "--logger", "csv"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "60"}
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and [line.split(":")[0] for line in lines] == ["epochs", "epochs"], done.stderr
    assert lines[0].startswith("epochs: 1/2, loss ") and "val_error" in lines[0] and "ETA" in lines[0]
    (run_dir,) = runs.iterdir()
    assert f"run folder: {run_dir}" in done.stdout   # never cut, even with COLUMNS=60 on a pipe
    log = pd.read_parquet(run_dir / "train_log.parquet")
    assert log["epoch"].tolist() == [1, 2] and log["val_error"].between(0, 1).all()
    scalars = pd.read_csv(run_dir / "scalars.csv")
    assert set(scalars["epoch"]) == {1, 2}
    assert scalars[scalars["name"] == "val_error"]["value"].tolist() == pytest.approx(log["val_error"].tolist())
    code, out, err = run_cli(capsys, "runs", "--runs-dir", runs)
    assert code == 0 and run_dir.name in out and "complete" in out and "2/2" in out, err
    assert f"{100 * log['val_error'].min():.2f}" in out


def test_val_every_does_not_change_the_run_identity():
    from corrbench.config import RunConfig

    assert RunConfig(dataset="mnist5k", arch="mnist_cnn", val_every=3).run_id() == \
        RunConfig(dataset="mnist5k", arch="mnist_cnn").run_id()


def test_runs_tells_failed_with_nan_from_interrupted(tmp_path):
    from corrbench.engine import checkpoint
    from corrbench.engine import run_listing
    from corrbench.engine import monitor
    from corrbench.engine.monitor import record_failure

    assert (run_listing.CONFIG_NAME, run_listing.LOG_NAME) == (checkpoint.CONFIG_NAME, checkpoint.LOG_NAME)
    assert run_listing.STATUS_NAME == monitor.STATUS_NAME
    for name in ("nan", "stopped"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"method": "standard", "augment": "none", "arch": "mnist_cnn",
                                                        "dataset": "mnist5k", "seed": 0, "epochs": 3}))
        pd.DataFrame({"epoch": [1], "loss": [1.0], "val_error": [0.25]}).to_parquet(folder / "train_log.parquet")
    record_failure(tmp_path / "nan", epoch=2, saved_epoch=1, reason="nan", message="loss became nan")
    listing = run_listing.list_runs(tmp_path).set_index("run_id")
    assert listing.loc["nan", "status"] == "failed with NaN in epoch 2"
    assert listing.loc["stopped", "status"] == "interrupted at epoch 1"
    assert listing.loc["nan", "epochs"] == "1/3" and listing.loc["nan", "best_val_error"] == 0.25


def test_logger_tensorboard_without_the_package_is_one_line(capsys, tmp_path):
    try:
        import tensorboard  # noqa: F401
        pytest.skip("tensorboard is installed here")
    except ImportError:
        pass
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs", "1",
                           "--runs-dir", tmp_path / "runs", "--logger", "tensorboard", "--device", "cpu")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "tensorboard" in lines[0] and "--logger csv" in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_paper_table_marks_a_single_run_cell_by_its_image_bootstrap():
    from corrbench.report.compare import pack_correct
    from corrbench.report.paper import MAGN_CORRUPTIONS, build_paper_table
    from test_run import fake_rows, recipe_config

    results = fake_rows({c: 0.1 for c in MAGN_CORRUPTIONS}, clean_error=0.2, config=recipe_config("magn_table1", "standard"))
    correct = np.arange(100) % 5 != 0                       # 80 of 100 right: accuracy 80 %, published 94.74
    clean = results["corruption"] == "clean"
    results["sample_correct"] = None
    results.loc[clean, "sample_correct"] = pd.Series([pack_correct(correct)], index=results.index[clean])
    table = build_paper_table("magn_table1", results)
    cell = table.cells[("cifar10", "resnet18", "standard")][("clean", "clean", "accuracy")]
    expected = bootstrap_error(correct, seed=0)
    assert cell.interval() == pytest.approx((100 * (1 - expected.high), 100 * (1 - expected.low)), abs=1e-9)
    assert table.render_cell(cell) == "94.74 / 80.00 (-14.74) †"
    contrast = table.cells[("cifar10", "resnet18", "standard")][("cifar10-c", "contrast", "accuracy")]
    assert contrast.interval() is None and not table.render_cell(contrast).endswith("†")   # no per-image data
    tidy = table.tidy().set_index(["method", "suite", "corruption", "metric"])
    assert bool(tidy.loc[("standard", "clean", "clean", "accuracy"), "published_outside_interval"])
