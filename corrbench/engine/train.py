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
from corrbench.augment.color import apply_preprocess
from corrbench.config import RunConfig
from corrbench.data.datasets import dataset_info, load_dataset, resolve_data_root
from corrbench.data.splits import SubsetImages, holdout_split
from corrbench.engine.checkpoint import (RunFolder, load_checkpoint, save_checkpoint, state_digest,
                                         sweep_stale_temps, write_config)
from corrbench.device import derive_seed, make_generator, resolve_device
from corrbench.engine.distributed import (DistContext, all_gather_objects, barrier, broadcast_buffers,
                                          init_distributed)
from corrbench.engine.monitor import CleanValidation, record_failure
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


class StepSums:
    """Per-epoch sums of the logged values, kept on the device, and a device flag for the first
    non-finite loss: a training step never waits for the device (no `.item()`, no `float(tensor)`).

    On the CPU the flag is read every step (reading it costs nothing there, and the step with the
    NaN stops before its backward pass); on an accelerator every `CHECK_EVERY` steps and at the end
    of the epoch. Either way the error names the epoch and the first step whose loss was not finite.
    """

    CHECK_EVERY = 50

    def __init__(self, device: torch.device):
        self.device = device
        # float64 sums as Python floats had, where the device has float64.
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict[str, torch.Tensor] = {}
        self.check_every = 1 if device.type == "cpu" else self.CHECK_EVERY
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_value = torch.zeros((), dtype=torch.float32, device=device)

    def watch(self, loss: torch.Tensor, step: int) -> None:
        newly_bad = ~torch.isfinite(loss) & (self.bad_step < 0)
        self.bad_step = torch.where(newly_bad, step, self.bad_step)
        self.bad_value = torch.where(newly_bad, loss.float(), self.bad_value)

    def due(self, step: int, steps: int) -> bool:
        return (step + 1) % self.check_every == 0 or step + 1 == steps

    def first_nonfinite(self) -> tuple[int, float] | None:
        """(step, loss value) of the first non-finite loss this epoch, or None (one host sync)."""
        step = int(self.bad_step)
        return None if step < 0 else (step, float(self.bad_value))

    def add(self, key: str, value: torch.Tensor | float, weight: int) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach().to(self.device, self.dtype) * weight
        else:   # filled on the device: a host→device copy would wait for the queued kernels
            value = torch.full((), float(value) * weight, dtype=self.dtype, device=self.device)
        if key in self.sums:
            self.sums[key].add_(value)
        else:
            self.sums[key] = value

    def totals(self) -> dict[str, float]:
        """The sums as Python floats (one host sync per epoch)."""
        if not self.sums:
            return {}
        values = torch.stack(list(self.sums.values())).tolist()
        return dict(zip(self.sums, values))


def optimizer_kernels(device: torch.device) -> dict[str, bool | None]:
    """SGD's fused kernel on CUDA (one launch for all parameters); elsewhere torch's default (None),
    which on the CPU is the per-parameter loop whose results earlier runs pinned."""
    return {"fused": True if device.type == "cuda" else None}


