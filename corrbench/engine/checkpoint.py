"""Run folders and checkpoints: `runs/<run_id>/{config.json, checkpoint.pt, train_log.parquet}`.

A checkpoint holds everything to resume exactly (model, optimizer, scheduler, epoch, log) and to
evaluate without the original command line (config, dataset facts, resolved arch). Writes are atomic;
temp files left by a killed writer (`.checkpoint.<host>-<pid>-<start>.<token>.tmp.pt`) are removed
before every checkpoint write — so on `--resume` and at the end of a run — once their process is gone.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corrbench import __version__
from corrbench.atomic import atomic_path, atomic_write_text, sweep_temps
from corrbench.errors import CheckpointError, MissingDataError

FORMAT = "corrbench-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
LOG_NAME = "train_log.parquet"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically (an OSError, e.g. a full disk, is a one-line WriteError)."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "corrbench_version": __version__, **payload}
    path = Path(path)
    sweep_stale_temps(path.parent)
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as error:   # torch's zip writer reports a failed write (full disk …) this way
            raise _save_error(tmp, error) from None


def _save_error(tmp: Path, error: RuntimeError) -> OSError:
    try:
        stats = os.statvfs(tmp.parent)
        full = stats.f_bavail * stats.f_frsize < (1 << 20)
    except (OSError, AttributeError):   # no statvfs on Windows
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, f"torch.save failed ({str(error).splitlines()[0][:100]})")


def sweep_stale_temps(run_dir: Path | str) -> int:
    """Remove temp files in a run folder whose writing process is gone (a kill during a checkpoint, log
    or config write); returns how many."""
    return sweep_temps(run_dir)


def resolve_checkpoint_path(path: Path | str) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise MissingDataError(f"no checkpoint at {path}; pass a run folder (runs/<run_id>) or its checkpoint.pt "
                               f"made by `corrbench train`")
    return path


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load and validate a corrbench checkpoint; a foreign or truncated file is a CheckpointError."""
    path = resolve_checkpoint_path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for truncated / foreign files
        raise CheckpointError(f"{path} is not a readable corrbench checkpoint (truncated or another format: "
                              f"{type(error).__name__}); re-run `corrbench train` to recreate it") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a corrbench checkpoint (no '{FORMAT}' marker); "
                              f"pass a checkpoint written by `corrbench train`")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer corrbench (format {payload['format_version']}); "
                              f"upgrade corrbench to read it")
    return payload


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's tensors (names, dtypes, bytes): equal weights ⇔ equal digest."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_config(run_dir: Path, values: dict[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG_NAME, json.dumps(values, indent=2, sort_keys=True) + "\n")


@dataclass
class RunFolder:
    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def log(self) -> Path:
        return self.path / LOG_NAME
