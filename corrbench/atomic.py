"""Atomic writes: a file (or folder) appears complete under its name, or not at all.

Writers fill a hidden temporary path — next to the destination, or in a given temp folder on the same
filesystem — which is then renamed over it with `os.replace` (atomic on POSIX and Windows), so a reader
never sees a half-written file and a crash leaves the previous version in place. `write_new_file`
instead claims a name that does not exist yet (a hard link, which fails rather than replace), so two
writers can never overwrite each other.

Temp names record the writing process — host, pid and the pid's start time — so `sweep_temps` can
remove those whose process is gone (killed, power cut) without touching one still being written.
Any OSError while writing becomes a `WriteError`: one line naming the path, the temp file removed.
"""
from __future__ import annotations

import errno
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from corrbench.errors import WriteError

# A test hook for fault injection (tests/test_faults.py): "ACTION:PATTERN[:N]" fires at the N-th (default
# 1st) write whose destination name matches the fnmatch PATTERN, after the temp file is complete and
# before it gets its name. ACTION `kill` SIGKILLs this process; `pause` appends the temp path to the file
# named by CORRBENCH_FAULT_SIGNAL and waits (up to 120 s) until "<that file>.go" exists.
FAULT_ENV = "CORRBENCH_FAULT_AT_WRITE"
FAULT_SIGNAL_ENV = "CORRBENCH_FAULT_SIGNAL"
# Temps whose owner cannot be checked (written on another host, or by an older corrbench that did not
# put the owner in the name) are swept once they are this old.
UNKNOWN_OWNER_MAX_AGE_S = 24 * 3600
LEGACY_MAX_AGE_S = 3600

_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-(?P<start>\d+)"
                        r"\.(?P<token>[0-9a-f]+)\.(?P<tag>tmp|old)(?P<suffix>.*)$")
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.(?P<token>[0-9a-f]{12})\.(?P<tag>tmp|old)(?P<suffix>.*)$")
_fault_count = 0


# ---------------------------------------------------------------- owners of temp files

def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])   # field 22 of proc(5); fields here start at field 3
    except (OSError, IndexError, ValueError):
        return None


def _owner() -> str:
    pid = os.getpid()   # read per call: a forked worker (DDP, submitit) is another owner
    return f"{_host()}-{pid}-{_process_start(pid) or 0}"


def _owner_alive(host: str, pid: int, start: int) -> bool | None:
    """Whether the process that made a temp file still runs: True, False, or None when it cannot be told."""
    if host != _host() or os.name == "nt":   # os.kill(pid, 0) is not a probe on Windows
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                     # alive, another user's
    except OSError:
        return None
    current = _process_start(pid)
    if start and current is not None and current != start:
        return False             # the pid was reused by a newer process
    return True


def temp_name(path: Path, tag: str = "tmp") -> str:
    """A hidden, unique temp name for `path`, ending in its suffix so writers that choose a format (or
    append one, like numpy.save) by suffix behave as they would on the real name."""
    return f".{path.stem}.{_owner()}.{secrets.token_hex(6)}.{tag}{path.suffix}"


def is_temp_name(name: str) -> bool:
    return bool(_TEMP_NAME.match(name) or _LEGACY_TEMP_NAME.match(name))


