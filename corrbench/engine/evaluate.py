"""Evaluation: stream clean + every corruption × severity of a -C suite through a trained model and
turn per-sample statistics into one results row per (corruption, severity)."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
import torch

from corrbench import __version__
from corrbench.data.datasets import resolve_data_root
from corrbench.data.suites import CorruptionSuite, Part, get_suite_spec, open_corruption_suite
from corrbench.device import resolve_device
from corrbench.progress import ProgressLike, null_progress
from corrbench.engine.runs import LoadedRun, load_run, run_identity
from corrbench.errors import MissingDataError, UserError
from corrbench.metrics import (ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS, SampleStats, aurra, calibration_error,
                               error_rate, mean_nll, rms_calibration_error_adaptive, sample_stats)
from corrbench.results import aggregate, load_results, to_frame, utc_timestamp, write_results

ECE_BINS = 15
RMS_BETA = 100


@dataclass
class EvalResult:
    rows: pd.DataFrame
    summary: pd.DataFrame
    path: Path | None
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def inference_context(device: torch.device):
    return (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext())


def part_logits(run: LoadedRun, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                progress: ProgressLike, task) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(logits float32, labels) per batch, predicted through the run's method (RSE ensembles, etc.)."""
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        images = images.contiguous(memory_format=torch.channels_last)
        with inference_context(device):
            logits = run.method.predict(run.model, images.float().div_(255.0))
        progress.advance(task, labels.shape[0])
        yield logits.float(), labels.to(device)


def collect_stats(run: LoadedRun, part: Part, batch_size: int, device: torch.device,
                  progress: ProgressLike, task, temperature: float = 1.0) -> SampleStats:
    chunks = [sample_stats(logits / temperature, labels)
              for logits, labels in part_logits(run, part.batches(batch_size), device, progress, task)]
    return SampleStats.concat(chunks)


def metric_row(stats: SampleStats) -> dict:
    """The per-(corruption, severity) metrics of the results schema from per-sample statistics."""
    return {
        "n": int(stats.correct.shape[0]),
        "error": error_rate(stats.correct),
        "nll": mean_nll(stats.nll),
        "ece": calibration_error(stats.confidence, stats.correct, n_bins=ECE_BINS, norm="l1"),
        "rms_equal_width": calibration_error(stats.confidence, stats.correct, n_bins=ECE_BINS, norm="l2"),
        "max_calibration_error": calibration_error(stats.confidence, stats.correct, n_bins=ECE_BINS, norm="max"),
        "rms_adaptive": rms_calibration_error_adaptive(stats.confidence, stats.correct, beta=RMS_BETA),
        "aurra": aurra(stats.confidence, stats.correct),
        "ece_binning": "equal-width", "ece_bins": ECE_BINS,
        "rms_adaptive_binning": "equal-count, last bin dropped (Hendrycks calib_err)",
        "rms_adaptive_beta": RMS_BETA, "rms_equal_width_bins": ECE_BINS,
    }


def provenance(run: LoadedRun, device: torch.device, batch_size: int) -> dict:
    return {"corrbench_version": __version__, "checkpoint_sha256": run.checkpoint_sha256,
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "timestamp": utc_timestamp(), "torch_version": torch.__version__, "eval_batch_size": batch_size}


def suite_identity(suite: CorruptionSuite) -> dict:
    return {"suite": suite.spec.name, "source": suite.source, "generator_seed": suite.seed}


