"""Evaluation engine: suites from files and generated, results schema, aggregates, baselines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from corrbench.corruptions import ALL_CORRUPTIONS
from corrbench.data.suites import GENERATION_CHUNK, GeneratedImages, open_corruption_suite
from corrbench.data.datasets import load_dataset
from corrbench.engine.evaluate import evaluate
from corrbench.engine.runs import load_run
from corrbench.errors import LayoutError, MissingDataError, UserError
from corrbench.results import COLUMNS, aggregate, load_results

from conftest import write_cifar10


def build_cifar10_c(root, test_images, test_labels, corruptions=ALL_CORRUPTIONS, seed=1):
    """A CIFAR-10-C folder in the official layout: <c>.npy (5N, 32, 32, 3) uint8, severity blocks in
    test-set order, labels.npy (5N,) uint8."""
    rng = np.random.default_rng(seed)
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True, exist_ok=True)
    for corruption in corruptions:
        blocks = [np.clip(test_images.astype(int) + rng.integers(-40 * s, 40 * s + 1, test_images.shape), 0, 255)
                  for s in range(1, 6)]
        np.save(folder / f"{corruption}.npy", np.concatenate(blocks).astype(np.uint8))
    np.save(folder / "labels.npy", np.tile(test_labels, 5).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def cifar_c(cifar_root):
    test_images, test_labels = write_cifar10(cifar_root)   # same seed: rewrites identical files
    return build_cifar10_c(cifar_root, test_images, test_labels), test_labels


def test_files_suite_errors_match_an_independent_computation(cifar_run, cifar_root, cifar_c, tmp_path):
    folder, labels = cifar_c
    result = evaluate(cifar_run, "cifar10-c", data_root=cifar_root, source="files", results_dir=tmp_path,
                      batch_size=16, device="cpu")
    rows = result.rows
    assert len(rows) == 1 + 19 * 5 and set(rows["source"]) == {"files"}
    run = load_run(cifar_run, torch.device("cpu"))
    n = len(labels)
    for corruption in ("gaussian_noise", "frost", "saturate"):
        data = np.load(folder / f"{corruption}.npy")
        for severity in range(1, 6):
            block = torch.from_numpy(data[(severity - 1) * n:severity * n]).permute(0, 3, 1, 2).float() / 255
            with torch.no_grad():
                predictions = run.model(block).argmax(1).numpy()
            expected = float(np.mean(predictions != labels))
            got = rows[(rows.corruption == corruption) & (rows.severity == severity)]["error"].item()
            assert got == pytest.approx(expected, abs=1e-12)
    clean = rows[rows.corruption == "clean"]
    assert clean["severity"].item() == 0 and clean["n"].item() == n
    assert rows["benchmark"].sum() == 15 * 5


def test_results_file_has_documented_columns(mnist_run, tmp_path):
    result = evaluate(mnist_run, "mnist5k-c", source="generated", corruptions=["contrast", "gaussian_noise"],
                      severities=[1, 5], results_dir=tmp_path, device="cpu")
    frame = pd.read_parquet(result.path)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 1 + 2 * 2
    row = frame.iloc[1]
    assert row["kind"] == "eval" and row["suite"] == "mnist5k-c" and row["source"] == "generated"
    assert row["generator_seed"] == 0 and row["ece_bins"] == 15 and row["rms_adaptive_beta"] == 100
    assert len(row["weights_sha256"]) == 64 and row["dataset"] == "mnist5k" and row["arch"] == "mnist_cnn"
    assert row["checkpoint_epoch"] == 1 and row["checkpoint_complete"] and row["precision"] == "fp32"
    assert row["label"] == row["run_id"] and row["model_source"] == "run:" + row["run_id"]
    assert 0 <= row["error"] <= 1 and row["n"] == 1000
    assert not list(tmp_path.glob(".*"))   # no temp files left behind
    loaded = load_results(tmp_path)
    assert len(loaded) == len(frame)


def test_generated_suite_is_seeded_and_independent_of_batch_size(mnist_run, tmp_path):
    clean = load_dataset("mnist5k", "test")
    a = GeneratedImages(clean, "shot_noise", 3, 7, "cifar", torch.device("cpu"))
    b = GeneratedImages(clean, "shot_noise", 3, 7, "cifar", torch.device("cpu"))
    c = GeneratedImages(clean, "shot_noise", 3, 8, "cifar", torch.device("cpu"))
    whole = a(slice(0, len(clean)))
    pieces = torch.cat([b(slice(s, min(s + 300, len(clean)))) for s in range(0, len(clean), 300)])
    assert torch.equal(whole, pieces)
    assert not torch.equal(whole, c(slice(0, len(clean))))
    assert GENERATION_CHUNK >= 1
    one = evaluate(mnist_run, "mnist5k-c", source="generated", seed=7, corruptions=["shot_noise"], severities=[3],
                   batch_size=100, results_dir=None, device="cpu").rows
    two = evaluate(mnist_run, "mnist5k-c", source="generated", seed=7, corruptions=["shot_noise"], severities=[3],
                   batch_size=333, results_dir=None, device="cpu").rows
    assert one["error"].tolist() == two["error"].tolist()


def test_aggregate_hand_computed():
    base = dict(kind="eval", run_id="r", method="m", augment="none", arch="a", dataset="d", seed=0, suite="s",
                source="files", temperature=1.0, nll=1.0, ece=0.1, rms_adaptive=0.2, rms_equal_width=0.2,
                aurra=0.9, flip_probability=np.nan, top5_distance=np.nan, mce_normaliser="alexnet")
    rows = [dict(base, corruption="clean", severity=0, error=0.1, benchmark=False, normaliser_error=0.4)]
    for corruption, errors, reference in (("gaussian_noise", [0.2, 0.4], [0.5, 0.5]),
                                          ("contrast", [0.3, 0.3], [0.6, 0.9])):
        for severity, (error, ref) in enumerate(zip(errors, reference), start=1):
            rows.append(dict(base, corruption=corruption, severity=severity, error=error, benchmark=True,
                             normaliser_error=ref))
    rows.append(dict(base, corruption="saturate", severity=1, error=0.9, benchmark=False, normaliser_error=0.9))
    summary = aggregate(pd.DataFrame(rows)).iloc[0]
    assert summary["clean_error"] == 0.1
    assert summary["mean_corruption_error"] == pytest.approx((0.2 + 0.4 + 0.3 + 0.3) / 4)   # saturate is extra
    assert summary["relative_mean_ce"] == pytest.approx(0.3 - 0.1)
    assert summary["mce"] == pytest.approx((0.6 / 1.0 + 0.6 / 1.5) / 2)
    # relative: Σ_s (E − E_clean) / Σ_s (N − N_clean) with N_clean 0.4
    assert summary["relative_mce"] == pytest.approx(((0.1 + 0.3) / (0.1 + 0.1) + (0.2 + 0.2) / (0.2 + 0.5)) / 2)


def test_baseline_normalises_mce(mnist_run, tmp_path):
    options = dict(source="generated", corruptions=["contrast"], severities=[2, 4], device="cpu")
    with pytest.raises(MissingDataError, match="evaluate the baseline first"):   # loaded, never evaluated here
        evaluate(mnist_run, "mnist5k-c", baseline=mnist_run, results_dir=tmp_path, **options)
    assert not list(tmp_path.iterdir())
    evaluate(mnist_run, "mnist5k-c", results_dir=tmp_path, **options)
    result = evaluate(mnist_run, "mnist5k-c", baseline=mnist_run, results_dir=tmp_path, **options)
    summary = result.summary.iloc[0]
    assert summary["mce"] == pytest.approx(1.0)          # a run normalised by itself
    assert summary["mce_normaliser"].startswith("baseline:")


def test_suite_for_another_dataset_is_refused(mnist_run):
    with pytest.raises(UserError, match="trained on mnist5k"):
        evaluate(mnist_run, "cifar10-c", results_dir=None, device="cpu")


def test_missing_official_files_say_where_and_how(cifar_run, tmp_path):
    with pytest.raises(MissingDataError, match=r"CIFAR-10-C.*(Zenodo|--source generated)"):
        open_corruption_suite("cifar10-c", tmp_path, source="files")


def test_malformed_c_folder_names_the_file(cifar_root, tmp_path):
    test_images, test_labels = write_cifar10(tmp_path)
    folder = build_cifar10_c(tmp_path, test_images, test_labels, corruptions=ALL_CORRUPTIONS[:3])
    with pytest.raises(LayoutError, match="missing .*glass_blur.npy"):
        open_corruption_suite("cifar10-c", tmp_path, source="files")
    np.save(folder / "gaussian_noise.npy", np.zeros((10, 32, 32), np.uint8))
    suite = open_corruption_suite("cifar10-c", tmp_path, source="files", corruptions=["gaussian_noise"])
    with pytest.raises(LayoutError, match="gaussian_noise.npy"):
        next(iter(suite.parts(include_clean=False)))
