"""Recipes and `corrbench run`: expansion, skipping finished jobs, resuming, launchers, paper tables."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from corrbench.bundled import recipes_dir
from corrbench.engine.run import execute, plan
from corrbench.errors import InvalidValueError, UserError
from corrbench.recipes import expand, load_recipe
from corrbench.report.paper import MAGN_CORRUPTIONS, build_paper_table, list_tables, parse_variant
from corrbench.results import load_results, to_frame

RECIPES = sorted(recipes_dir().glob("*.toml"))
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


def test_submitit_local_launcher_two_tasks_train_one_ddp_run(tmp_path, capsys):
    """One job, 2 tasks (gloo on CPU): one DDP training run, then its evaluation sharded over both tasks."""
    pytest.importorskip("submitit")
    recipe = write_recipe(tmp_path, methods=("standard",))
    runs, results = tmp_path / "runs", tmp_path / "results"
    ran = execute(plan(recipe, runs_dir=runs, results_dir=results), runs_dir=runs, results_dir=results, device="cpu",
                  launcher="submitit", submitit_options={"cluster": "local", "timeout_min": 10, "tasks_per_node": 2},
                  wait=False)
    assert [j.kind for j in ran] == ["train", "eval"] and len({j.status for j in ran}) == 1   # one job for the run
    job_id = ran[0].status.removeprefix("submitted: ")
    from corrbench.engine.launch import job_states
    states = job_states(runs / "submitit", "tiny")
    assert states[f"train {ran[0].job.run_id}"].job_id == job_id
    while job_states(runs / "submitit", "tiny")[f"train {ran[0].job.run_id}"].state in ("pending", "running"):
        time.sleep(0.5)
    state = job_states(runs / "submitit", "tiny")[f"train {ran[0].job.run_id}"]
    assert state.state == "finished", (runs / "submitit" / f"{job_id}_0_log.err").read_text()[-3000:]
    log = (runs / "submitit" / f"{job_id}_0_log.out").read_text()
    assert "2 processes, weights identical on every rank" in log, log
    assert all(j.status == "done" for j in plan(recipe, runs_dir=runs, results_dir=results).jobs)
    shards = sorted(p.name.rsplit("__", 1)[1] for p in results.glob("eval__*.parquet"))
    assert shards == ["shard0of2.parquet", "shard1of2.parquet"]   # each task evaluated half of every part
    code = run_cli(capsys, "run", recipe, "--runs-dir", runs, "--results", results, "--status")
    out = capsys.readouterr().out
    assert code == 0 and job_id in out and "finished" in out and out.count("done") >= 2, out


def run_cli(capsys, *args) -> int:
    from corrbench.cli.app import main
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


def test_submitit_requeue_after_preemption_resumes_from_the_checkpoint(tmp_path):
    """A preempted job (submitit's signal, as Slurm sends it) is requeued and its training resumes from the
    last epoch's checkpoint instead of starting again."""
    pytest.importorskip("submitit")
    if not Path("/proc/self/environ").exists():
        pytest.skip("finds the task's process through /proc")
    from submitit.local.local import LocalJobEnvironment
    from corrbench.engine.checkpoint import load_checkpoint
    recipe = write_recipe(tmp_path, methods=("standard",))
    runs, results = tmp_path / "runs", tmp_path / "results"
    ran = execute(plan(recipe, assignments=["epochs=3"], runs_dir=runs, results_dir=results), runs_dir=runs, results_dir=results,
                  device="cpu", launcher="submitit", submitit_options={"cluster": "local", "timeout_min": 10},
                  wait=False)
    job_id = ran[0].status.removeprefix("submitted: ")
    checkpoint = runs / ran[0].job.run_id / "checkpoint.pt"
    deadline = time.time() + 300
    while not (checkpoint.is_file() and load_checkpoint(checkpoint)["epoch"] >= 1):
        assert time.time() < deadline
        time.sleep(0.2)
    for pid in task_pids(job_id):   # what submitit's controller does before a timeout, Slurm before preemption
        os.kill(pid, LocalJobEnvironment._usr_sig())
    from corrbench.engine.launch import job_states
    while job_states(runs / "submitit", "tiny")[f"train {ran[0].job.run_id}"].state not in ("finished",) and \
            not job_states(runs / "submitit", "tiny")[f"train {ran[0].job.run_id}"].state.startswith("failed"):
        assert time.time() < deadline
        time.sleep(0.5)
    log = (runs / "submitit" / f"{job_id}_0_log.out").read_text()
    err = (runs / "submitit" / f"{job_id}_0_log.err").read_text()
    assert job_states(runs / "submitit", "tiny")[f"train {ran[0].job.run_id}"].state == "finished", err[-3000:]
    assert "Caught signal" in err, err[-3000:]
    assert "resumed from epoch" in log, log + err[-3000:]
    assert load_checkpoint(checkpoint)["complete"] and load_checkpoint(checkpoint)["epoch"] == 3


def task_pids(job_id: str) -> list[int]:
    """The processes of a submitit local job's tasks (their environment names the job)."""
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            values = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SUBMITIT_LOCAL_JOB_ID={job_id}".encode() in values and any(
                v.startswith(b"SUBMITIT_LOCAL_GLOBALID=") for v in values):
            pids.append(int(environ.parent.name))
    return pids


