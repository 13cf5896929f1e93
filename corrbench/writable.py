"""Up-front checks that an output folder can be written, before any work: an evaluation must not find out
that --results is read-only after an hour of work.

Ground floor: imports nothing of corrbench but errors. The check writes and removes one hidden probe file
(a folder's permission bits do not tell: root ignores them, a read-only mount or /proc refuses anyway);
a folder that does not exist yet is not created — its nearest existing parent is probed instead.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from corrbench.errors import WriteError

MB = 1024 * 1024
RUNS_FREE_BYTES = 64 * MB      # a checkpoint of the CIFAR ResNets is ~45 MB, written next to the previous one
RESULTS_FREE_BYTES = 4 * MB    # a results file is tens of kB; plots a few hundred


def nearest_existing(path: Path) -> Path:
    """`path` itself if it exists, else its nearest existing parent."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(path: Path | str, option: str, *, free_bytes: int = RESULTS_FREE_BYTES) -> None:
    """Raise WriteError (one line naming `option` and the path) unless files can be created in folder `path`
    (or in the folders that would be made for it) and its file system has `free_bytes` free."""
    path = Path(path).expanduser()
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise WriteError(f"{option} {path}: {existing} is a file, not a folder; choose another {option}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".corrbench-probe-", dir=existing)
    except OSError as error:
        raise WriteError(f"{option} {path} cannot be written: creating a file in {existing} fails "
                         f"({_reason(error)}); choose a writable {option}") from None
    os.close(handle)
    os.unlink(probe)
    free = shutil.disk_usage(existing).free
    if free < free_bytes:
        raise WriteError(f"{option} {path}: only {free / MB:.1f} MB free on its disk, {free_bytes / MB:.0f} MB needed; "
                         f"free some space or choose another {option}")


def _reason(error: OSError) -> str:
    reasons = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "not permitted", errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}
    return reasons.get(error.errno, error.strerror or type(error).__name__)
