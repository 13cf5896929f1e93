"""The bad-input catalogue: every mistake a user can make on the command line ends in one line on stderr
(plus the usage line for usage errors), exit code 2, no traceback, and nothing written — no run folder,
no results file, no temp file — wherever the command would have written."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from corrbench.cli.app import main

TRAIN = ["train", "--dataset", "mnist5k", "--arch", "mnist_cnn", "--epochs", "1", "--device", "cpu",
         "--runs-dir", "runs"]
RECIPE_HEAD = '[train]\narchs = ["mnist_cnn"]\nmethods = ["standard"]\n'


@dataclass
class Case:
    id: str
    args: list[str]                  # "{run}" stands for a trained run folder, "{file}" for a plain file
    fragments: list[str]             # each must appear in the error line
    usage: bool = False              # a usage error: the error line, then the command's usage line
    files: dict[str, str] = field(default_factory=dict)   # written into the working folder first
    setup: Callable[[Path], None] | None = None


def write_npy_with_label(label: int) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        np.save(folder / "images.npy", np.zeros((8, 32, 32, 3), np.uint8))
        np.save(folder / "labels.npy", np.array([0, 1, 2, 3, 0, 1, 2, label]))
    return setup


CATALOGUE = [
    # usage errors (typer's bundled click, or click)
    Case("epochs-not-a-number", ["train", "--epochs", "abc"], ["'--epochs'", "integer"], usage=True),
    Case("missing-option", ["data", "make-mnistc", "--dataset", "mnist5k"], ["Missing option '--out'"], usage=True),
    Case("missing-argument", ["methods", "show"], ["Missing argument"], usage=True),
    Case("eval-without-a-model", ["eval"], ["--checkpoint"]),
    Case("unknown-option", ["train", "--bogus"], ["No such option: --bogus"], usage=True),
    Case("unknown-command", ["nosuchcmd"], ["No such command 'nosuchcmd'"], usage=True),
    Case("option-without-value", ["report", "--format"], ["'--format' requires an argument"], usage=True),
    # names, with the closest valid one
    Case("unknown-dataset", TRAIN + ["--dataset", "nosuch"], ["unknown dataset 'nosuch'", "mnist5k"]),
    Case("unknown-method", TRAIN + ["--method", "standrd"], ["unknown method 'standrd'", "Did you mean 'standard'"]),
    Case("unknown-corruption", ["eval", "--checkpoint", "{run}", "--corruptions", "gausian_noise", "--results", "res"],
         ["unknown corruption 'gausian_noise'", "Did you mean 'gaussian_noise'"]),
    Case("empty-corruption-list", ["eval", "--checkpoint", "{run}", "--corruptions", ",", "--results", "res"],
         ["--corruptions lists no names"]),
    Case("unknown-report-format", ["report", "--format", "pdf"], ["unknown format 'pdf'", "latex"]),
    Case("unknown-device", TRAIN + ["--device", "gpu"], ["unknown device 'gpu'", "cuda:N"]),
    Case("unknown-launcher", ["run", "quickstart", "--launcher", "slurm"], ["unknown launcher 'slurm'", "submitit"]),
    # numbers
    Case("lr-inf", TRAIN + ["--lr", "inf"], ["lr must be a finite number greater than 0", "inf"]),
    Case("gamma-negative", TRAIN + ["--set", "gamma=-1"], ["gamma must be between 0 and 1"]),
    Case("gamma-huge", TRAIN + ["--set", "gamma=1e6"], ["gamma must be between 0 and 1"]),
    Case("seed-not-a-number", TRAIN + ["--set", "seed=abc"], ["seed expects an integer", "'abc'"]),
    Case("unknown-setting", TRAIN + ["--set", "epoch=2"], ["unknown setting"]),
    Case("method-hyperparameter-out-of-range", TRAIN + ["--method", "gaussian-noise", "--set",
                                                       "gaussian-noise.sigma_max=-1"], ["sigma_max must be ≥ 0"]),
    Case("eval-batch-size-0", ["eval", "--checkpoint", "{run}", "--batch-size", "0", "--results", "res"],
         ["--batch-size must be at least 1"]),
    Case("severity-6", ["eval", "--checkpoint", "{run}", "--severities", "6", "--results", "res"],
         ["severity must be between 1 and 5"]),
    # recipes
    Case("recipe-datasets-is-a-string", ["run", "r.toml", "--runs-dir", "runs", "--results", "res"],
         ["datasets must be a list of text", "mnist5k"], files={"r.toml": RECIPE_HEAD + 'datasets = "mnist5k"\n'}),
    Case("recipe-seed-not-a-number", ["run", "r.toml", "--runs-dir", "runs", "--results", "res"],
         ["seeds must be a list of integers", "zero"],
         files={"r.toml": RECIPE_HEAD + 'datasets = ["mnist5k"]\nseeds = ["zero"]\n'}),
    Case("recipe-unknown-train-key", ["run", "r.toml"], ["unknown key in [train]: datasetz", "datasets"],
         files={"r.toml": RECIPE_HEAD + 'datasetz = ["mnist5k"]\n'}),
    Case("recipe-setting-in-train", ["run", "r.toml"], ["epochs in [train] is a training setting", "[train.settings]"],
         files={"r.toml": RECIPE_HEAD + 'datasets = ["mnist5k"]\nepochs = 1\n'}),
    Case("recipe-unknown-setting", ["run", "r.toml"], ["unknown key in [train.settings]: epoch", "epochs"],
         files={"r.toml": RECIPE_HEAD + 'datasets = ["mnist5k"]\n[train.settings]\nepoch = 1\n'}),
    Case("recipe-unknown-table", ["run", "r.toml"], ["unknown table evaluation", "eval"],
         files={"r.toml": RECIPE_HEAD + 'datasets = ["mnist5k"]\n[evaluation]\nsuites = ["c"]\n'}),
    Case("run-set-eval-severities", ["run", "quickstart", "--set", "eval.severities=x"],
         ["--set eval.severities expects an integer", "'x'"]),
    Case("run-set-seed", ["run", "quickstart", "--set", "seed=abc"], ["--set seed expects an integer"]),
    Case("run-only-typo", ["run", "quickstart", "--only", "method=magnn"],
         ["--only method=magnn matches no job", "Did you mean 'magn'"]),
    # files and folders
    Case("runs-dir-in-proc", TRAIN + ["--runs-dir", "/proc/corrbench-x"], ["--runs-dir /proc/corrbench-x cannot be written"]),
    Case("results-in-proc", ["eval", "--checkpoint", "{run}", "--results", "/proc/corrbench-x"],
         ["--results /proc/corrbench-x cannot be written"]),
    Case("results-under-a-file", ["eval", "--checkpoint", "{run}", "--results", "{file}/results"],
         ["is a file, not a folder"]),
    Case("report-out-in-proc", ["report", "--out", "/proc/corrbench-x/table.md"], ["--out", "cannot be written"]),
    Case("npy-labels-far-beyond-the-images", TRAIN + ["--dataset", "npy:images.npy,labels.npy"],
         ["labels go up to 100000", "relabel"], setup=write_npy_with_label(100000)),
    # failures after the command started its work: still nothing written
    Case("missing-dataset", TRAIN + ["--dataset", "cifar10", "--data-root", "empty"], ["cifar10"]),
    Case("holdout-too-large", TRAIN + ["--holdout", "4000"], ["holdout 4000 leaves no training images"]),
    Case("nan-in-epoch-1", TRAIN + ["--lr", "1e30"], ["loss became", "at epoch 1", "nothing was written"]),
]


def snapshot(*folders: Path) -> set[str]:
    """Every file and folder (hidden ones too) under `folders`."""
    return {str(path) for folder in folders if folder.exists() for path in [folder, *folder.rglob("*")]}


def one_error_line(err: str, usage: bool) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == (2 if usage else 1), err
    assert lines[0].startswith("error: "), err
    if usage:
        assert lines[1].startswith("Usage: corrbench") and "--help" in lines[1], err
    return lines[0]


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.id for case in CATALOGUE])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, mnist_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    if case.setup is not None:
        case.setup(tmp_path)
    args = [a.replace("{run}", str(mnist_run)).replace("{file}", str(tmp_path / "a-file")) for a in case.args]
    before = snapshot(tmp_path, mnist_run)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    line = one_error_line(err, case.usage)
    for fragment in case.fragments:
        assert fragment in line, line
    assert snapshot(tmp_path, mnist_run) == before, "the command left files behind"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("option", ["--runs-dir", "--results"])
def test_read_only_output_folder_is_refused_up_front(option, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        args = TRAIN + [option, str(folder)] if option == "--runs-dir" else ["eval", "--checkpoint", "x", option,
                                                                              str(folder)]
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        line = one_error_line(capsys.readouterr().err, usage=False)
        assert exit_info.value.code == 2 and f"{option} {folder} cannot be written" in line
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


USAGE_ERRORS = [case for case in CATALOGUE if case.usage]


@pytest.mark.parametrize("case", USAGE_ERRORS, ids=[case.id for case in USAGE_ERRORS])
def test_usage_errors_through_the_installed_console_script(case, tmp_path):
    corrbench = Path(sys.executable).parent / "corrbench"
    done = subprocess.run([str(corrbench), *case.args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr, usage=True)
    for fragment in case.fragments:
        assert fragment in line
    assert list(tmp_path.iterdir()) == []


def test_help_shows_every_default_and_flags_take_no_value(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    assert "[default: the method's recipe]" in out and "Epochs ." not in out
    assert "[default: $CORRBENCH_DATA or ./data]" in out
    assert "<bool>" not in out


def test_free_space_is_checked_up_front_and_the_check_writes_nothing(tmp_path):
    import shutil

    from corrbench.errors import WriteError
    from corrbench.writable import MB, check_writable_folder

    target = tmp_path / "new" / "results"
    check_writable_folder(target, "--results", free_bytes=1)
    assert list(tmp_path.iterdir()) == []   # not created, and the probe file is gone
    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(WriteError, match=r"--results .* MB free on its disk, \d+ MB needed"):
        check_writable_folder(target, "--results", free_bytes=free + 1024 * MB)
    assert list(tmp_path.iterdir()) == []


def test_every_setting_parses_to_its_declared_type():
    """`--set KEY=VALUE` parses each RunConfig field to the field's type (a new bool field must not
    become the text 'false', which is truthy)."""
    import dataclasses
    import types
    import typing

    from corrbench.config import RunConfig, parse_field

    samples = {int: ("3", 3), float: ("0.5", 0.5), bool: ("false", False), tuple: ("1,2", (1, 2)), str: ("x", "x")}
    hints = typing.get_type_hints(RunConfig)
    for name in RunConfig.settings():
        hint = hints[name]
        kinds = [k for k in (typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,))
                 if k is not type(None)]
        kind = typing.get_origin(kinds[0]) or kinds[0]
        text, expected = samples[kind]
        if kind is tuple and typing.get_args(kinds[0])[0] is str:
            text, expected = "a:1,b:2", ("a:1", "b:2")
        assert parse_field(name, text) == expected, name
    assert {f.name for f in dataclasses.fields(RunConfig)} - set(RunConfig.settings()) == {"method_params"}
