"""The training loop: clean data as uint8 tensors on the device, batched by index; crop + flip on the
device; the method computes the loss; SGD with per-step cosine or step schedules; bf16 autocast and
channels_last on CUDA; an atomic checkpoint after every epoch; exact resume; DDP under torchrun.

Every random draw comes from generators derived from (seed, epoch, stream, rank), so an epoch
replays identically whether or not the run was interrupted before it.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn

from corrbench.atomic import atomic_path
from corrbench.augment import get_augmentation, random_crop_flip
from corrbench.config import RunConfig
from corrbench.data.datasets import dataset_info, load_dataset, resolve_data_root
from corrbench.data.splits import SubsetImages, holdout_split
from corrbench.engine.checkpoint import (RunFolder, load_checkpoint, save_checkpoint, state_digest, write_config)
from corrbench.device import derive_seed, make_generator, resolve_device
from corrbench.engine.distributed import (DistContext, all_gather_objects, barrier, broadcast_buffers,
                                          init_distributed)
from corrbench.progress import ProgressLike, null_progress
from corrbench.errors import TrainingDivergedError, UserError
from corrbench.methods import create_method
from corrbench.models import create_model, resolve_arch


class TrainingInterrupted(UserError):
    """Ctrl-C during training; the last completed epoch's checkpoint is kept."""

    exit_code = 130


@dataclass
class TrainResult:
    run_id: str
    run_dir: Path
    epochs_completed: int
    resumed_from_epoch: int
    log: pd.DataFrame
    weights_digest: str
    rank_digests: list[str]