def recipe_config(recipe: str, method: str, *, seed: int = 0, dataset: str | None = None, arch: str | None = None,
                  params: dict | None = None) -> dict:
    """The training configuration (config.json form) a bundled recipe gives a row, with another seed / params."""
    import dataclasses
    jobs, _ = expand(load_recipe(recipe))
    job = next(j for j in jobs if j.config.method == method and dataset in (None, j.config.dataset)
               and arch in (None, j.config.arch))
    config = dataclasses.replace(job.config, seed=seed, method_params={**job.config.method_params, **(params or {})})
    return config.to_json()


def fake_rows(errors: dict[str, float], clean_error: float, *, dataset="cifar10", arch="resnet18", method="standard",
              seed=0, suite="cifar10-c", params=None, config: dict | None = None) -> pd.DataFrame:
    """Results rows of one run; `config` (a config.json) is recorded as the rows' run_config."""
    base = dict(kind="eval", run_id=f"{dataset}-{arch}-{method}-s{seed}", method=method, augment="none", arch=arch,
                dataset=dataset, seed=seed, suite=suite, source="files", temperature=1.0, n=100, nll=1.0, ece=0.1,
                rms_adaptive=0.05, rms_equal_width=0.05, aurra=0.9, method_params=json.dumps(params or {}),
                timestamp="2026-01-01T00:00:00+00:00")
    rows = [dict(base, corruption="clean", severity=0, error=clean_error, benchmark=False)]
    for corruption, error in errors.items():
        for severity in range(1, 6):
            rows.append(dict(base, corruption=corruption, severity=severity, error=error, benchmark=True))
    frame = to_frame(rows)
    frame["run_config"] = json.dumps(config) if config else ""
    return frame


def test_paper_table_cells_published_beside_ours():
    errors = {c: 0.1 + 0.01 * i for i, c in enumerate(MAGN_CORRUPTIONS)}
    results = fake_rows(errors, clean_error=0.05, config=recipe_config("magn_table1", "standard"))
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
    partial = build_paper_table("magn_table1", fake_rows({"contrast": 0.2}, 0.05,
                                                         config=recipe_config("magn_table1", "standard")))
    assert partial.cells[("cifar10", "resnet18", "standard")][("cifar10-c", "mean", "mca")].ours_stats() == {}


def test_paper_table_seed_statistics_and_variants():
    errors = {c: 0.2 for c in MAGN_CORRUPTIONS}
    results = pd.concat([fake_rows(errors, 0.1 + 0.01 * seed, arch="preact_resnet18", seed=seed,
                                   config=recipe_config("noisymix_table2", "standard", seed=seed, dataset="cifar10"))
                         for seed in range(3)])
    table = build_paper_table("noisymix_table2", results)
    cell = table.cells[("cifar10", "preactresnet18", "standard")][("clean", "clean", "accuracy")]
    assert set(cell.published) == {"mean", "min", "max"}
    stats = cell.ours_stats()
    assert stats["mean"] == pytest.approx(89.0) and stats["min"] == pytest.approx(88.0) and stats["n"] == 3
    assert "(" in table.render_cell(cell) and " / " in table.render_cell(cell)
    assert parse_variant("magn+augmix[lambda1=3;lambda2=12;sigma_max=0.2]") == (
        "magn+augmix", {"lambda1": "3", "lambda2": "12", "sigma_max": "0.2"})
    variant = fake_rows(errors, 0.1, method="magn+augmix", params={"lambda1": 5.0, "lambda2": 12.0, "sigma_max": 0.2},
                        config=recipe_config("magn_table4", "magn+augmix", params={"lambda1": 5.0}))
    table4 = build_paper_table("magn_table4", variant)
    matched = [key for key, cells in table4.cells.items()
               if any(cell.ours for cell in cells.values())]
    assert matched == [("cifar10", "resnet18", "magn+augmix[lambda1=5;lambda2=12;sigma_max=0.2]")]