def sweep_temps(folder: Path | str) -> int:
    """Remove the temp files (and temp folders) in `folder` whose writing process is gone; returns how
    many. Temps of live processes stay; unreadable folders are left alone (this never raises)."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if match:
            alive = _owner_alive(match["host"], int(match["pid"]), int(match["start"]))
            stale = alive is False or (alive is None and age > UNKNOWN_OWNER_MAX_AGE_S)
        else:
            stale = bool(_LEGACY_TEMP_NAME.match(entry.name)) and age > LEGACY_MAX_AGE_S
        if stale and _remove(Path(entry.path)):
            removed += 1
    return removed


# ---------------------------------------------------------------- helpers

def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError:
        return False


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


def write_error(path: Path, error: OSError) -> WriteError:
    """One line naming what could not be written and why."""
    reason = error.strerror or str(error) or type(error).__name__
    other = error.filename if error.filename and Path(str(error.filename)).name != Path(path).name else None
    if other is not None and not is_temp_name(Path(str(other)).name):
        reason += f" ({other})"
    hint = {errno.ENOSPC: "free some space or choose another folder",
            errno.EDQUOT: "free some space or choose another folder",
            errno.EACCES: "check the folder's permissions or choose another folder",
            errno.EPERM: "check the folder's permissions or choose another folder",
            errno.EROFS: "the filesystem is read-only; choose another folder"}.get(error.errno or -1,
                                                                               "check the folder and try again")
    return WriteError(f"could not write {path}: {reason}; nothing was written there — {hint}")


def _make_folder(folder: Path) -> None:
    for attempt in range(5):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except FileExistsError as error:
            # mkdir(exist_ok) re-raises when the folder was removed between its mkdir and its is_dir check
            # (a sweeper removing an empty .tmp/); a file in the way is a real error.
            if os.path.isdir(folder):
                return
            if attempt == 4 or os.path.lexists(folder):
                raise write_error(folder, error) from None
        except OSError as error:
            raise write_error(folder, error) from None


def _fault_hook(path: Path, temp: Path) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    import fnmatch
    action, _, rest = spec.partition(":")
    pattern, _, nth = rest.partition(":")
    if not fnmatch.fnmatch(path.name, pattern):
        return
    global _fault_count
    _fault_count += 1
    if _fault_count != int(nth or 1):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        signal_file = os.environ[FAULT_SIGNAL_ENV]
        with open(signal_file, "a") as handle:
            handle.write(f"{temp}\n")
        deadline = time.time() + 120
        while not os.path.exists(signal_file + ".go") and time.time() < deadline:
            time.sleep(0.02)


# ---------------------------------------------------------------- writers

@contextmanager
def _removed_on_failure(temp: Path, target: Callable[[], Path]) -> Iterator[None]:
    """On any error in the block, remove `temp`; an OSError becomes a one-line `WriteError` naming
    `target()` (the path the temp file was for, as it stands when the error happens)."""
    try:
        yield
    except OSError as error:
        _remove(temp)
        raise write_error(target(), error) from None
    except BaseException:
        _remove(temp)
        raise


@contextmanager
def atomic_path(path: Path | str, *, temp_dir: Path | str | None = None) -> Iterator[Path]:
    """Yield a temporary path; on success move it onto `path`, on error remove it.

    The caller creates a file (or a directory) at the yielded path, which lies in `temp_dir` (a folder
    on the same filesystem as `path`) or else next to `path`. Parent folders are created. If the body
    raises, whatever was written at the temporary path is removed, `path` is left untouched and the error
    propagates — an OSError as a one-line `WriteError`. Replacing an existing directory swaps the old one
    aside first, so there is a short moment where the name is absent, but never one where it is
    half-written.
    """
    path = Path(path)
    folder = Path(temp_dir) if temp_dir is not None else path.parent
    _make_folder(path.parent)
    _make_folder(folder)
    temp = folder / temp_name(path)
    with _removed_on_failure(temp, lambda: path):
        yield temp
    if not temp.exists():
        raise FileNotFoundError(f"atomic_path: nothing was written at {temp} for {path}")
    with _removed_on_failure(temp, lambda: path):
        _fault_hook(path, temp)
        if temp.is_dir():
            _replace_dir(temp, path)
        else:
            _fsync_file(temp)
            os.replace(temp, path)
        _fsync_dir(path.parent)


def _replace_dir(temp: Path, path: Path) -> None:
    # os.replace cannot rename a directory onto a non-empty one, so the old one moves aside first.
    if path.is_dir() and not path.is_symlink():
        old = path.parent / temp_name(path, "old")
        os.replace(path, old)
        try:
            os.replace(temp, path)
        except BaseException:
            os.replace(old, path)  # put the previous version back
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(temp, path)


def _claim(temp: Path, path: Path) -> bool:
    """Give the complete `temp` the name `path` only if no file has it; False if one does."""
    try:
        os.link(temp, path)          # atomic, and fails instead of replacing
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # A filesystem without hard links: reserve the name exclusively, then move the data onto it.
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        os.replace(temp, path)
        return True
    os.unlink(temp)
    return True


def write_new_file(folder: Path | str, names: Iterable[str], write: Callable[[Path], None], *,
                   temp_dir: Path | str | None = None) -> Path:
    """Write a file under the first of `names` that no file in `folder` has yet; returns its path.

    `write(temp)` fills a temporary file (in `temp_dir`, else hidden in `folder`). The name is claimed
    atomically and exclusively, so concurrent writers choosing the same name both keep their file. An
    OSError becomes a one-line `WriteError` and the temp file is removed.
    """
    folder = Path(folder)
    _make_folder(folder)
    temp_folder = Path(temp_dir) if temp_dir is not None else folder
    names = iter(names)
    first = next(names)
    temp = temp_folder / temp_name(folder / first)
    target = folder / first
    with _removed_on_failure(temp, lambda: target):
        for attempt in range(5):
            _make_folder(temp_folder)
            try:
                write(temp)
                break
            except OSError:
                # A sweeper removed the (then empty) temp folder between our mkdir and write: again.
                if temp_folder.is_dir() or attempt == 4:
                    raise
                _remove(temp)
        _fsync_file(temp)
        _fault_hook(target, temp)
        for name in itertools.chain([first], names):
            target = folder / name
            if _claim(temp, target):
                break
        else:
            raise FileExistsError(errno.EEXIST, "every candidate name is taken", str(target))
        _fsync_dir(folder)
        return target


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write `text` to `path` atomically, UTF-8 encoded, newlines as given."""
    atomic_write_bytes(path, text.encode("utf-8"))
