"""The command line: help, exit codes, one-line errors, end-to-end runs on tiny data."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from corrbench.cli.app import main
from corrbench.results import COLUMNS

from conftest import write_cifar10


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("train", "eval", "calibrate", "flip-rate", "report", "data", "zoo", "methods"):
        assert command in out


@pytest.mark.parametrize("command", ["train", "eval", "calibrate", "flip-rate", "report", "zoo"])
def test_every_command_has_an_example(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0 and "Example" in out


def test_version(capsys):
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.startswith("corrbench ")


@pytest.mark.parametrize("args, fragments", [
    (["train", "--dataset", "cifar11"], ["unknown dataset 'cifar11'", "cifar10"]),
    (["train", "--dataset", "mnist5k", "--arch", "resnet19"], ["unknown arch", "resnet18"]),
    (["train", "--dataset", "mnist5k", "--method", "standrd"], ["unknown method 'standrd'", "standard"]),
    (["train", "--dataset", "mnist5k", "--epochs", "0"], ["epochs must be at least 1"]),
    (["train", "--dataset", "mnist5k", "--lr", "0"], ["lr must be greater than 0"]),
    (["train", "--dataset", "mnist5k", "--batch-size", "0"], ["batch size must be at least 1"]),
    (["train", "--dataset", "mnist5k", "--set", "bogus=1"], ["unknown setting"]),
    (["train", "--dataset", "cifar10", "--data-root", "/nonexistent/corrbench"],
     ["/nonexistent/corrbench", "mnist5k"]),
    (["methods", "show", "magnn"], ["unknown method"]),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragments):
    code, _, err = run_cli(capsys, *args)
    assert_user_error(code, err, *fragments)


def test_eval_bad_inputs(capsys, mnist_run, tmp_path):
    code, _, err = run_cli(capsys, "eval", "--checkpoint", mnist_run, "--suite", "mnist5k-x")
    assert_user_error(code, err, "unknown suite", "mnist5k-c")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", mnist_run, "--corruptions", "gausian_noise")
    assert_user_error(code, err, "gausian_noise")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", mnist_run, "--severities", "6")
    assert_user_error(code, err, "severity must be between 1 and 5")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", tmp_path / "nothing")
    assert_user_error(code, err, "no checkpoint")
    not_a_checkpoint = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, not_a_checkpoint)
    code, _, err = run_cli(capsys, "eval", "--checkpoint", not_a_checkpoint)
    assert_user_error(code, err, "not a corrbench checkpoint")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((mnist_run / "checkpoint.pt").read_bytes()[:5000])
    code, _, err = run_cli(capsys, "eval", "--checkpoint", truncated)
    assert_user_error(code, err, "truncated")


def test_report_without_results(capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", "--results", tmp_path)
    assert_user_error(code, err, "no results", str(tmp_path))
    code, _, err = run_cli(capsys, "report", "--results", tmp_path, "--format", "pdf")
    assert_user_error(code, err, "unknown", "md")


def test_train_eval_calibrate_report_end_to_end(capsys, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    for method in ("standard", "gaussian-noise"):
        code, out, err = run_cli(capsys, "train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--method", method,
                                 "--epochs", "1", "--batch-size", "100", "--runs-dir", runs, "--device", "cpu")
        assert code == 0, err
        assert "run folder" in out
    run_dirs = sorted(runs.iterdir())
    assert [p.name.split("-")[2] for p in run_dirs] == ["gaussian", "standard"]
    for run_dir in run_dirs:
        code, out, err = run_cli(capsys, "eval", "--checkpoint", run_dir, "--corruptions", "contrast,impulse_noise",
                                 "--severities", "1,3", "--results", results, "--device", "cpu")
        assert code == 0, err
        assert "contrast" in out and "mean CE" in out
    files = sorted(results.glob("eval__*.parquet"))
    assert len(files) == 2 and list(pd.read_parquet(files[0]).columns) == COLUMNS
    code, out, err = run_cli(capsys, "calibrate", "--checkpoint", run_dirs[1], "--corruptions", "contrast",
                             "--severities", "5", "--fit-images", "500", "--results", results, "--device", "cpu")
    assert code == 0, err
    assert "temperature" in out
    plots = sorted((results / "plots").glob("*.png"))
    assert len(plots) == 4
    calibration = pd.read_parquet(next(results.glob("calibrate__*.parquet")))
    assert 1.0 in set(calibration["temperature"]) and calibration["temperature"].nunique() == 2
    code, out, err = run_cli(capsys, "report", "--results", results, "--format", "md")
    assert code == 0, err
    assert "| gaussian-noise" in out and "| standard" in out and "contrast" in out
    out_file = tmp_path / "table.tex"
    code, out, err = run_cli(capsys, "report", "--results", results, "--format", "latex", "--out", out_file)
    assert code == 0 and "\\begin{tabular}" in out_file.read_text()


def test_flip_rate_on_cifar10_p_layout(capsys, cifar_run, cifar_root, tmp_path):
    test_images, _ = write_cifar10(cifar_root)
    folder = cifar_root / "CIFAR-10-P"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    n = 6
    for name, frames in (("gaussian_noise", 31), ("translate", 16)):
        videos = np.repeat(test_images[:n, None], frames, axis=1).astype(int)
        videos[:, 1:] += rng.integers(-60, 61, videos[:, 1:].shape)
        np.save(folder / f"{name}.npy", np.clip(videos, 0, 255).astype(np.uint8))
    code, out, err = run_cli(capsys, "flip-rate", "--checkpoint", cifar_run, "--data-root", cifar_root,
                             "--results", tmp_path, "--device", "cpu")
    assert code == 0, err
    rows = pd.read_parquet(next(tmp_path.glob("flip-rate__*.parquet")))
    assert sorted(rows["corruption"]) == ["gaussian_noise", "translate"]
    assert rows["n"].tolist() == [n, n] and rows["flip_probability"].between(0, 1).all()
    # independent computation of the noise rule: every frame against frame 0
    from corrbench.engine.runs import load_run
    run = load_run(cifar_run, torch.device("cpu"))
    videos = torch.from_numpy(np.load(folder / "gaussian_noise.npy")).permute(0, 1, 4, 2, 3).float() / 255
    with torch.no_grad():
        predictions = run.model(videos.reshape(-1, 3, 32, 32)).argmax(1).reshape(n, 31).numpy()
    expected = np.mean(predictions[:, 1:] != predictions[:, :1])
    got = rows[rows.corruption == "gaussian_noise"]["flip_probability"].item()
    assert got == pytest.approx(expected)
    np.save(folder / "translate.npy", np.zeros((2, 16, 32, 32), np.uint8))
    code, _, err = run_cli(capsys, "flip-rate", "--checkpoint", cifar_run, "--data-root", cifar_root,
                           "--results", tmp_path, "--device", "cpu")
    assert_user_error(code, err, "translate.npy")


def test_data_zoo_methods_listings(capsys):
    code, out, _ = run_cli(capsys, "data")
    assert code == 0 and "mnist5k" in out and "cifar10-c" in out and "looked in" in out
    code, out, _ = run_cli(capsys, "zoo")
    assert code == 0 and "cifar_resnet18" in out and "wrn_28_2" in out
    code, out, _ = run_cli(capsys, "zoo", "resnet18", "--image-size", "32")
    assert code == 0 and "cifar_resnet18" in out
    code, out, _ = run_cli(capsys, "methods")
    assert code == 0 and "gaussian-noise" in out and "standard" in out
    code, out, _ = run_cli(capsys, "methods", "show", "gaussian-noise")
    assert code == 0 and "sigma_max" in out and "0.2" in out


def test_console_script_exit_code_without_traceback(tmp_path):
    """The installed entry point itself (not only main()) turns user errors into exit 2."""
    corrbench = Path(sys.executable).parent / "corrbench"
    done = subprocess.run([str(corrbench), "train", "--dataset", "nope"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 2 and "Traceback" not in done.stderr and "unknown dataset 'nope'" in done.stderr


def test_ctrl_c_keeps_a_resumable_checkpoint(tmp_path):
    """A real SIGINT during `corrbench train`: exit 130, one line, the last epoch's checkpoint kept, and
    `--resume` reaches the weights of an uninterrupted run."""
    import signal
    import time

    from corrbench.engine.checkpoint import load_checkpoint, state_digest

    corrbench = str(Path(sys.executable).parent / "corrbench")
    args = ["train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs", "4", "--batch-size", "200",
            "--device", "cpu"]
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([corrbench, *args, "--runs-dir", str(tmp_path / "a")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    checkpoint = None
    while time.time() < deadline and process.poll() is None:
        found = list((tmp_path / "a").glob("*/train_log.parquet"))   # written right after the checkpoint
        if found:
            checkpoint = found[0].parent / "checkpoint.pt"
            break
        time.sleep(0.05)
    assert checkpoint is not None, process.communicate()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("training finished before the signal arrived")
    assert process.returncode == 130 and "Traceback" not in err and "--resume" in err, err
    kept = load_checkpoint(checkpoint)["epoch"]
    assert 1 <= kept < 4
    resumed = subprocess.run([corrbench, *args, "--runs-dir", str(tmp_path / "a"), "--resume"], capture_output=True,
                             text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run([corrbench, *args, "--runs-dir", str(tmp_path / "b")], capture_output=True, text=True,
                              env=env)
    assert straight.returncode == 0, straight.stderr
    digest = lambda folder: state_digest(load_checkpoint(next(folder.glob("*/checkpoint.pt")))["model"])
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_eval_on_the_mnist_c_suite(capsys, mnist_run, tmp_path):
    code, out, err = run_cli(capsys, "eval", "--checkpoint", mnist_run, "--suite", "mnist5k-mnistc",
                             "--corruptions", "stripe,translate", "--results", tmp_path, "--device", "cpu")
    assert code == 0, err
    rows = pd.read_parquet(next(tmp_path.glob("eval__*.parquet")))
    assert sorted(rows["corruption"]) == ["clean", "stripe", "translate"]
    assert set(rows["severity"]) == {0, 1} and rows["n"].tolist() == [1000, 1000, 1000]