def test_report_table_markdown(capsys, tmp_path):
    from corrbench.cli.app import main
    frame = fake_rows({c: 0.2 for c in MAGN_CORRUPTIONS}, 0.05)   # no run_config: read from the runs folder
    frame.to_parquet(tmp_path / "eval__x.parquet")
    runs = tmp_path / "runs"
    (runs / frame["run_id"].iloc[0]).mkdir(parents=True)
    (runs / frame["run_id"].iloc[0] / "config.json").write_text(json.dumps(recipe_config("magn_table1", "standard")))
    with pytest.raises(SystemExit) as done:
        main(["report", "--table", "magn_table1", "--results", str(tmp_path), "--format", "md", "--runs-dir", str(runs)])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "| standard" in out and "94.74 / 95.00 (+0.26)" in out and "85.71 / —" in out
    with pytest.raises(SystemExit) as done:
        main(["report", "--table", "magn_tabel1", "--results", str(tmp_path)])
    assert done.value.code == 2 and "magn_table1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["report", "--results", str(tmp_path), "--plots", str(tmp_path / "plots")])
    assert done.value.code == 0
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [   # report/figures.suite_figures
        "cifar10-c_ece_vs_severity.png", "cifar10-c_effective_robustness.png", "cifar10-c_error_per_corruption.png",
        "cifar10-c_error_vs_severity.png", "cifar10-c_rms_vs_severity.png"]


SMALL_FACTORY = '''
import torch.nn as nn


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))
'''


def test_recipe_checkpoints_become_eval_jobs(tmp_path, monkeypatch, capsys):
    """`[[recipe.checkpoints]]` rows are evaluated through the model sources (only the recipe's own method trains);
    a row whose weights file is missing is listed with where to put it, and the rest of the recipe runs."""
    import torch
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small_models.py").write_text(SMALL_FACTORY)
    namespace: dict = {}
    exec(SMALL_FACTORY, namespace)
    (tmp_path / "checkpoints").mkdir()
    torch.save(namespace["build"]().state_dict(), tmp_path / "checkpoints" / "small.pth")
    recipe = write_recipe(tmp_path, methods=("standard",))
    recipe.write_text(recipe.read_text().replace("[train]", f"""
[[recipe.checkpoints]]
method = "mixup"
dataset = "mnist5k"
arch = "small"
model = "python:{tmp_path / 'small_models.py'}:build"
weights = "checkpoints/small.pth"
label = "public-small"
origin = "a small public model"

[[recipe.checkpoints]]
method = "cutmix"
dataset = "mnist5k"
arch = "small"
model = "python:{tmp_path / 'small_models.py'}:build"
weights = "checkpoints/missing.pth"
label = "public-missing"
origin = "the authors' release"

[train]"""))
    runs, results = tmp_path / "runs", tmp_path / "results"
    first = plan(recipe, runs_dir=runs, results_dir=results)
    assert [(j.kind, j.status) for j in first.jobs] == [("train", "todo"), ("eval", "todo"), ("eval", "todo"),
                                                         ("eval", "needs weights")]
    assert [j.job.run_id for j in first.jobs[2:]] == ["public-small", "public-missing"]
    assert first.jobs[3].note == "checkpoints/missing.pth (the authors' release)"
    assert len(first.pending) == 3
    assert [j.kind for j in plan(recipe, only=["method=standard"], runs_dir=runs, results_dir=results).jobs] == [
        "train", "eval"]
    code = run_cli(capsys, "run", recipe, "--runs-dir", runs, "--results", results, "--dry-run")
    out = capsys.readouterr().out
    assert code == 0 and "needs weights: checkpoints/missing.pth (the authors' release)" in out, out

    execute(first, runs_dir=runs, results_dir=results, device="cpu")
    rows = load_results(results)
    public = rows[rows["label"] == "public-small"]
    assert set(public["corruption"]) == {"clean", "contrast"} and (public["method"] == "external").all()
    assert set(rows["label"]) == {"public-small", first.jobs[0].job.run_id}
    second = plan(recipe, runs_dir=runs, results_dir=results)
    assert [j.status for j in second.jobs] == ["done", "done", "done", "needs weights"] and not second.pending


def test_no_wait_needs_submitit(tmp_path, capsys):
    code = run_cli(capsys, "run", write_recipe(tmp_path), "--no-wait", "--runs-dir", tmp_path / "runs")
    err = capsys.readouterr().err
    assert code == 2 and "--no-wait" in err and "submitit" in err and len(err.strip().splitlines()) == 1, err
