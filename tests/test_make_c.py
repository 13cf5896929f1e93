"""`corrbench data make-c`: official layouts on disk, byte-identical to `eval --source generated`."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from corrbench.cli.app import main
from corrbench.corruptions import corrupt
from corrbench.data import generate
from corrbench.data.datasets import load_dataset
from corrbench.data.imageset import LazyImageSet, decode_rgb, resize_center_crop
from corrbench.data.make_c import (JPEG_QUALITY, PROVENANCE_FILE, image_file_names, make_c, read_provenance)
from corrbench.data.suites import GeneratedImages, generate_chunk, open_corruption_suite

CPU = torch.device("cpu")


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def metric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    keep = ["corruption", "severity", "n", "error", "nll", "ece", "rms_adaptive", "rms_equal_width", "aurra"]
    return frame[keep].sort_values(["corruption", "severity"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------
# CIFAR-10-C layout (32 px)

def test_mnist5k_files_give_the_numbers_of_the_generated_suite(capsys, mnist_run, tmp_path, monkeypatch):
    # Small chunks so that chunk offsets inside each severity block are exercised (1000 = 3×300 + 100).
    monkeypatch.setattr(generate, "GENERATION_CHUNK", 300)
    root, subset = tmp_path / "data", "gaussian_noise,contrast"
    code, out, err = run_cli(capsys, "data", "make-c", "--dataset", "mnist5k", "--out", root / "MNIST5K-C",
                             "--seed", 3, "--corruptions", subset, "--device", "cpu")
    assert code == 0, err
    assert f"--data-root {root}" in out and "gaussian_noise.npy" in out
    frames = {}
    for source in ("files", "generated"):
        results = tmp_path / f"results-{source}"
        code, _, err = run_cli(capsys, "eval", "--checkpoint", mnist_run, "--suite", "mnist5k-c", "--source",
                               source, "--seed", 3, "--corruptions", subset, "--severities", "2,5", "--data-root", root,
                               "--device", "cpu", "--results", results, "--batch-size", 500)
        assert code == 0, err
        frames[source] = pd.read_parquet(next(results.glob("*.parquet")))
    assert set(frames["files"]["source"]) == {"files"} and set(frames["generated"]["source"]) == {"generated"}
    pd.testing.assert_frame_equal(metric_columns(frames["files"]), metric_columns(frames["generated"]))

    # The bytes themselves: severity blocks of N rows in test-set order, labels tiled 5 times as uint8.
    clean = load_dataset("mnist5k", "test")
    n = len(clean)
    stored = np.load(root / "MNIST5K-C" / "gaussian_noise.npy")
    assert stored.shape == (5 * n, 32, 32, 3) and stored.dtype == np.uint8
    for severity in (1, 5):
        generated = GeneratedImages(clean, "gaussian_noise", severity, 3, "cifar", CPU)(slice(0, n))
        assert np.array_equal(stored[(severity - 1) * n:severity * n], generated.permute(0, 2, 3, 1).numpy())
    labels = np.load(root / "MNIST5K-C" / "labels.npy")
    assert labels.dtype == np.uint8 and np.array_equal(labels, np.tile(clean.labels.numpy(), 5))
    recipe = read_provenance(root / "MNIST5K-C")
    assert recipe["seed"] == 3 and recipe["corruptions"] == ["gaussian_noise", "contrast"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]   # no temporary left


def test_out_defaults_to_where_eval_looks(tmp_path):
    result = make_c("mnist5k", data_root=tmp_path, corruptions=["contrast"], device="cpu")
    assert result.out == tmp_path / "MNIST5K-C" and (tmp_path / "MNIST5K-C" / "contrast.npy").is_file()


def test_labels_are_int64_beyond_256_classes(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "y.npy", np.arange(300))
    result = make_c(f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", tmp_path / "C", corruptions=["contrast"],
                    device="cpu")
    labels = np.load(tmp_path / "C" / "labels.npy")
    assert labels.dtype == np.int64 and np.array_equal(labels, np.tile(np.arange(300), 5))
    assert result.images == 5 * 300 and result.plan.layout == "npy"


# ---------------------------------------------------------------------------------------------------
# ImageNet-C layout (64 and 224 px), JPEG quality 85

def write_tiny_imagenet(root: Path, per_class: int = 2, classes_used: int = 3, seed: int = 0) -> Path:
    """A Tiny ImageNet in the cs231n layout: 200 wnids, a few 64-px val images (grouped by class, so the
    annotation order is also the class-folder order of a -C folder)."""
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    wnids = [f"n{index:08d}" for index in range(200)]
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(seed)
    lines = []
    for label in range(classes_used):
        for k in range(per_class):
            name = f"val_{label * per_class + k}.JPEG"
            ramp = np.linspace(0, 255, 64)[None, :, None] * rng.uniform(0.3, 1, 3)
            pixels = ramp + rng.integers(0, 60, (64, 64, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(base / "val" / "images" / name, quality=95)
            lines.append(f"{name}\t{wnids[label]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tinyimagenet_jpeg_folders_equal_the_generated_suite(tmp_path):
    root = write_tiny_imagenet(tmp_path)
    out = root / "Tiny-ImageNet-C"
    result = make_c("tinyimagenet", out, seed=5, corruptions=["gaussian_noise", "contrast"], severities=[1, 4],
                    device="cpu", data_root=root)
    assert result.plan.layout == "folders" and result.plan.scale == "tiny"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.JPEG"))
    assert len(files) == 2 * 2 * 6 and "gaussian_noise/4/n00000002/val_5.JPEG" in files
    assert (out / "contrast" / "1" / "n00000000" / "val_0.JPEG").read_bytes()[:2] == b"\xff\xd8"
    kwargs = dict(corruptions=["gaussian_noise", "contrast"], severities=[1, 4], seed=5, device="cpu")
    from_files = open_corruption_suite("tinyimagenet-c", root, source="files", **kwargs)
    generated = open_corruption_suite("tinyimagenet-c", root, source="generated", **kwargs)
    pairs = list(zip(from_files.parts(include_clean=False), generated.parts(include_clean=False)))
    assert len(pairs) == 4
    for read, made in pairs:
        assert (read.corruption, read.severity) == (made.corruption, made.severity)
        (images_read, labels_read), = read.batches(100)
        (images_made, labels_made), = made.batches(100)
        assert torch.equal(labels_read, labels_made)
        assert torch.equal(images_read, images_made)
    # The generated suite really includes the JPEG step (it is not the plain corruption).
    clean = load_dataset("tinyimagenet", "test", root)
    plain = generate_chunk(clean, "contrast", 4, 5, "tiny", CPU, 0, jpeg=False)
    assert not torch.equal(plain, generate_chunk(clean, "contrast", 4, 5, "tiny", CPU, 0))


def test_imagenet_scale_is_resize_crop_corrupt_then_jpeg_q85(tmp_path):
    folder = tmp_path / "mine"
    rng = np.random.default_rng(1)
    originals = {}
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        pixels = rng.integers(0, 256, (250, 300, 3), dtype=np.uint8)   # not square: exercises the crop
        Image.fromarray(pixels).save(folder / label / "a.png")
        originals[label] = pixels
    out = tmp_path / "MINE-C"
    make_c(f"folder:{folder}", out, corruptions=["contrast"], severities=[2], device="cpu")
    reference_q85 = io.BytesIO()
    Image.new("RGB", (8, 8)).save(reference_q85, "JPEG", quality=JPEG_QUALITY)
    for label, pixels in originals.items():
        path = out / "contrast" / "2" / label / "a.JPEG"
        with Image.open(path) as stored:
            assert stored.quantization == Image.open(reference_q85).quantization   # quality 85 tables
        cropped = np.array(resize_center_crop(Image.fromarray(pixels)))
        corrupted = corrupt(torch.from_numpy(cropped).permute(2, 0, 1)[None].contiguous(), "contrast", 2,
                            scale="imagenet")[0].permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(corrupted).save(buffer, "JPEG", quality=85)
        expected = np.asarray(Image.open(buffer).convert("RGB"))
        assert np.array_equal(decode_rgb(path), expected)


def test_file_names_keep_stems_and_never_collide():
    paths = [Path("x/a.png"), Path("x/a.jpg"), Path("x/b.JPEG"), Path("y/a.png")]
    images = LazyImageSet(paths, torch.tensor([0, 0, 0, 1]), ["x", "y"], 8, decode_rgb)
    assert image_file_names(images) == ["a.png.JPEG", "a.jpg.JPEG", "b.JPEG", "a.JPEG"]


# ---------------------------------------------------------------------------------------------------
# Bad input and interruptions: one line, exit 2, nothing half-written

def test_bad_input_is_refused_before_anything_is_written(capsys, tmp_path):
    out = tmp_path / "out"
    common = ["data", "make-c", "--dataset", "mnist5k", "--out", out, "--device", "cpu"]
    code, _, err = run_cli(capsys, *common, "--corruptions", "gausian_noise")
    assert_user_error(code, err, "unknown corruption 'gausian_noise'", "gaussian_noise")
    code, _, err = run_cli(capsys, *common, "--severities", "1,6")
    assert_user_error(code, err, "severity must be between 1 and 5, got 6")
    code, _, err = run_cli(capsys, *common, "--severities", "2")
    assert_user_error(code, err, "all 5 severities")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (4, 28, 28, 1), dtype=np.uint8))
    np.save(tmp_path / "y.npy", np.arange(4))
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}",
                           "--out", out, "--severities", "3")
    assert_user_error(code, err, "all 5 severities")
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(capsys, "data", "make-c", "--dataset", "mnist5k", "--out", tmp_path / "file")
    assert_user_error(code, err, "is a file")
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, *common)
    assert_user_error(code, err, "exists and is not empty", "--overwrite")
    assert os.listdir(out) == ["keep.txt"]


def test_interruption_leaves_out_as_it_was(tmp_path, monkeypatch):
    real = generate.generate_chunk

    def interrupted(clean, corruption, *args, **kwargs):
        if corruption == "brightness":
            raise KeyboardInterrupt
        return real(clean, corruption, *args, **kwargs)

    monkeypatch.setattr(generate, "generate_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_c("mnist5k", tmp_path / "fresh", corruptions=["contrast", "brightness"], device="cpu")
    assert os.listdir(tmp_path) == []
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "contrast.npy").write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        make_c("mnist5k", tmp_path / "old", corruptions=["contrast", "brightness"], device="cpu", overwrite=True)
    assert os.listdir(tmp_path) == ["old"] and os.listdir(tmp_path / "old") == ["contrast.npy"]
    assert (tmp_path / "old" / "contrast.npy").read_bytes() == b"previous"
    monkeypatch.setattr(generate, "generate_chunk", real)
    make_c("mnist5k", tmp_path / "old", corruptions=["contrast"], device="cpu", overwrite=True)
    assert sorted(os.listdir(tmp_path / "old")) == ["contrast.npy", PROVENANCE_FILE, "labels.npy"]
