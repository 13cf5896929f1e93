"""Atomic writes: a file (or folder) appears complete under its name, or not at all.

Writers fill a hidden temporary path next to the destination, which is then renamed over it with
`os.replace` — a rename within one directory is atomic on POSIX and Windows, so a reader never sees a
half-written file, and a crash leaves the previous version in place.
"""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _temp_sibling(path: Path, tag: str) -> Path:
    # Hidden, unique, and ending in the destination's suffix so writers that choose a format (or append
    # one, like numpy.save) by suffix behave as they would on the real name.
    return path.with_name(f".{path.stem}.{secrets.token_hex(6)}.{tag}{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _fsync_file(path: Path) -> None:
    # Flush the data before the rename so a power cut cannot leave the new name pointing at empty blocks.
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms (Windows) cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it onto `path`, on error remove it.

    The caller creates a file (or a directory) at the yielded path. Parent folders of `path` are
    created. If the body raises, whatever was written at the temporary path is removed, `path` is left
    untouched and the error propagates. Replacing an existing directory swaps the old one aside first,
    so there is a short moment where the name is absent, but never one where it is half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_sibling(path, "tmp")
    try:
        yield temp
        if not temp.exists():
            raise FileNotFoundError(f"atomic_path: nothing was written at {temp} for {path}")
        if temp.is_dir():
            _replace_dir(temp, path)
        else:
            _fsync_file(temp)
            os.replace(temp, path)
        _fsync_dir(path.parent)
    except BaseException:
        _remove(temp)
        raise


def _replace_dir(temp: Path, path: Path) -> None:
    # os.replace cannot rename a directory onto a non-empty one, so the old one moves aside first.
    if path.is_dir() and not path.is_symlink():
        old = _temp_sibling(path, "old")
        os.replace(path, old)
        try:
            os.replace(temp, path)
        except BaseException:
            os.replace(old, path)  # put the previous version back
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, path)


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write `text` to `path` atomically, UTF-8 encoded, newlines as given."""
    atomic_write_bytes(path, text.encode("utf-8"))
