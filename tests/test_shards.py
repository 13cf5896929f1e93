"""Sharded evaluation: `eval --shard i/n` and torchrun's automatic shards merge into the unsharded rows."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from corrbench.cli.app import main
from corrbench.engine.evaluate import evaluate
from corrbench.engine.run import finished_evaluations
from corrbench.errors import InvalidValueError
from corrbench.metric_catalog import ROW_METRICS
from corrbench.results import ShardMergeError, load_results
from corrbench.shards import Shard, parse_shard

SUITE = dict(source="generated", corruptions=["contrast", "gaussian_noise"], severities=[1, 5], device="cpu")
METRICS = [m.column for m in ROW_METRICS if m.compute is not None]
PER_IMAGE = ["sample_correct", "sample_confidence", "calibration_bins"]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_same_rows(whole: pd.DataFrame, merged: pd.DataFrame) -> None:
    """Equal rows per (corruption, severity): n, every metric and the per-image data. The shards' images go
    through the model in other batches, so per-image float32 logits may differ in the last bits; metrics
    are compared to float32 precision, everything that rounds those (correctness, bins, float16) exactly."""
    key = ["corruption", "severity"]
    whole, merged = whole.sort_values(key).reset_index(drop=True), merged.sort_values(key).reset_index(drop=True)
    assert whole[key + ["n"]].equals(merged[key + ["n"]])
    tolerance = 8 * np.finfo(np.float32).eps
    for column in METRICS:
        np.testing.assert_allclose(merged[column].to_numpy(float), whole[column].to_numpy(float), rtol=tolerance,
                                   atol=tolerance, equal_nan=True, err_msg=column)
    assert (merged["error"] == whole["error"]).all()
    for column in PER_IMAGE:
        assert list(merged[column]) == list(whole[column]), column
    assert merged["shard_count"].isna().all()


@pytest.mark.parametrize("text", ["3/2", "0/0", "1/0", "2/2", "-1/2", "1", "a/b", "1/2/3"])
def test_bad_shard_specs_are_one_line(text, capsys, tmp_path):
    with pytest.raises(InvalidValueError):
        parse_shard(text)
    code, out, err = run_cli(capsys, "eval", "--checkpoint", tmp_path, "--shard", text, "--results", tmp_path)
    assert code == 2 and "--shard" in err and len(err.strip().splitlines()) == 1, err


def test_shard_ranges_tile_every_part():
    for n in (0, 1, 7, 1000):
        for count in (1, 2, 3, 8):
            ranges = [Shard(i, count).range(n) for i in range(count)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1


def test_shards_merge_into_the_unsharded_rows(mnist_run, tmp_path, capsys):
    whole = evaluate(mnist_run, "mnist5k-c", results_dir=tmp_path / "whole", batch_size=128, **SUITE).rows
    shards = tmp_path / "shards"
    first = evaluate(mnist_run, "mnist5k-c", results_dir=shards, batch_size=128, shard="0/2", **SUITE)
    assert first.images == 5 * 500 and set(first.rows["n"]) == {500}
    assert set(first.rows["image_start"]) == {0} and set(first.rows["image_stop"]) == {500}
    with pytest.raises(ShardMergeError, match="leave images 500–999 of 1000 unevaluated"):
        load_results(shards)
    code, out, err = run_cli(capsys, "report", "--results", shards)
    assert code == 2 and "unevaluated" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ShardMergeError):   # `corrbench run` plans from the same merged rows
        finished_evaluations(shards)
    code, out, err = run_cli(capsys, "eval", "--checkpoint", mnist_run, "--suite", "mnist5k-c", "--source",
                             "generated", "--corruptions", "contrast,gaussian_noise", "--severities", "1,5",
                             "--device", "cpu", "--batch-size", "128", "--shard", "1/2", "--results", shards)
    assert code == 0, err
    assert "shard 1/2 only" in out
    assert sorted(p.name.rsplit("__", 1)[1] for p in shards.glob("*.parquet")) == ["shard0of2.parquet",
                                                                                    "shard1of2.parquet"]
    assert_same_rows(whole, load_results(shards))
    assert len(load_results(shards, merge=False)) == 10          # the files keep their shard rows
    code, out, err = run_cli(capsys, "report", "--results", shards)
    assert code == 0, err

    # A second split of the same suite overlaps the first: one line, exit 2.
    evaluate(mnist_run, "mnist5k-c", results_dir=shards, batch_size=128, shard="1/3", **SUITE)
    with pytest.raises(ShardMergeError, match="overlap"):
        load_results(shards)
    code, out, err = run_cli(capsys, "report", "--results", shards)
    assert code == 2 and "overlap" in err and len(err.strip().splitlines()) == 1, err


def test_torchrun_two_gloo_processes_shard_the_suite(mnist_run, tmp_path):
    whole = evaluate(mnist_run, "mnist5k-c", results_dir=None, batch_size=128, **SUITE).rows
    results = tmp_path / "results"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "corrbench", "eval", "--checkpoint", str(mnist_run), "--suite", "mnist5k-c", "--source",
               "generated", "--corruptions", "contrast,gaussian_noise", "--severities", "1,5", "--device", "cpu",
               "--batch-size", "128", "--results", str(results)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 shards merged" in done.stdout and "shard 1/2: 2500 images" in done.stdout, done.stdout
    files = sorted(results.glob("*.parquet"))
    # the ranks' timestamps may differ by a second, so compare the shard parts of the names, not the order
    assert sorted(f.name.rsplit("__", 1)[1] for f in files) == ["shard0of2.parquet", "shard1of2.parquet"]
    assert_same_rows(whole, load_results(results))