def evaluate(checkpoint: Path | str, suite: str, *, data_root: Path | str | None = None, source: str = "auto",
             seed: int = 0, corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
             batch_size: int | None = None, device: str = "auto", baseline: Path | str | None = None,
             results_dir: Path | str | None = "results", runs_dir: Path | str = "runs",
             progress: ProgressLike | None = None) -> EvalResult:
    """Evaluate a run on a -C suite; writes one Parquet file under `results_dir` (None: don't write)."""
    progress = progress or null_progress()
    torch_device = resolve_device(device)
    run = load_run(checkpoint, torch_device)
    batch_size = batch_size or run.config.eval_batch_size
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    root = resolve_data_root(data_root if data_root is not None else run.config.data_root)
    opened = open_suite_for_run(run, suite, root, source=source, seed=seed, corruptions=corruptions,
                                severities=severities, device=torch_device)
    normaliser = resolve_normaliser(opened, baseline, results_dir=results_dir, runs_dir=runs_dir, data_root=root,
                                    seed=seed, batch_size=batch_size, device=device)
    base = {**provenance(run, torch_device, batch_size), "kind": "eval", **run_identity(run),
            **suite_identity(opened), "temperature": 1.0}
    rows = []
    suite_task = progress.add_task(f"{opened.spec.name}", total=len(opened))
    images_task = progress.add_task("images", total=None)
    started = time.perf_counter()
    total_images = 0
    for part in opened.parts():
        label = "clean" if part.severity == 0 else f"{part.corruption} s{part.severity}"
        progress.reset(images_task, total=part.n, description=label)
        stats = collect_stats(run, part, batch_size, torch_device, progress, images_task)
        total_images += part.n
        rows.append({**base, "corruption": part.corruption, "severity": part.severity,
                     "benchmark": part.benchmark, **metric_row(stats), **normaliser(part)})
        progress.advance(suite_task)
    seconds = time.perf_counter() - started
    frame = to_frame(rows)
    path = None
    if results_dir is not None:
        path = write_results(frame, results_dir, kind="eval", run_id=run.run_id, suite=opened.spec.name)
    return EvalResult(rows=frame, summary=aggregate(frame), path=path, images=total_images, seconds=seconds)


def open_suite_for_run(run: LoadedRun, suite: str, data_root: Path, **options) -> CorruptionSuite:
    spec = get_suite_spec(suite)
    if spec.dataset != run.config.dataset:
        raise UserError(f"run {run.run_id} was trained on {run.config.dataset} but suite {suite} is built from "
                        f"{spec.dataset}; evaluate it on a {run.config.dataset} suite")
    return open_corruption_suite(suite, data_root, **options)


def resolve_normaliser(suite: CorruptionSuite, baseline: Path | str | None, **options):
    """A function part -> {normaliser_error, mce_normaliser} for the mCE denominators."""
    if baseline is not None:
        errors, baseline_id = baseline_errors(suite, baseline, **options)

        def from_baseline(part: Part) -> dict:
            key = (part.corruption, part.severity)
            if key not in errors:
                raise MissingDataError(f"baseline run {baseline_id} has no result for {part.corruption} severity "
                                       f"{part.severity} on {suite.spec.name}; evaluate it on the same corruptions")
            return {"normaliser_error": errors[key], "mce_normaliser": f"baseline:{baseline_id}"}
        return from_baseline
    if suite.spec.name == "imagenet-c":
        def from_alexnet(part: Part) -> dict:
            if part.severity == 0:
                value = ALEXNET_CLEAN_ERROR
            else:
                value = ALEXNET_ERRORS[part.corruption][part.severity - 1]
            return {"normaliser_error": value, "mce_normaliser": "alexnet (Hendrycks & Dietterich 2019)"}
        return from_alexnet
    return lambda part: {"normaliser_error": None, "mce_normaliser": "none (unnormalised mean error)"}


def baseline_errors(suite: CorruptionSuite, baseline: Path | str, *, results_dir, runs_dir, data_root, seed,
                    batch_size, device) -> tuple[dict[tuple[str, int], float], str]:
    """Per (corruption, severity) errors of the baseline run: from results on disk, else evaluated now."""
    path = Path(baseline)
    if not path.exists():
        path = Path(runs_dir) / str(baseline)
    if not path.exists():
        raise MissingDataError(f"baseline run '{baseline}' not found (looked at {baseline} and {path}); pass its run "
                               f"folder")
    baseline_run_id = load_run(path, torch.device("cpu")).run_id
    rows = None
    if results_dir is not None and Path(results_dir).is_dir():
        try:
            found = load_results(results_dir, kinds=["eval"])
        except MissingDataError:
            found = None
        if found is not None:
            mine = found[(found["run_id"] == baseline_run_id) & (found["suite"] == suite.spec.name)
                         & (found["source"] == suite.source)]
            if not mine.empty:
                rows = mine
    if rows is None:
        rows = evaluate(path, suite.spec.name, data_root=data_root, source=suite.source, seed=seed,
                        corruptions=suite.corruptions, severities=suite.severities, batch_size=batch_size,
                        device=device, results_dir=results_dir, runs_dir=runs_dir).rows
    return {(r.corruption, int(r.severity)): float(r.error) for r in rows.itertuples()}, baseline_run_id
