"""Watching a training run: clean test error every K epochs (`--val-every`), the epoch scalars as CSV or
TensorBoard (`--logger`), and a `status.json` when a run stops on a non-finite loss (read by `corrbench runs`).

None of this changes what is trained: validation runs the model in eval mode without gradients and draws no
random numbers, so a run's weights are the same with or without it (`val_every` is not in the run identity).
"""
from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from corrbench.atomic import atomic_write_text
from corrbench.errors import UserError
from corrbench.names import LOGGERS, check_name

STATUS_NAME = "status.json"   # engine/run_listing.py reads it (a torch-free copy of the name)
SCALARS_NAME = "scalars.csv"
TENSORBOARD_DIR = "tensorboard"


class CleanValidation:
    """Top-1 error of the model on the clean test set of the run's dataset, every `every` epochs and at the
    last epoch (0: never). The network itself is evaluated (a method's test-time procedure is `eval`'s job)."""

    def __init__(self, dataset: str, data_root: Path, device: torch.device, *, every: int, epochs: int,
                 batch_size: int, channels_last: bool = False):
        self.every, self.epochs, self.batch_size = int(every or 0), epochs, batch_size
        self.device, self.channels_last = device, channels_last
        self.testset = None
        if self.every:
            from corrbench.data.datasets import load_dataset

            self.testset = load_dataset(dataset, "test", data_root)

    def due(self, epoch: int) -> bool:
        return bool(self.every) and (epoch % self.every == 0 or epoch == self.epochs)

    @torch.no_grad()
    def scalars(self, model: nn.Module, epoch: int, autocast: Any = None) -> dict[str, float]:
        """{"val_error": e} when validation is due after `epoch` (1-based), else {}."""
        if not self.due(epoch) or self.testset is None:
            return {}
        was_training = model.training
        model.eval()
        wrong, total = torch.zeros((), dtype=torch.int64, device=self.device), len(self.testset)
        labels_all = self.testset.labels
        try:
            for start in range(0, total, self.batch_size):
                stop = min(start + self.batch_size, total)
                images = self.testset.images(slice(start, stop)).to(self.device, non_blocking=True)
                images = images.float().div_(255.0)
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with autocast if autocast is not None else contextlib.nullcontext():
                    logits = model(images)
                labels = labels_all[start:stop].to(self.device)
                wrong += (logits.argmax(dim=1) != labels).sum()
        finally:
            model.train(was_training)
        return {"val_error": float(wrong.item()) / max(total, 1)}


def check_logger(kind: str) -> None:
    """`--logger` names a known logger whose package is installed (checked before training starts)."""
    check_name("logger", kind, LOGGERS)
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UserError("--logger tensorboard needs the tensorboard package: pip install 'corrbench[tensorboard]' "
                            "(or use --logger csv)") from None


def scalar_logger(kind: str, run_dir: Path) -> Callable[[int, dict], None] | None:
    """An `on_epoch_end(epoch, row)` callback writing the epoch's scalars: `csv` appends `epoch,name,value`
    lines to `<run>/scalars.csv` (started afresh at epoch 1, appended to on --resume); `tensorboard` writes
    event files to `<run>/tensorboard/`. None for `none`."""
    check_logger(kind)
    if kind == "none":
        return None
    run_dir = Path(run_dir)
    if kind == "csv":
        def write_csv(epoch: int, row: dict) -> None:
            path = run_dir / SCALARS_NAME
            fresh = epoch == 1 or not path.exists()
            with open(path, "w" if fresh else "a", newline="") as handle:
                writer = csv.writer(handle)
                if fresh:
                    writer.writerow(["epoch", "name", "value"])
                writer.writerows([epoch, name, repr(float(value))] for name, value in row.items()
                                 if name != "epoch" and isinstance(value, (int, float)))
        return write_csv

    from torch.utils.tensorboard import SummaryWriter

    writers: list[SummaryWriter] = []

    def write_tensorboard(epoch: int, row: dict) -> None:
        if not writers:
            writers.append(SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR)))
        for name, value in row.items():
            if name != "epoch" and isinstance(value, (int, float)):
                writers[0].add_scalar(name, float(value), epoch)
        writers[0].flush()
    return write_tensorboard


def record_failure(run_dir: Path, *, epoch: int, saved_epoch: int, reason: str, message: str) -> None:
    """Write `<run>/status.json` for a run that stopped (e.g. `reason="nan"`) — only when the run folder exists
    (a run that failed before its first checkpoint leaves nothing behind)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    atomic_write_text(run_dir / STATUS_NAME, json.dumps(
        {"status": "failed", "reason": reason, "epoch": epoch, "checkpoint_epoch": saved_epoch,
         "message": message}, indent=2) + "\n")