def compile_stages(model: nn.Module, device: torch.device) -> bool:
    """`torch.compile` the stem, every stage and the head in place (on CUDA only; the CPU runs eager).

    Compiling the parts, not `Classifier.forward`, keeps the feature hooks of the mixing methods
    eager between compiled stages (a new hook every step would otherwise recompile), and keeps the
    state-dict keys. Returns whether anything was compiled."""
    if device.type != "cuda" or not all(hasattr(model, name) for name in ("stem", "stages", "head")):
        return False
    for part in (model.stem, *model.stages, model.head):
        part.compile()
    return True


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
                                weight_decay=config.weight_decay, nesterov=config.nesterov and config.momentum > 0,
                                **optimizer_kernels(device))

    n_total = len(trainset)
    per_rank_batch = config.batch_size // ctx.world_size
    n_rank = n_total // ctx.world_size
    steps_per_epoch = math.ceil(n_rank / per_rank_batch)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        for group in optimizer.param_groups:   # a checkpoint from another device type keeps its kernel choice
            group.update(optimizer_kernels(device))
        scheduler.load_state_dict(checkpoint["scheduler"])

    if trainset.in_memory:
        all_images = trainset.tensor().to(device)
    all_labels = trainset.labels.to(device)
    stream = _resized_crop_stream(config, trainset, info, device, ctx.rank, per_rank_batch)   # None: padded crop
    if config.compile:
        compile_stages(model, device)
    train_model: nn.Module = model
    if ctx.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and config.amp
                else contextlib.nullcontext())

    validation = CleanValidation(config.dataset, data_root, device, every=config.val_every, epochs=config.epochs,
                                 batch_size=config.eval_batch_size, channels_last=channels_last)
    checkpoint_extra = {"dataset": info.__dict__ | {"mean": list(info.mean), "std": list(info.std)},
                        "arch_resolved": arch, "method_hyperparameters": method.hyperparameters()}
    # Plain-log progress (stderr not a terminal): one line per epoch with its scalars, none per batch.
    epoch_task = progress.add_task("epochs", total=config.epochs, completed=start_epoch, log="each")
    batch_task = progress.add_task("batches", total=steps_per_epoch, log=False)
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
                # One copy per epoch: a per-step host→device copy of the indices would wait for the queued kernels.
                device_permutation = permutation.to(device)
                batches = stream.epoch(epoch, permutation) if stream is not None else None
                sums = StepSums(device)
                seen = 0
                started = time.perf_counter()
                for step in range(steps_per_epoch):
                    batch_slice = slice(step * per_rank_batch, (step + 1) * per_rank_batch)
                    index = device_permutation[batch_slice]
                    if stream is not None:   # RandomResizedCrop + flip of the files, decoded ahead by workers
                        images, labels = next(batches)
                    else:
                        if trainset.in_memory:
                            images = all_images[index]
                        else:
                            images = trainset.images(permutation[batch_slice]).to(device, non_blocking=True)
                        labels = all_labels[index]
                        images = random_crop_flip(images, config.crop_padding, config.flip, device_generator)
                    images = apply_preprocess(images, config.preprocess, device_generator)   # e.g. MAGN's jitter
                    images = augmentation.apply(images, device_generator)
                    if channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with autocast:
                        loss, logs = method.loss(train_model, images, labels, device_generator)
                    sums.watch(loss.detach(), step)
                    if sums.due(step, steps_per_epoch):
                        bad = sums.first_nonfinite()
                        if bad is not None:
                            bad_step, bad_value = bad
                            raise TrainingDivergedError(
                                f"loss became {bad_value} at epoch {epoch + 1}, step {bad_step + 1}; "
                                f"{_what_is_kept(folder, saved_epoch)}; lower --lr or check the method's settings")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    batch = labels.shape[0]
                    seen += batch
                    sums.add("loss", loss.detach(), batch)
                    for key, value in logs.items():
                        sums.add(key, value, batch)
                    progress.advance(batch_task)
            seconds = time.perf_counter() - started
            broadcast_buffers(model, ctx)
            row = {"epoch": epoch + 1, **{k: v / max(seen, 1) for k, v in sums.totals().items()},
                   "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                   "images_per_s": seen * ctx.world_size / seconds if seconds > 0 else float("nan")}
            row.update(validation.scalars(model, epoch + 1, autocast))   # {"val_error": …} when --val-every is due
            log_rows.append(row)
            if ctx.is_main:
                if saved_epoch == 0:   # the run folder appears with its first checkpoint, not before
                    _create_run_folder(folder, config)
                save_checkpoint(folder.checkpoint, {
                    "config": config.to_json(), "epoch": epoch + 1, "complete": epoch + 1 == config.epochs,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "log": log_rows, **checkpoint_extra})
                saved_epoch = epoch + 1
                _write_log(folder, log_rows)
            barrier(ctx)
            progress.update(epoch_task, **{k: row.get(k) for k in ("loss", "val_error", "lr", "images_per_s")})
            progress.advance(epoch_task)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    except TrainingDivergedError as error:
        if ctx.is_main:   # `corrbench runs` tells a run that failed with NaN from one that was interrupted
            record_failure(folder.path, epoch=epoch + 1, saved_epoch=saved_epoch, reason="nan", message=str(error))
        raise
    except KeyboardInterrupt:
        kept = _what_is_kept(folder, saved_epoch) + ("; continue with the same command plus --resume"
                                                     if saved_epoch else "")
        raise TrainingInterrupted(f"interrupted in epoch {min(epoch + 1, config.epochs)}; {kept}") from None
    finally:
        if stream is not None:
            stream.close()   # the decoding worker processes
    digest = state_digest(model.state_dict())
    rank_digests = [str(d) for d in all_gather_objects(digest, ctx)]
    return TrainResult(run_id=config.run_id(), run_dir=folder.path, epochs_completed=len(log_rows),
                       resumed_from_epoch=start_epoch, log=pd.DataFrame(log_rows), weights_digest=digest,
                       rank_digests=rank_digests)


def _resized_crop_stream(config: RunConfig, trainset, info, device: torch.device, rank: int,
                         per_rank_batch: int):
    """The RandomResizedCrop stream of the training files for train_crop=random_resized, else None."""
    if config.train_crop != "random_resized":
        return None
    from corrbench.data.train_stream import ResizedCropStream, default_loader_workers, image_files
    paths, labels = image_files(trainset)   # a UserError for in-memory data (CIFAR, npy:)
    return ResizedCropStream(paths, labels, info.height_width, seed=config.seed, batch_size=per_rank_batch,
                             device=device, rank=rank, flip=config.flip, workers=default_loader_workers())


def _prepare_folder(folder: RunFolder, config: RunConfig, resume: bool, overwrite: bool, ctx: DistContext):
    """Create or reuse the run folder; returns (start_epoch, log_rows, checkpoint or None)."""
    if (resume or overwrite) and ctx.is_main:
        sweep_stale_temps(folder.path)   # temp files of a killed earlier attempt
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
    # The folder is made with the first checkpoint (_create_run_folder): a failure before it (missing data,
    # a bad hyperparameter, NaN in epoch 1) leaves nothing behind.
    return 0, [], None


def _create_run_folder(folder: RunFolder, config: RunConfig) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    write_config(folder.path, config.to_json())


def _what_is_kept(folder: RunFolder, saved_epoch: int) -> str:
    """What a stopped run leaves on disk, exactly (for the NaN and Ctrl-C messages)."""
    if saved_epoch:
        return f"the checkpoint of epoch {saved_epoch} is kept in {folder.path}"
    if folder.checkpoint.exists():   # --overwrite stopped before its first checkpoint replaced the old one
        return f"no epoch finished; the earlier run's checkpoint in {folder.path} is left as it was"
    return "no epoch finished, so nothing was written (no run folder)"


def _write_log(folder: RunFolder, rows: list[dict]) -> None:
    with atomic_path(folder.log) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
