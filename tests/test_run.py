"""Recipes and `corrbench run`: expansion, skipping finished jobs, resuming, launchers, paper tables."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from corrbench.engine.run import execute, plan
from corrbench.errors import InvalidValueError, UserError
from corrbench.recipes import expand, load_recipe
from corrbench.report.paper import MAGN_CORRUPTIONS, build_paper_table, list_tables, parse_variant
from corrbench.results import to_frame

RECIPES = sorted((Path(__file__).parents[1] / "recipes").glob("*.toml"))
SMOKE = ["epochs=1", "dataset=mnist5k", "arch=mnist_cnn", "seed=0", "batch_size=200",
         "eval.corruptions=contrast", "eval.severities=3"]


def write_recipe(folder: Path, methods=("standard", "gaussian-noise")) -> Path:
    path = folder / "tiny.toml"
    path.write_text(f"""
[recipe]
name = "tiny"
title = "tiny"
table = ""
[train]
datasets = ["mnist5k"]
archs = ["mnist_cnn"]
methods = {json.dumps(list(methods))}
seeds = [0]
[train.settings]
epochs = 1
batch_size = 200
[eval]
suites = ["c"]
corruptions = ["contrast"]
severities = [3]
""")
    return path


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads_and_expands(recipe):
    loaded = load_recipe(recipe)
    assert loaded.title and (loaded.table == "" or loaded.table in list_tables())
    train_jobs, eval_jobs = expand(loaded, SMOKE)
    assert train_jobs and len(eval_jobs) >= len(train_jobs)
    assert {job.config.resolved().epochs for job in train_jobs} == {1}
    assert {job.suite for job in eval_jobs} <= {"mnist5k-c", "mnist5k-p", "mnist5k-mnistc"}


def test_set_and_only(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path))
    train_jobs, eval_jobs = expand(recipe, ["seed=0,1", "lr=0.01"], ["method=standard"])
    assert [(j.config.method, j.config.seed) for j in train_jobs] == [("standard", 0), ("standard", 1)]
    assert {j.config.resolved().lr for j in train_jobs} == {0.01}
    assert [dict(j.options)["corruptions"] for j in eval_jobs] == [("contrast",), ("contrast",)]
    with pytest.raises(InvalidValueError, match="matches no job"):
        expand(recipe, [], ["method=magn"])
    with pytest.raises(UserError, match="eval options"):
        expand(recipe, ["eval.bogus=1"])


def test_interrupted_run_redoes_no_finished_job(tmp_path):
    recipe = write_recipe(tmp_path)
    runs, results = tmp_path / "runs", tmp_path / "results"
    first = plan(recipe, runs_dir=runs, results_dir=results)
    assert [j.status for j in first.jobs] == ["todo"] * 4

    def stop_after_first(job):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(first, runs_dir=runs, results_dir=results, on_job_done=stop_after_first)
    second = plan(recipe, runs_dir=runs, results_dir=results)
    assert [j.status for j in second.jobs] == ["done", "todo", "todo", "todo"]
    finished_checkpoint = runs / second.jobs[0].job.run_id / "checkpoint.pt"
    stamp = finished_checkpoint.stat().st_mtime_ns
    ran = execute(second, runs_dir=runs, results_dir=results)
    assert len(ran) == 3 and finished_checkpoint.stat().st_mtime_ns == stamp
    third = plan(recipe, runs_dir=runs, results_dir=results)
    assert all(j.status == "done" for j in third.jobs) and not third.pending
    assert len(list(results.glob("eval__*.parquet"))) == 2


def test_submitit_local_launcher(tmp_path):
    pytest.importorskip("submitit")
    recipe = write_recipe(tmp_path, methods=("standard",))
    runs, results = tmp_path / "runs", tmp_path / "results"
    execute(plan(recipe, runs_dir=runs, results_dir=results), runs_dir=runs, results_dir=results,
            launcher="submitit", submitit_options={"cluster": "local", "timeout_min": 10})
    assert all(j.status == "done" for j in plan(recipe, runs_dir=runs, results_dir=results).jobs)


def fake_rows(errors: dict[str, float], clean_error: float, *, dataset="cifar10", arch="resnet18", method="standard",
              seed=0, suite="cifar10-c", params=None) -> pd.DataFrame:
    base = dict(kind="eval", run_id=f"{dataset}-{arch}-{method}-s{seed}", method=method, augment="none", arch=arch,
                dataset=dataset, seed=seed, suite=suite, source="files", temperature=1.0, n=100, nll=1.0, ece=0.1,
                rms_adaptive=0.05, rms_equal_width=0.05, aurra=0.9, method_params=json.dumps(params or {}),
                timestamp="2026-01-01T00:00:00+00:00")
    rows = [dict(base, corruption="clean", severity=0, error=clean_error, benchmark=False)]
    for corruption, error in errors.items():
        for severity in range(1, 6):
            rows.append(dict(base, corruption=corruption, severity=severity, error=error, benchmark=True))
    return to_frame(rows)


def test_paper_table_cells_published_beside_ours():
    errors = {c: 0.1 + 0.01 * i for i, c in enumerate(MAGN_CORRUPTIONS)}
    results = fake_rows(errors, clean_error=0.05)
    table = build_paper_table("magn_table1", results)
    row = table.cells[("cifar10", "resnet18", "standard")]
    contrast = row[("cifar10-c", "contrast", "accuracy")]
    assert contrast.published == {"single": "84.66"}
    assert contrast.ours == [pytest.approx(100 * (1 - errors["contrast"]))]
    mca = row[("cifar10-c", "mean", "mca")]
    assert mca.ours == [pytest.approx(100 * (1 - np.mean(list(errors.values()))))]
    assert row[("clean", "clean", "accuracy")].ours == [pytest.approx(95.0)]
    assert table.cells[("cifar10", "resnet18", "at")][("clean", "clean", "accuracy")].ours == []   # not run: missing
    rendered = table.render_cell(row[("clean", "clean", "accuracy")])
    assert rendered == "94.74 / 95.00 (+0.26)"
    # a partial corruption set is not the paper's mCA: left missing, never invented
    partial = build_paper_table("magn_table1", fake_rows({"contrast": 0.2}, 0.05))
    assert partial.cells[("cifar10", "resnet18", "standard")][("cifar10-c", "mean", "mca")].ours_stats() == {}


def test_paper_table_seed_statistics_and_variants():
    errors = {c: 0.2 for c in MAGN_CORRUPTIONS}
    results = pd.concat([fake_rows(errors, 0.1 + 0.01 * seed, arch="preact_resnet18", seed=seed) for seed in range(3)])
    table = build_paper_table("noisymix_table2", results)
    cell = table.cells[("cifar10", "preactresnet18", "standard")][("clean", "clean", "accuracy")]
    assert set(cell.published) == {"mean", "min", "max"}
    stats = cell.ours_stats()
    assert stats["mean"] == pytest.approx(89.0) and stats["min"] == pytest.approx(88.0) and stats["n"] == 3
    assert "(" in table.render_cell(cell) and " / " in table.render_cell(cell)
    assert parse_variant("magn+augmix[lambda1=3;lambda2=12;sigma_max=0.2]") == (
        "magn+augmix", {"lambda1": "3", "lambda2": "12", "sigma_max": "0.2"})
    variant = fake_rows(errors, 0.1, method="magn+augmix", params={"lambda1": 5.0, "lambda2": 12.0, "sigma_max": 0.2})
    table4 = build_paper_table("magn_table4", variant)
    matched = [key for key, cells in table4.cells.items()
               if any(cell.ours for cell in cells.values())]
    assert matched == [("cifar10", "resnet18", "magn+augmix[lambda1=5;lambda2=12;sigma_max=0.2]")]


def test_report_table_markdown(capsys, tmp_path):
    from corrbench.cli.app import main
    frame = fake_rows({c: 0.2 for c in MAGN_CORRUPTIONS}, 0.05)
    frame.to_parquet(tmp_path / "eval__x.parquet")
    with pytest.raises(SystemExit) as done:
        main(["report", "--table", "magn_table1", "--results", str(tmp_path), "--format", "md"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "| standard" in out and "94.74 / 95.00 (+0.26)" in out and "85.71 / —" in out
    with pytest.raises(SystemExit) as done:
        main(["report", "--table", "magn_tabel1", "--results", str(tmp_path)])
    assert done.value.code == 2 and "magn_table1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["report", "--results", str(tmp_path), "--plots", str(tmp_path / "plots")])
    assert done.value.code == 0
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "cifar10-c_error_per_corruption.png", "cifar10-c_error_vs_severity.png"]
