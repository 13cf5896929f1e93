"""`corrbench train`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from corrbench.cli.common import console, fmt, progress_bars

HELP = """Train a model with a robustness method; writes runs/<run_id>/ (config, checkpoint, log).

Training settings default to the method's paper recipe (`corrbench methods show NAME`).

Example: corrbench train --dataset mnist5k --arch mnist_cnn --method gaussian-noise --epochs 2
"""


def train(
    dataset: str = typer.Option("cifar10", help="Dataset name (see `corrbench data`), folder:PATH or npy:IMAGES,LABELS."),
    arch: str = typer.Option("resnet18", help="Architecture (see `corrbench zoo`) or any timm model name."),
    method: str = typer.Option("standard", help="Training method (see `corrbench methods`)."),
    augment: str = typer.Option("none", help="Extra input augmentation composed with the method."),
    epochs: Optional[int] = typer.Option(None, help="Epochs [default: the method's recipe]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size [default: recipe]."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate [default: recipe]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay [default: recipe]."),
    schedule: Optional[str] = typer.Option(None, help="cosine (per step), step or constant [default: recipe]."),
    seed: int = typer.Option(0, help="Seed for initialisation, data order and every random draw."),
    holdout: int = typer.Option(0, help="Training images to hold out for `calibrate`'s temperature fit."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override: key=value or METHOD.param=value (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue this configuration's run from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start this configuration's run again from scratch."),
    val_every: int = typer.Option(0, "--val-every", metavar="K", help="Clean test error every K epochs and at the last into train_log.parquet (val_error); 0: never. Not part of the run id."),
    logger: str = typer.Option("none", "--logger", help="Also write the epoch scalars: csv (<run>/scalars.csv) or tensorboard (<run>/tensorboard/, needs the tensorboard extra)."),
) -> None:
    from corrbench.config import RunConfig, apply_overrides
    from corrbench.writable import RUNS_FREE_BYTES, check_writable_folder

    # Names, paths and numbers first (no torch yet): a typo fails in a fraction of a second.
    config = RunConfig(dataset=dataset, arch=arch, method=method, augment=augment, epochs=epochs,
                       batch_size=batch_size, lr=lr, weight_decay=weight_decay, schedule=schedule, seed=seed,
                       holdout=holdout, data_root=str(data_root) if data_root else None, device=device,
                       val_every=val_every)
    config = apply_overrides(config, set_ or [])
    config.check()
    from corrbench.names import LOGGERS, check_name
    check_name("logger", logger, LOGGERS)
    check_writable_folder(runs_dir, "--runs-dir", free_bytes=RUNS_FREE_BYTES)
    resolved = config.resolved()
    from corrbench.engine.monitor import scalar_logger
    from corrbench.engine.train import train as run_training
    on_epoch_end = scalar_logger(logger, runs_dir / resolved.run_id())   # (an unknown --logger fails here, before training)
    if int(os.environ.get("RANK", "0")) != 0:   # under torchrun only rank 0 talks
        run_training(config, runs_dir=runs_dir, resume=resume, overwrite=overwrite)
        return
    console.print(f"run [bold]{resolved.run_id()}[/]: {resolved.method} on {resolved.dataset} with "
                  f"{resolved.arch}, {resolved.epochs} epochs, batch {resolved.batch_size}, lr {resolved.lr}",
                  highlight=False, soft_wrap=True)
    with progress_bars() as progress:
        result = run_training(config, runs_dir=runs_dir, resume=resume, overwrite=overwrite, progress=progress,
                              on_epoch_end=on_epoch_end)
    table = Table(title=f"{result.run_id}")
    log = result.log
    columns = [c for c in log.columns if c not in ("epoch",)]
    table.add_column("epoch", justify="right")
    for column in columns:
        table.add_column(column, justify="right")
    for row in log.itertuples(index=False):
        values = row._asdict()
        table.add_row(str(values["epoch"]), *[fmt(values[c], 4 if c == "lr" else 3) for c in columns])
    console.print(table)
    if result.resumed_from_epoch:
        console.print(f"resumed from epoch {result.resumed_from_epoch}")
    if len(result.rank_digests) > 1:
        same = len(set(result.rank_digests)) == 1
        console.print(f"DDP: {len(result.rank_digests)} processes; weights "
                      f"{'identical on every rank' if same else 'DIFFER between ranks'} "
                      f"(sha256 {result.weights_digest[:16]})", highlight=False)
    console.print(f"run folder: {result.run_dir}")
