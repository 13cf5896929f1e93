"""The results store: exclusive unique names, temp files out of readers' way and swept, unreadable files
skipped with one warning, rows merged per key (newest wins), schema v2 and the v1 → v2 migration."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pandas as pd
import pytest

from corrbench.atomic import sweep_temps, temp_name, write_new_file
from corrbench.errors import CorrbenchWarning, MissingDataError, WriteError
from corrbench.results import (COLUMNS, KEY_COLUMNS, SCHEMA_VERSION, TEMP_FOLDER, incomplete_checkpoint_warning,
                               load_results, mixed_weights_warning, result_files, stale_rows, to_frame,
                               write_results)

# Written by corrbench's schema-v1 code (commit 36101d8: `corrbench eval` and `corrbench calibrate` of a
# one-epoch mnist_cnn run on mnist5k-c, contrast), so the migration is tested on real v1 files.
V1_FILES = Path(__file__).parent / "data" / "results_v1"
V1_COLUMNS = ["schema_version", "kind", "run_id", "method", "method_params", "augment", "arch", "dataset", "seed",
              "suite", "source", "generator_seed", "corruption", "severity", "benchmark", "n", "error", "nll", "ece",
              "rms_adaptive", "rms_equal_width", "max_calibration_error", "aurra", "temperature", "normaliser_error",
              "flip_probability", "top5_distance", "ece_binning", "ece_bins", "rms_adaptive_binning",
              "rms_adaptive_beta", "rms_equal_width_bins", "mce_normaliser", "difficulty", "corrbench_version",
              "checkpoint_sha256", "device", "timestamp", "torch_version", "eval_batch_size"]


def rows(corruptions=("contrast",), severities=(1,), *, run_id="r1", timestamp="2026-01-01T00:00:00+00:00",
         error=0.25, sha="a" * 64, complete=True, epoch=10, kind="eval", temperature=1.0) -> pd.DataFrame:
    base = dict(kind=kind, run_id=run_id, method="standard", augment="none", arch="mnist_cnn", dataset="mnist5k",
                seed=0, suite="mnist5k-c", source="generated", generator_seed=0, temperature=temperature, n=100,
                timestamp=timestamp, weights_sha256=sha, checkpoint_complete=complete, checkpoint_epoch=epoch,
                precision="fp32")
    out = [dict(base, corruption="clean", severity=0, error=0.1, benchmark=False)]
    out += [dict(base, corruption=c, severity=s, error=error, benchmark=True) for c in corruptions for s in severities]
    return to_frame(out)


def write(frame: pd.DataFrame, folder: Path) -> Path:
    return write_results(frame, folder, kind=str(frame["kind"].iloc[0]), run_id=str(frame["run_id"].iloc[0]),
                         suite="mnist5k-c")


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- names and temp files

def test_same_rows_written_twice_keep_both_files_with_numbered_names(tmp_path):
    frame = rows()
    paths = [write(frame, tmp_path) for _ in range(3)]
    stem = "eval__r1__mnist5k-c__20260101T000000Z"
    assert [p.name for p in paths] == [f"{stem}.parquet", f"{stem}-2.parquet", f"{stem}-3.parquet"]
    assert visible(tmp_path) == sorted(p.name for p in paths)     # no .tmp/ folder, no hidden temp left
    assert len(load_results(tmp_path, merge=False)) == 3 * len(frame)
    assert len(load_results(tmp_path)) == len(frame)                # same keys: one row each


def test_file_names_are_portable_and_distinct_per_suite():
    from corrbench.results import result_filename
    stamp = "2026-01-01T00:00:00+00:00"
    names = {result_filename("eval", "r", suite, stamp) for suite in ("cfolder:/data/a-c", "cfolder:/data/a_c",
                                                                      "npy:x.npy,y.npy-c")}
    assert len(names) == 3 and all(re.fullmatch(r"[A-Za-z0-9._+-]+", name) for name in names)
    assert result_filename("eval", "r", "cifar10-c", stamp) == "eval__r__cifar10-c__20260101T000000Z.parquet"


def test_concurrent_writers_of_one_name_each_keep_their_file(tmp_path):
    frames = [rows(error=0.01 * i) for i in range(8)]
    paths: list[Path] = []
    barrier = threading.Barrier(len(frames))

    def writer(frame):
        barrier.wait()
        paths.append(write(frame, tmp_path))

    threads = [threading.Thread(target=writer, args=(f,)) for f in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 8 and len(result_files(tmp_path)) == 8
    errors = sorted(load_results(tmp_path, merge=False).query("corruption == 'contrast'")["error"])
    assert errors == pytest.approx([0.01 * i for i in range(8)])


def test_write_new_file_never_replaces_an_existing_file(tmp_path):
    (tmp_path / "a.txt").write_text("first")
    path = write_new_file(tmp_path, ["a.txt", "b.txt"], lambda temp: temp.write_text("second"))
    assert path.name == "b.txt" and (tmp_path / "a.txt").read_text() == "first"
    with pytest.raises(WriteError, match="a.txt"):
        write_new_file(tmp_path, ["a.txt"], lambda temp: temp.write_text("third"))
    assert visible(tmp_path) == ["a.txt", "b.txt"]


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_temps_of_gone_processes_are_swept_and_never_read(tmp_path):
    write(rows(), tmp_path)
    temp_dir = tmp_path / TEMP_FOLDER
    temp_dir.mkdir()
    mine = temp_dir / temp_name(tmp_path / "eval__x.parquet")          # this (live) process's
    pid = os.getpid()
    gone = temp_dir / mine.name.replace(f"-{pid}-", f"-{dead_pid()}-")
    legacy = tmp_path / ".eval__x.0123456789ab.tmp.parquet"           # corrbench < schema v2 wrote these
    for temp in (mine, gone, legacy):
        rows(("frost",)).to_parquet(temp)
    old = legacy.stat().st_mtime - 2 * 3600
    os.utime(legacy, (old, old))
    loaded = load_results(tmp_path)
    assert "frost" not in set(loaded["corruption"])                    # temp files are never results
    assert mine.exists() and not gone.exists() and not legacy.exists()
    fresh_legacy = tmp_path / ".eval__y.0123456789ab.tmp.parquet"   # may still be written by an old corrbench
    fresh_legacy.write_bytes(b"")
    assert sweep_temps(tmp_path) == 0 and fresh_legacy.exists()
    fresh_legacy.unlink()
    mine.unlink()
    load_results(tmp_path)
    assert not temp_dir.exists()


def test_unreadable_files_are_skipped_with_one_warning(tmp_path):
    write(rows(), tmp_path)
    (tmp_path / "eval__broken__x__1.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "empty.parquet").write_bytes(b"")
    newer = rows().assign(schema_version=SCHEMA_VERSION + 1)
    newer.to_parquet(tmp_path / "sub" / "future.parquet")
    with pytest.warns(CorrbenchWarning) as caught:
        loaded = load_results(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "skipped 3 unreadable results files" in message and "2 more" in message
    assert len(loaded) == 2 and len(loaded.attrs["skipped_files"]) == 3
    for path in result_files(tmp_path):
        if path.parent == tmp_path / "sub" or "broken" in path.name:
            path.unlink()
    (tmp_path / "only.parquet").write_bytes(b"junk")
    for path in result_files(tmp_path):
        if path.name.startswith("eval__"):
            path.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorrbenchWarning)
        with pytest.raises(MissingDataError, match="no readable corrbench results"):
            load_results(tmp_path)


def test_write_errors_are_one_line_and_leave_no_temp(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    with pytest.raises(WriteError) as error:
        write(rows(), blocker / "results")
    assert str(blocker) in str(error.value) and "\n" not in str(error.value)

    def fails(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match="No space left on device.*free some space"):
        write_new_file(tmp_path / "out", ["x.parquet"], fails, temp_dir=tmp_path / "out" / TEMP_FOLDER)
    assert list((tmp_path / "out").rglob("*")) == [tmp_path / "out" / TEMP_FOLDER]
    assert not list((tmp_path / "out" / TEMP_FOLDER).iterdir())


# ---------------------------------------------------------------- merging

def test_split_evaluations_add_up_and_reevaluations_replace(tmp_path):
    write(rows(("contrast",), timestamp="2026-01-01T00:00:00+00:00", error=0.3), tmp_path)
    write(rows(("gaussian_noise",), timestamp="2026-01-01T00:00:05+00:00", error=0.4), tmp_path)
    merged = load_results(tmp_path)
    assert sorted(merged["corruption"]) == ["clean", "contrast", "gaussian_noise"]
    write(rows(("contrast",), timestamp="2026-01-02T00:00:00+00:00", error=0.2), tmp_path)
    merged = load_results(tmp_path)
    assert merged.set_index("corruption")["error"].to_dict() == {"clean": 0.1, "contrast": 0.2,
                                                                  "gaussian_noise": 0.4}
    assert len(load_results(tmp_path, merge=False)) == 6


def test_same_timestamp_the_later_written_file_wins(tmp_path):
    for error in (0.5, 0.25, 0.75):          # files stem.parquet, stem-2.parquet, stem-3.parquet
        write(rows(error=error), tmp_path)
    (tmp_path / "sub").mkdir()
    merged = load_results(tmp_path)
    assert merged.query("corruption == 'contrast'")["error"].tolist() == [0.75]


def test_keys_keep_calibrate_roles_precisions_and_kinds_apart(tmp_path):
    write(rows(kind="calibrate", temperature=1.0), tmp_path)
    write(rows(kind="calibrate", temperature=1.7, timestamp="2026-01-01T00:00:01+00:00"), tmp_path)
    write(rows(), tmp_path)
    write(rows().assign(precision="bf16"), tmp_path)
    merged = load_results(tmp_path)
    assert len(merged) == 4 * 2
    assert sorted(set(merged.query("kind == 'calibrate'")["temperature"])) == [1.0, 1.7]
    assert sorted(set(merged.query("kind == 'eval'")["precision"])) == ["bf16", "fp32"]
    assert "temperature_role" in KEY_COLUMNS and "precision" in KEY_COLUMNS


def test_stale_incomplete_and_mixed_rows_are_named():
    frame = pd.concat([rows(("contrast",), sha="a" * 64, complete=False, epoch=3),
                       rows(("gaussian_noise",), sha="b" * 64)], ignore_index=True)
    assert stale_rows(frame, {"r1": "b" * 64}).tolist() == [True, True, False, False]
    assert not stale_rows(frame, {"other": "c" * 64}).any()
    message = incomplete_checkpoint_warning(frame)
    assert "2 result rows" in message and "r1 (epoch 3)" in message and "--resume" in message
    assert "r1 on mnist5k-c" in mixed_weights_warning(frame)
    assert incomplete_checkpoint_warning(rows()) is None and mixed_weights_warning(rows()) is None


# ---------------------------------------------------------------- schema v2 and migration

def test_to_frame_fills_v2_defaults_and_dtypes():
    frame = rows()
    assert list(frame.columns) == COLUMNS and (frame["schema_version"] == 2).all()
    assert (frame["label"] == "r1").all() and (frame["model_source"] == "run:r1").all()
    assert (frame["class_map"] == "").all()
    assert str(frame["seed"].dtype) == "Int64" and str(frame["checkpoint_epoch"].dtype) == "Int64"
    assert str(frame["checkpoint_complete"].dtype) == "boolean"
    external = to_frame([dict(kind="eval", run_id="timm-resnet18-0123abcd", label="my resnet",
                              model_source="timm:resnet18", seed=None, method="external", corruption="clean",
                              severity=0, benchmark=False, n=1)])
    assert external["label"].item() == "my resnet" and pd.isna(external["seed"].item())


def test_v1_files_are_migrated_on_read(tmp_path):
    for path in V1_FILES.glob("*.parquet"):
        assert list(pd.read_parquet(path).columns) == V1_COLUMNS
        (tmp_path / path.name).write_bytes(path.read_bytes())
    raw = pd.concat([pd.read_parquet(p) for p in sorted(V1_FILES.glob("*.parquet"))], ignore_index=True)
    loaded = load_results(tmp_path)
    assert list(loaded.columns) == COLUMNS + ["file"] and len(loaded) == len(raw) == 3 + 4
    assert (loaded["schema_version"] == SCHEMA_VERSION).all()
    assert (loaded["label"] == loaded["run_id"]).all()
    assert (loaded["model_source"] == "run:" + loaded["run_id"]).all()
    assert set(loaded["weights_sha256"]) == set(raw["checkpoint_sha256"]) and loaded["weights_sha256"].str.len().eq(64).all()
    assert set(loaded["precision"]) == {"fp32"}                         # evaluated on the CPU
    assert loaded["checkpoint_epoch"].isna().all() and loaded["checkpoint_complete"].isna().all()
    assert (loaded["preprocessing"] == "").all() and (loaded["class_map"] == "").all()
    ordered = lambda f: f.sort_values(["kind", "corruption", "severity", "temperature"]).reset_index(drop=True)
    for column in ("error", "nll", "ece", "temperature", "n", "timestamp"):
        assert ordered(loaded)[column].tolist() == ordered(raw)[column].tolist()
    # a v1 row evaluated on a GPU ran under bf16 autocast
    gpu = pd.read_parquet(next(V1_FILES.glob("eval__*.parquet"))).assign(device="NVIDIA H200")
    gpu.to_parquet(tmp_path / "eval__gpu__mnist5k-c__20261204T000000Z.parquet")
    loaded = load_results(tmp_path, merge=False)
    assert set(loaded[loaded["file"].str.contains("gpu")]["precision"]) == {"bf16"}
