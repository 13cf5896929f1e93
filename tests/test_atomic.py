"""Atomic writes: the destination is either the old complete version or the new one, never partial."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from corrbench.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_write_bytes_replaces_existing_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "results.parquet"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["results.parquet"]


def test_write_text_creates_missing_parents_and_encodes_utf8(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "table.md"
    atomic_write_text(target, "err — 5.0 %\n")
    assert target.read_bytes() == "err — 5.0 %\n".encode("utf-8")


def test_exception_inside_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as temp:
            seen.append(temp)
            temp.write_text("half writ")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["table.csv"]
    assert not seen[0].exists()


def test_exception_before_anything_written_creates_no_file(tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_temp_path_is_hidden_sibling_with_same_suffix(tmp_path: Path) -> None:
    target = tmp_path / "fig.png"
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".") and temp.suffix == ".png"
        assert not temp.exists() and not target.exists()
        temp.write_bytes(b"png")
    assert target.read_bytes() == b"png"


def test_nothing_written_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "out.bin"):
            pass
    assert os.listdir(tmp_path) == []


def test_directory_written_at_temp_path_replaces_existing_directory(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with atomic_path(target) as temp:
        temp.mkdir()
        (temp / "fresh.txt").write_text("fresh")
    assert sorted(os.listdir(target)) == ["fresh.txt"]
    assert os.listdir(tmp_path) == ["run"]


def test_failed_directory_write_keeps_old_directory(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()
    (target / "kept.txt").write_text("kept")
    with pytest.raises(ValueError):
        with atomic_path(target) as temp:
            temp.mkdir()
            (temp / "partial.txt").write_text("partial")
            raise ValueError("crash")
    assert os.listdir(target) == ["kept.txt"]
    assert os.listdir(tmp_path) == ["run"]
