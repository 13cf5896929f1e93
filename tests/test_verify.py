"""`corrbench data verify`: what a -C / -P folder or an archive lacks or gets wrong, in one verdict."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corrbench.cli.app import main
from corrbench.corruptions import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS
from corrbench.data import verify as verify_module
from corrbench.data.make_c import make_c
from corrbench.data.psuites import P_TEST_PERTURBATIONS
from corrbench.data.verify import (MISSING, NOTE, OK, WRONG, PublishedArchive, detect_kind, verify,
                                   verify_archive)

from test_make_c import write_tiny_imagenet

N = 4   # images per severity in the hand-built folders


def run_cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def status_of(report, item: str) -> tuple[str, str]:
    check = next(c for c in report.checks if c.item == item)
    return check.status, check.detail


def build_npy_c(folder: Path, n: int = N, corruptions=ALL_CORRUPTIONS, side: int = 32) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in corruptions:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (5 * n, side, side, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.tile(np.arange(n) % 10, 5).astype(np.uint8))
    return folder


# ---------------------------------------------------------------------------------------------------
# npy -C

def test_complete_npy_c_folder_passes_and_names_what_it_is(capsys, tmp_path):
    folder = build_npy_c(tmp_path / "my-C")
    assert detect_kind(folder) == "npy-c"
    report = verify(folder)
    assert report.ok, report.problems
    assert sum(c.status == OK for c in report.checks) == 20   # 19 files + labels
    assert status_of(report, "md5")[0] == NOTE                  # no published checksums for this name
    code, out, err = run_cli(capsys, "data", "verify", folder)
    assert code == 0, err
    assert "all 20 checks passed" in out and "19 corruptions × 5 severities × 4 images, 32 px" in out


def test_each_fault_of_an_npy_c_folder_is_named(capsys, tmp_path):
    folder = build_npy_c(tmp_path / "my-C")
    (folder / "fog.npy").unlink()
    data = (folder / "snow.npy").read_bytes()
    (folder / "snow.npy").write_bytes(data[:-100])                                  # truncated download
    np.save(folder / "frost.npy", np.zeros((5 * N, 32, 32, 3), np.float32))       # wrong dtype
    np.save(folder / "contrast.npy", np.zeros((5 * N + 1, 32, 32, 3), np.uint8))  # wrong row count
    np.save(folder / "zoom_blur.npy", np.zeros((5 * N, 32, 16, 3), np.uint8))     # not square
    np.save(folder / "pixelate.npy", np.zeros((5 * N, 28, 28, 3), np.uint8))      # another size
    report = verify(folder)
    assert status_of(report, "fog.npy")[0] == MISSING
    assert status_of(report, "snow.npy") == (WRONG, status_of(report, "snow.npy")[1])
    assert "truncated" in status_of(report, "snow.npy")[1]
    assert "float32" in status_of(report, "frost.npy")[1]
    assert "21 rows; 5 severities × 4 labels need 20" in status_of(report, "contrast.npy")[1]
    assert status_of(report, "zoom_blur.npy")[1] == "shape (20, 32, 16, 3): 16×32 images are not square"
    assert "28-px images; other files hold 32-px images" in status_of(report, "pixelate.npy")[1]
    assert status_of(report, "gaussian_noise.npy")[0] == OK
    code, out, err = run_cli(capsys, "data", "verify", folder)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "1 missing, 5 wrong (zoom_blur.npy: " in lines[0] and "see the table" in lines[0]
    assert "snow.npy" in out and "truncated" in out          # the table names every fault


def test_labels_whose_severity_blocks_disagree_are_wrong(tmp_path):
    folder = build_npy_c(tmp_path / "my-C", corruptions=["contrast"])
    labels = np.tile(np.arange(N), 5).astype(np.uint8)
    labels[-1] = 9
    np.save(folder / "labels.npy", labels)
    status, detail = status_of(verify(folder), "labels.npy")
    assert status == WRONG and "disagree" in detail


def test_a_folder_named_like_a_published_set_is_held_to_its_sizes(tmp_path):
    folder = build_npy_c(tmp_path / "CIFAR-10-C", corruptions=["contrast"], side=28)
    report = verify(folder)
    status, detail = status_of(report, "labels.npy")
    assert status == WRONG and "4 labels per severity; CIFAR-10-C has 10,000" in detail
    assert "28-px images; the published set has 32 px" in status_of(report, "contrast.npy")[1]
    assert status_of(report, "fog.npy")[0] == MISSING       # the published set has all 19


def test_published_file_md5s_are_compared(tmp_path, monkeypatch):
    folder = build_npy_c(tmp_path / "FAKE-C")
    md5s = {path.stem: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.glob("*.npy")}
    monkeypatch.setitem(verify_module.PUBLISHED_FILE_MD5, "FAKE-C", md5s)
    assert verify(folder).ok
    data = bytearray((folder / "brightness.npy").read_bytes())
    data[-1] ^= 0xFF                                         # same shape, one byte changed
    (folder / "brightness.npy").write_bytes(bytes(data))
    report = verify(folder)
    status, detail = status_of(report, "brightness.npy md5")
    assert status == WRONG and "differs from the published FAKE-C file" in detail
    assert status_of(report, "brightness.npy")[0] == OK     # the header alone cannot see it
    assert verify(folder, md5=False).ok


def test_make_c_output_verifies_with_its_own_recipe(tmp_path):
    make_c("mnist5k", tmp_path / "MNIST5K-C", corruptions=["contrast", "brightness"], device="cpu")
    report = verify(tmp_path / "MNIST5K-C")
    assert report.ok, report.problems
    assert "mnist5k -C folder (npy): 2 corruptions × 5 severities × 1,000 images" in report.description
    assert status_of(report, "corrbench-make-c.json")[0] == NOTE


# ---------------------------------------------------------------------------------------------------
# npy -P

def build_npy_p(folder: Path, names=P_TEST_PERTURBATIONS) -> Path:
    folder.mkdir(parents=True)
    frames = {"motion_blur": 21, "translate": 16}
    for name in names:
        np.save(folder / f"{name}.npy", np.zeros((2, frames.get(name, 31), 32, 32, 3), np.uint8))
    return folder


def test_npy_p_folder_frames_and_missing_perturbations(tmp_path):
    folder = build_npy_p(tmp_path / "my-P")
    assert detect_kind(folder) == "npy-p"
    report = verify(folder)
    assert report.ok and report.kind == "npy-p"
    assert status_of(report, "snow.npy")[0] == NOTE          # validation perturbations are optional
    (folder / "translate.npy").unlink()
    np.save(folder / "motion_blur.npy", np.zeros((2, 31, 32, 32, 3), np.uint8))
    report = verify(folder)
    assert status_of(report, "translate.npy")[0] == MISSING
    status, detail = status_of(report, "motion_blur.npy")
    assert status == WRONG and "(N, 21, S, S, 3)" in detail


# ---------------------------------------------------------------------------------------------------
# folder -C (ImageNet-C layout)

def build_folder_c(folder: Path, corruptions=BENCHMARK_CORRUPTIONS) -> Path:
    tile = Image.fromarray(np.full((8, 8, 3), 128, np.uint8))
    for name in corruptions:
        for severity in range(1, 6):
            for wnid in ("n01", "n02"):
                (folder / name / str(severity) / wnid).mkdir(parents=True)
                tile.save(folder / name / str(severity) / wnid / "a.JPEG")
    return folder


def test_folder_c_classes_counts_and_severities(tmp_path):
    folder = build_folder_c(tmp_path / "my-C")
    assert detect_kind(folder) == "folder-c"
    report = verify(folder)
    assert report.ok, report.problems
    assert status_of(report, "fog/") == (OK, "5 severities × 2 images in 2 classes, 8 px")
    assert status_of(report, "saturate/")[0] == NOTE          # extra corruptions are optional
    (folder / "snow" / "3" / "n02" / "a.JPEG").rename(folder / "snow" / "3" / "n01" / "b.JPEG")
    (folder / "fog" / "5" / "n02").rename(folder / "fog" / "5" / "n03")
    for path in (folder / "contrast" / "2").rglob("*.JPEG"):
        path.unlink()
    for path in sorted((folder / "frost" / "4").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (folder / "frost" / "4").rmdir()
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(folder / "pixelate" / "1" / "n01" / "a.JPEG")
    report = verify(folder)
    assert "another number of images" in status_of(report, "snow/")[1]
    assert "lacks 1 class folder(s)" in status_of(report, "fog/")[1]
    assert "holds no images" in status_of(report, "contrast/")[1]
    assert "severity folder 4/ is missing" in status_of(report, "frost/")[1]
    assert "9 px; expected 8 px" in status_of(report, "pixelate/")[1]
    assert not report.ok and report.summary().count("\n") == 0


def test_tiny_make_c_output_verifies(tmp_path):
    root = write_tiny_imagenet(tmp_path)
    make_c("tinyimagenet", root / "Tiny-ImageNet-C", corruptions=["contrast"], severities=[2, 3], device="cpu",
           data_root=root)
    report = verify(root / "Tiny-ImageNet-C")
    assert report.ok and report.kind == "folder-c", report.problems
    assert status_of(report, "contrast/") == (OK, "2 severities × 6 images in 3 classes, 64 px")


# ---------------------------------------------------------------------------------------------------
# Archives, and what is not a suite at all

def test_archive_md5(capsys, tmp_path, monkeypatch):
    archive = tmp_path / "CIFAR-10-C.tar"
    archive.write_bytes(b"not the real archive")
    check = verify_archive(archive)
    assert check.status == WRONG and "56bf5dcef84df0e2308c6dcbcbbd8499" in check.detail
    code, _, err = run_cli(capsys, "data", "verify", "--archive", archive)
    assert code == 2 and "download it again" in err
    digest = hashlib.md5(b"not the real archive").hexdigest()
    monkeypatch.setitem(verify_module.PUBLISHED_ARCHIVES, "CIFAR-10-C.tar", PublishedArchive(digest, "test record"))
    assert verify_archive(archive).status == OK
    renamed = tmp_path / "download.tar"
    archive.rename(renamed)
    assert "renamed" in verify_archive(renamed).detail
    unknown = tmp_path / "Tiny-ImageNet-C.tar"
    unknown.write_bytes(b"x")
    check = verify_archive(unknown)
    assert check.status == NOTE and "2536630" in check.detail
    code, out, _ = run_cli(capsys, "data", "verify", "--archive", unknown)
    assert code == 0 and "not known" in out


def test_what_is_not_a_suite_is_one_line(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    for target, fragment in ((tmp_path / "empty", "holds no -C or -P data"), (tmp_path / "absent", "is not a folder")):
        code, _, err = run_cli(capsys, "data", "verify", target)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and fragment in lines[0]
    code, _, err = run_cli(capsys, "data", "verify")
    assert code == 2 and "--archive" in err
