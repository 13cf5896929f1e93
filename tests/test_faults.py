"""Fault injection: a process killed while writing a checkpoint or a results file, concurrent evaluations,
read-only and full folders. After each fault the next command works, nothing half-written is read, no
temp file is left behind, and errors are one line with exit code 2.

Kills are exact, not timed: the test hook CORRBENCH_FAULT_AT_WRITE (corrbench/atomic.py) makes the
writer SIGKILL itself — or pause — at the moment its temp file is complete and not yet renamed.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corrbench.atomic import FAULT_ENV, FAULT_SIGNAL_ENV
from corrbench.cli.app import main
from corrbench.engine.checkpoint import load_checkpoint, save_checkpoint
from corrbench.errors import WriteError
from corrbench.results import TEMP_FOLDER, load_results, to_frame, write_results

CORRBENCH = str(Path(sys.executable).parent / "corrbench")
ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
FAST_TRAIN = ["train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--batch-size", "250", "--holdout", "3500",
              "--device", "cpu"]


def cli(*args: object, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([CORRBENCH, *map(str, args)], capture_output=True, text=True, env={**ENV, **env},
                          timeout=600)


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_exit_2(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def hidden(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*"))


def eval_args(run: Path, corruption: str, results: Path) -> list[object]:
    return ["eval", "--checkpoint", run, "--corruptions", corruption, "--severities", "2", "--results", results,
            "--device", "cpu"]


# ---------------------------------------------------------------- kills

def test_kill_during_checkpoint_write_then_resume(capsys, tmp_path):
    runs = tmp_path / "runs"
    killed = cli(*FAST_TRAIN, "--epochs", "2", "--runs-dir", runs, **{FAULT_ENV: "kill:checkpoint.pt:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = next(runs.iterdir())
    temps = hidden(run_dir)
    assert len(temps) == 1 and temps[0].name.startswith(".checkpoint.") and temps[0].name.endswith(".tmp.pt")
    assert load_checkpoint(run_dir)["epoch"] == 1          # the previous checkpoint is intact
    code, _, err = run_cli(capsys, *FAST_TRAIN, "--epochs", "2", "--runs-dir", runs, "--resume")
    assert code == 0, err
    checkpoint = load_checkpoint(run_dir)
    assert checkpoint["epoch"] == 2 and checkpoint["complete"]
    assert hidden(run_dir) == []


def test_kill_during_results_write_then_report_and_split_evaluations(capsys, mnist_run, tmp_path):
    results = tmp_path / "results"
    code, _, err = run_cli(capsys, *eval_args(mnist_run, "gaussian_noise", results))
    assert code == 0, err
    killed = cli(*eval_args(mnist_run, "contrast", results), **{FAULT_ENV: "kill:eval__*"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(list((results / TEMP_FOLDER).iterdir())) == 1 and len(list(results.glob("*.parquet"))) == 1
    code, out, err = run_cli(capsys, "report", "--results", results, "--format", "csv")
    assert code == 0 and err == "", err
    assert "gaussian_noise" in out and "contrast" not in out
    assert hidden(results) == []                           # the dead writer's temp file is swept
    # the evaluation killed above, done again: both halves of the split evaluation are in the report
    code, _, err = run_cli(capsys, *eval_args(mnist_run, "contrast", results))
    assert code == 0, err
    code, out, err = run_cli(capsys, "report", "--results", results, "--format", "csv")
    assert code == 0, err
    header = out.splitlines()[0]
    assert "gaussian_noise" in header and "contrast" in header
    assert hidden(results) == []


def test_concurrent_evaluations_of_one_run_and_suite_keep_both(capsys, mnist_run, tmp_path):
    """Two evals write at the same moment: both hold their temp file, then are released together."""
    results, signal_file = tmp_path / "results", tmp_path / "paused"
    env = {FAULT_ENV: "pause:eval__*", FAULT_SIGNAL_ENV: str(signal_file)}
    processes = [subprocess.Popen([CORRBENCH, *map(str, eval_args(mnist_run, corruption, results))],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**ENV, **env})
                 for corruption in ("contrast", "gaussian_noise")]
    try:
        deadline = time.time() + 300
        while time.time() < deadline and all(p.poll() is None for p in processes):
            if signal_file.exists() and len(signal_file.read_text().splitlines()) == 2:
                break
            time.sleep(0.05)
        assert len(signal_file.read_text().splitlines()) == 2, [p.communicate() for p in processes]
        Path(str(signal_file) + ".go").touch()
        outcomes = [p.communicate(timeout=300) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0, 0], outcomes
    assert len(list(results.glob("eval__*.parquet"))) == 2 and hidden(results) == []
    rows = load_results(results, merge=False)
    assert sorted(rows["corruption"]) == ["clean", "clean", "contrast", "gaussian_noise"]
    code, out, err = run_cli(capsys, "report", "--results", results, "--format", "csv")
    assert code == 0 and "contrast" in out.splitlines()[0] and "gaussian_noise" in out.splitlines()[0], err


def test_run_reevaluates_after_the_checkpoint_changed(capsys, tmp_path):
    """An eval of a run stopped at epoch 1 of 2 is stale once training resumes: `run` evaluates again and
    the report then holds only the finished checkpoint's numbers."""
    from corrbench.engine.checkpoint import file_sha256
    from corrbench.engine.run import execute, plan
    from corrbench.engine.train import TrainingInterrupted, train
    from corrbench.recipes import expand, load_recipe

    recipe = tmp_path / "tiny.toml"
    recipe.write_text('[recipe]\nname = "tiny"\ntitle = "tiny"\ntable = ""\n[train]\ndatasets = ["mnist5k"]\n'
                      'archs = ["mnist_cnn"]\nmethods = ["standard"]\nseeds = [0]\n[train.settings]\nepochs = 2\n'
                      'batch_size = 250\nholdout = 3500\n[eval]\nsuites = ["c"]\ncorruptions = ["contrast"]\n'
                      'severities = [2]\n')
    runs, results = tmp_path / "runs", tmp_path / "results"
    (train_job,), _ = expand(load_recipe(recipe), [])

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(train_job.config, runs_dir=runs, on_epoch_end=stop)
    run_dir = runs / train_job.run_id
    code, _, err = run_cli(capsys, *eval_args(run_dir, "contrast", results))
    assert code == 0 and "warning:" in err and "mnist5k-mnist_cnn-standard-s0" in err and "(epoch 1)" in err, err
    early = load_results(results)
    assert set(early["checkpoint_epoch"]) == {1} and not early["checkpoint_complete"].any()
    code, out, err = run_cli(capsys, "report", "--results", results, "--format", "csv")
    lines = err.strip().splitlines()
    assert code == 0 and "contrast" in out and len(lines) == 1 and lines[0].startswith("warning:"), err
    assert "unfinished training runs" in lines[0] and "(epoch 1)" in lines[0]
    first = plan(recipe, runs_dir=runs, results_dir=results)
    assert [j.status for j in first.jobs] == ["resume", "todo"]
    execute(first, runs_dir=runs, results_dir=results)
    rows = load_results(results)
    assert set(rows["weights_sha256"]) == {file_sha256(run_dir / "checkpoint.pt")}
    assert set(rows["checkpoint_epoch"]) == {2} and rows["checkpoint_complete"].all()
    assert [j.status for j in plan(recipe, runs_dir=runs, results_dir=results).jobs] == ["done", "done"]
    # a checkpoint replaced behind the store's back (same run id, other weights) makes its rows stale
    payload = load_checkpoint(run_dir)
    payload["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in payload["model"].items()}
    save_checkpoint(run_dir / "checkpoint.pt", payload)
    assert [j.status for j in plan(recipe, runs_dir=runs, results_dir=results).jobs] == ["done", "stale"]


# ---------------------------------------------------------------- read-only and full folders

@pytest.fixture
def mounts(tmp_path):
    """mount(name, options) -> a fresh tmpfs folder (root only; skipped where tmpfs cannot be mounted)."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def read_only_folder(tmp_path: Path, mounts) -> Path:
    if os.geteuid() == 0:   # root ignores permission bits: only a read-only mount refuses it
        return mounts("read-only", "ro,size=1m")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def test_read_only_results_and_runs_folders_are_one_line_exit_2(capsys, mnist_run, tmp_path, mounts):
    folder = read_only_folder(tmp_path, mounts)
    code, _, err = run_cli(capsys, *eval_args(mnist_run, "contrast", folder / "results"))
    assert_one_line_exit_2(code, err, str(folder))
    code, _, err = run_cli(capsys, *FAST_TRAIN, "--epochs", "1", "--runs-dir", folder / "runs")
    assert_one_line_exit_2(code, err, str(folder))
    assert list(folder.iterdir()) == []


def test_full_disk_during_results_write_is_one_line_and_leaves_nothing(tmp_path, mounts):
    full = mounts("full", "size=16k")
    frame = to_frame([dict(kind="eval", run_id="r", corruption="clean", severity=0, benchmark=False, n=1,
                           method_params="x" * 40_000, timestamp="2026-01-01T00:00:00+00:00")])
    with pytest.raises(WriteError) as error:
        write_results(frame, full / "results", kind="eval", run_id="r", suite="s")
    message = str(error.value)
    assert "\n" not in message and str(full / "results") in message and "No space left" in message
    assert [p for p in (full / "results").rglob("*") if p.is_file()] == []


def test_full_disk_during_training_keeps_the_last_checkpoint(tmp_path, mounts):
    """The disk fills up between epochs: the next checkpoint write fails with one line, leaves no temp file,
    and the previous checkpoint is intact."""
    from corrbench.config import RunConfig
    from corrbench.engine.train import train

    runs = mounts("runs", "size=3m")

    def fill_disk(epoch, row):
        if epoch == 1:
            with open(runs / "filler", "wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                except OSError:
                    pass

    config = RunConfig(dataset="mnist5k", arch="mnist_cnn", epochs=2, batch_size=250, holdout=3500, device="cpu")
    with pytest.raises(WriteError) as error:
        train(config, runs_dir=runs, on_epoch_end=fill_disk)
    message = str(error.value)
    assert "\n" not in message and "checkpoint.pt" in message and "No space left" in message
    run_dir = runs / config.resolved().run_id()
    assert load_checkpoint(run_dir)["epoch"] == 1 and hidden(run_dir) == []
