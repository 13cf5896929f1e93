"""Official-layout readers: -C/-P .npy files, labels.npy, ImageNet-C style folders, idx files, CIFAR pickles.

Every file is built here in the official layout, tiny, and read back exactly.
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from corrbench.data.readers import (FolderSeverity, NpySeverityBlocks, open_p_file, read_c_labels,
                                    read_cifar_batches, read_idx, validate_npy_header)
from corrbench.errors import InvalidValueError, LayoutError, MissingDataError


def c_file_array(n: int, size: int = 4) -> np.ndarray:
    """(5n, size, size, 3) uint8 where every pixel of row r, channel c holds (3r + c) mod 256."""
    rows = np.arange(5 * n)[:, None, None, None]
    channel = np.arange(3)[None, None, None, :]
    return np.broadcast_to((3 * rows + channel) % 256, (5 * n, size, size, 3)).astype(np.uint8)


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array.transpose(0, 3, 1, 2), order="C"))


# ---------------------------------------------------------------------------------------------------
# validate_npy_header

def test_header_returns_shape_without_reading_data(tmp_path):
    path = tmp_path / "fog.npy"
    np.save(path, c_file_array(2))
    assert validate_npy_header(path, ndim=4, trailing=(None, None, 3)) == (10, 4, 4, 3)


def test_header_truncated_file_is_named(tmp_path):
    path = tmp_path / "fog.npy"
    np.save(path, c_file_array(2))
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    with pytest.raises(LayoutError, match="truncated") as caught:
        validate_npy_header(path, ndim=4)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(LayoutError, match="truncated"):
        NpySeverityBlocks(path)


def test_header_extra_bytes_detected(tmp_path):
    path = tmp_path / "fog.npy"
    np.save(path, c_file_array(1))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(LayoutError, match="longer than its header"):
        validate_npy_header(path, ndim=4)


def test_header_wrong_dtype_and_shape_name_file_and_expectation(tmp_path):
    wrong_dtype = tmp_path / "snow.npy"
    np.save(wrong_dtype, c_file_array(1).astype(np.float32))
    with pytest.raises(LayoutError) as caught:
        NpySeverityBlocks(wrong_dtype)
    message = str(caught.value)
    assert str(wrong_dtype) in message and "float32" in message and "(N·5, H, W, 3) uint8" in message

    wrong_shape = tmp_path / "frost.npy"
    np.save(wrong_shape, np.zeros((5, 4, 4), np.uint8))
    with pytest.raises(LayoutError) as caught:
        NpySeverityBlocks(wrong_shape)
    assert str(wrong_shape) in str(caught.value) and "(5, 4, 4)" in str(caught.value)

    four_channels = tmp_path / "fog.npy"
    np.save(four_channels, np.zeros((5, 4, 4, 4), np.uint8))
    with pytest.raises(LayoutError, match="fog.npy has shape"):
        NpySeverityBlocks(four_channels)


def test_header_rejects_non_npy_fortran_and_missing(tmp_path):
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"<html>Google Drive quota exceeded</html>")
    with pytest.raises(LayoutError, match="not a readable .npy"):
        validate_npy_header(junk, ndim=4)
    fortran = tmp_path / "f.npy"
    np.save(fortran, np.asfortranarray(np.zeros((5, 4, 4, 3), np.uint8)))
    with pytest.raises(LayoutError, match="Fortran"):
        validate_npy_header(fortran, ndim=4)
    with pytest.raises(MissingDataError, match="nope.npy"):
        validate_npy_header(tmp_path / "nope.npy", ndim=4)


# ---------------------------------------------------------------------------------------------------
# NpySeverityBlocks

def test_severity_blocks_serve_rows_of_their_block(tmp_path):
    n = 3
    array = c_file_array(n)
    path = tmp_path / "gaussian_noise.npy"
    np.save(path, array)
    blocks = NpySeverityBlocks(path)
    assert blocks.n_per_severity == n and len(blocks) == n and blocks.image_size == 4
    for severity in range(1, 6):
        start = (severity - 1) * n
        got = blocks.images(severity, slice(0, n))
        assert got.dtype == torch.uint8 and got.shape == (n, 3, 4, 4)
        assert torch.equal(got, chw(array[start:start + n]))
        # row r, channel c holds 3r + c: channel-first order and the right rows
        assert got[1, 2, 0, 0].item() == 3 * (start + 1) + 2
    assert torch.equal(blocks.images(4, torch.tensor([2, 0])), chw(array[[11, 9]]))


def test_severity_block_slice_never_reaches_next_block(tmp_path):
    path = tmp_path / "fog.npy"
    np.save(path, c_file_array(3))
    blocks = NpySeverityBlocks(path)
    assert blocks.images(2, slice(2, 99)).shape[0] == 1          # clipped to the block, not into severity 3
    assert blocks.images(5, slice(3, 3)).shape == (0, 3, 4, 4)
    array = c_file_array(3)
    assert torch.equal(blocks.images(1, slice(None, None, -1)), chw(array[[2, 1, 0]]))
    assert torch.equal(blocks.images(3, slice(0, 3, 2)), chw(array[[6, 8]]))
    with pytest.raises(IndexError):
        blocks.images(1, torch.tensor([3]))


def test_severity_blocks_check_count_and_severity(tmp_path):
    path = tmp_path / "fog.npy"
    np.save(path, c_file_array(2))
    with pytest.raises(LayoutError, match="expected 5 severity blocks of 3"):
        NpySeverityBlocks(path, n_per_severity=3)
    assert NpySeverityBlocks(path, n_per_severity=2).n_per_severity == 2
    odd = tmp_path / "odd.npy"
    np.save(odd, np.zeros((7, 4, 4, 3), np.uint8))
    with pytest.raises(LayoutError, match="multiple of 5"):
        NpySeverityBlocks(odd)
    with pytest.raises(InvalidValueError, match="severity"):
        NpySeverityBlocks(path).images(6, slice(0, 1))


# ---------------------------------------------------------------------------------------------------
# labels.npy

def test_c_labels_uint8_repeated_five_times(tmp_path):
    clean = np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    np.save(tmp_path / "labels.npy", np.tile(clean, 5))
    labels = read_c_labels(tmp_path)
    assert labels.dtype == torch.int64 and labels.tolist() == [3, 1, 4, 1, 5, 9]
    assert read_c_labels(tmp_path, n_per_severity=6).tolist() == labels.tolist()
    with pytest.raises(LayoutError, match="blocks of 5"):
        read_c_labels(tmp_path, n_per_severity=5)


def test_c_labels_disagreeing_blocks_and_float_labels_rejected(tmp_path):
    labels = np.tile(np.array([0, 1, 2], dtype=np.uint8), 5)
    labels[3 * 4 + 1] = 7  # severity 5, image 1
    np.save(tmp_path / "labels.npy", labels)
    with pytest.raises(LayoutError, match=r"disagree \(first at image 1\)") as caught:
        read_c_labels(tmp_path)
    assert str(tmp_path / "labels.npy") in str(caught.value)
    np.save(tmp_path / "labels.npy", np.zeros(10, np.float32))
    with pytest.raises(LayoutError, match="float32"):
        read_c_labels(tmp_path)


def test_c_labels_missing(tmp_path):
    with pytest.raises(MissingDataError, match="labels.npy"):
        read_c_labels(tmp_path)


# ---------------------------------------------------------------------------------------------------
# -P files

def test_p_file_memmap_and_validation(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "rotate.npy"
    np.save(path, frames)
    mapped = open_p_file(path)
    assert isinstance(mapped, np.memmap) and mapped.shape == (2, 4, 32, 32, 3)
    assert np.array_equal(mapped[1, 3], frames[1, 3])

    small = tmp_path / "small.npy"
    np.save(small, frames[:, :, :16, :16])
    with pytest.raises(LayoutError, match=r"small.npy has shape \(2, 4, 16, 16, 3\)"):
        open_p_file(small)
    assert open_p_file(small, image_size=None).shape == (2, 4, 16, 16, 3)

    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LayoutError, match="rotate.npy is truncated"):
        open_p_file(path)


# ---------------------------------------------------------------------------------------------------
# ImageNet-C style folders

def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_severity_labels_follow_given_class_list(tmp_path):
    rng = np.random.default_rng(1)
    classes = ["n01", "n02", "n03"]
    stored = {}
    for severity in (1, 2, 3, 4, 5):
        for wnid, names in (("n03", ["b.png", "a.png"]), ("n01", ["z.png"])):
            for name in names:
                array = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                _png(tmp_path / "fog" / str(severity) / wnid / name, array)
                stored[severity, wnid, name] = array
    source = FolderSeverity(tmp_path / "fog", classes, image_size=8)
    # ImageFolder order: class index, then file name
    assert source.labels(3).tolist() == [0, 2, 2]
    got = source.images(3, slice(None))
    expected = np.stack([stored[3, "n01", "z.png"], stored[3, "n03", "a.png"], stored[3, "n03", "b.png"]])
    assert torch.equal(got, chw(expected))
    assert torch.equal(source.images(5, torch.tensor([2])), chw(stored[5, "n03", "b.png"][None]))


def test_folder_severity_errors(tmp_path):
    _png(tmp_path / "fog" / "1" / "n09" / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(LayoutError, match="n09 is not one of the 2 classes"):
        FolderSeverity(tmp_path / "fog", ["n01", "n02"]).labels(1)
    with pytest.raises(MissingDataError, match="fog/2 does not exist"):
        FolderSeverity(tmp_path / "fog", ["n09"]).labels(2)
    with pytest.raises(MissingDataError, match="snow does not exist"):
        FolderSeverity(tmp_path / "snow", ["n09"])
    with pytest.raises(LayoutError, match="a.png decodes to 8×8 pixels but this set serves 4×4"):
        FolderSeverity(tmp_path / "fog", ["n09"], image_size=4).images(1, slice(None))


# ---------------------------------------------------------------------------------------------------
# idx files and CIFAR pickles

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_idx_raw_and_gz_round_trip(tmp_path):
    digits = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    (tmp_path / "raw").write_bytes(idx_bytes(digits))
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(digits)))
    assert np.array_equal(read_idx(tmp_path / "raw"), digits)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), digits)


def test_idx_truncated_and_bad_magic(tmp_path):
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-1])
    with pytest.raises(LayoutError, match="short holds .* truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "ints").write_bytes(bytes([0, 0, 0x0C, 1]) + np.array([1], ">u4").tobytes() + b"\0" * 4)
    with pytest.raises(LayoutError, match="not an unsigned-byte idx file"):
        read_idx(tmp_path / "ints")


def test_cifar_batch_wrong_layout_names_file(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(LayoutError, match=r"data_batch_1: b'data' is uint8 \(2, 1024\)"):
        read_cifar_batches(tmp_path, ["data_batch_1"], "labels")
    with open(tmp_path / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, handle)
    with pytest.raises(LayoutError, match="b'labels' is missing or its length differs"):
        read_cifar_batches(tmp_path, ["data_batch_1"], "labels")
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(LayoutError, match="test_batch is not a readable CIFAR pickle"):
        read_cifar_batches(tmp_path, ["test_batch"], "labels")