def build_scheduler(optimizer: torch.optim.Optimizer, config: RunConfig, steps_per_epoch: int):
    """Per-step LR multiplier: cosine to 0 over all steps, step decay at milestones, or constant."""
    total = config.epochs * steps_per_epoch

    if config.schedule == "cosine":
        def factor(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif config.schedule == "step":
        milestones = sorted(config.milestones)

        def factor(step: int) -> float:
            epoch = step // steps_per_epoch
            return config.gamma ** sum(epoch >= m for m in milestones)
    else:
        def factor(step: int) -> float:
            return 1.0
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def run_dir_for(config: RunConfig, runs_dir: Path | str) -> Path:
    return Path(runs_dir) / config.run_id()


def train(config: RunConfig, *, runs_dir: Path | str = "runs", resume: bool = False, overwrite: bool = False,
          progress: ProgressLike | None = None,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train `config` into `runs_dir/<run_id>`; with `resume`, continue from its last checkpoint."""
    config = config.resolved()
    progress = progress or null_progress()
    device = resolve_device(config.device)
    ctx = init_distributed(device.type)
    if ctx.enabled and config.device == "auto":
        device = resolve_device("auto", ctx.local_rank)
    if ctx.enabled and config.batch_size % ctx.world_size:
        raise UserError(f"batch size {config.batch_size} does not split evenly over {ctx.world_size} processes; "
                        f"choose a multiple of {ctx.world_size}")
    folder = RunFolder(run_dir_for(config, runs_dir))
    start_epoch, log_rows, checkpoint = _prepare_folder(folder, config, resume, overwrite, ctx)

    data_root = resolve_data_root(config.data_root)
    info = dataset_info(config.dataset)
    trainset = load_dataset(config.dataset, "train", data_root)
    if config.holdout:
        if config.holdout >= len(trainset):
            raise UserError(f"holdout {config.holdout} leaves no training images ({len(trainset)} in {config.dataset})")
        kept, _ = holdout_split(len(trainset), config.holdout, config.seed)
        trainset = SubsetImages(trainset, kept)
    method = create_method(config.method, config.method_params)
    augmentation = get_augmentation(config.augment)
    arch = resolve_arch(config.arch, info.image_size)
    with torch.random.fork_rng(devices=[]):   # model init draws from the global RNG; keep it seeded, contained
        torch.manual_seed(derive_seed(config.seed, "init"))
        model = create_model(config.arch, num_classes=info.num_classes, image_size=info.image_size,
                             mean=info.mean, std=info.std)
    channels_last = config.channels_last
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    # Weight decay on every parameter, as the reference CIFAR codes do.
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.nesterov and config.momentum > 0)

    n_total = len(trainset)
    per_rank_batch = config.batch_size // ctx.world_size
    n_rank = n_total // ctx.world_size
    steps_per_epoch = math.ceil(n_rank / per_rank_batch)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])

    if trainset.in_memory:
        all_images = trainset.tensor().to(device)
    all_labels = trainset.labels.to(device)
    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and config.amp
                else contextlib.nullcontext())

    checkpoint_extra = {"dataset": info.__dict__ | {"mean": list(info.mean), "std": list(info.std)},
                        "arch_resolved": arch, "method_hyperparameters": method.hyperparameters()}
    epoch_task = progress.add_task("epochs", total=config.epochs, completed=start_epoch)
    batch_task = progress.add_task("batches", total=steps_per_epoch)
    epoch = start_epoch
    saved_epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            progress.reset(batch_task, total=steps_per_epoch, description=f"epoch {epoch + 1}/{config.epochs}")
            model.train()
            order_generator = make_generator(torch.device("cpu"), config.seed, epoch, "order")
            device_generator = make_generator(device, config.seed, epoch, "augment", ctx.rank)
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(derive_seed(config.seed, epoch, "global", ctx.rank))  # e.g. dropout inside timm models
                permutation = torch.randperm(n_total, generator=order_generator)
                permutation = permutation[ctx.rank:n_rank * ctx.world_size:ctx.world_size]
                sums: dict[str, float] = {}
                seen = 0
                started = time.perf_counter()
                for step in range(steps_per_epoch):
                    index = permutation[step * per_rank_batch:(step + 1) * per_rank_batch]
                    if trainset.in_memory:
                        images = all_images[index.to(device)]
                    else:
                        images = trainset.images(index).to(device, non_blocking=True)
                    labels = all_labels[index.to(device)]
                    images = random_crop_flip(images, config.crop_padding, config.flip, device_generator)
                    images = augmentation.apply(images, device_generator)
                    if channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with autocast:
                        loss, logs = method.loss(train_model, images, labels, device_generator)
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise TrainingDivergedError(
                            f"loss became {loss_value} at epoch {epoch + 1}, step {step + 1}; the last good checkpoint "
                            f"(epoch {epoch}) is kept in {folder.path}; lower --lr or check the method's settings")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    batch = labels.shape[0]
                    seen += batch
                    sums["loss"] = sums.get("loss", 0.0) + loss_value * batch
                    for key, value in logs.items():
                        sums[key] = sums.get(key, 0.0) + float(value) * batch
                    progress.advance(batch_task)
            seconds = time.perf_counter() - started
            broadcast_buffers(model, ctx)
            row = {"epoch": epoch + 1, **{k: v / max(seen, 1) for k, v in sums.items()},
                   "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                   "images_per_s": seen * ctx.world_size / seconds if seconds > 0 else float("nan")}
            log_rows.append(row)
            if ctx.is_main:
                save_checkpoint(folder.checkpoint, {
                    "config": config.to_json(), "epoch": epoch + 1, "complete": epoch + 1 == config.epochs,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "log": log_rows, **checkpoint_extra})
                saved_epoch = epoch + 1
                _write_log(folder, log_rows)
            barrier(ctx)
            progress.advance(epoch_task)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    except KeyboardInterrupt:
        kept = (f"the checkpoint of epoch {saved_epoch} is kept in {folder.path}; continue with the same command "
                f"plus --resume") if saved_epoch else "no epoch had finished, so no checkpoint was written"
        raise TrainingInterrupted(f"interrupted in epoch {min(epoch + 1, config.epochs)}; {kept}") from None
    digest = state_digest(model.state_dict())
    rank_digests = [str(d) for d in all_gather_objects(digest, ctx)]
    return TrainResult(run_id=config.run_id(), run_dir=folder.path, epochs_completed=len(log_rows),
                       resumed_from_epoch=start_epoch, log=pd.DataFrame(log_rows), weights_digest=digest,
                       rank_digests=rank_digests)


def _prepare_folder(folder: RunFolder, config: RunConfig, resume: bool, overwrite: bool, ctx: DistContext):
    """Create or reuse the run folder; returns (start_epoch, log_rows, checkpoint or None)."""
    if folder.checkpoint.exists() and not (resume or overwrite):
        raise UserError(f"run {folder.path.name} already exists in {folder.path.parent}; add --resume to continue it "
                        f"or --overwrite to start again")
    if resume and folder.checkpoint.exists():
        checkpoint = load_checkpoint(folder.checkpoint)
        if checkpoint["config"].get("config_hash") != config.config_hash():
            raise UserError(f"the checkpoint in {folder.path} was trained with other settings; resume with the same "
                            f"options or start a new run")
        return int(checkpoint["epoch"]), list(checkpoint.get("log", [])), checkpoint
    # --resume without a checkpoint starts from scratch: the same command line is always safe to re-run.
    if ctx.is_main:
        folder.path.mkdir(parents=True, exist_ok=True)
        write_config(folder.path, config.to_json())
    barrier(ctx)
    return 0, [], None


def _write_log(folder: RunFolder, rows: list[dict]) -> None:
    with atomic_path(folder.log) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
