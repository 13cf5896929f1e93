"""Calibration under corruption: the calibration metrics per corruption × severity, before and after
temperature scaling (Guo et al. 2017) fitted on clean training images, plus reliability diagrams."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from corrbench.data.datasets import load_dataset, resolve_data_root
from corrbench.data.splits import SubsetImages, holdout_split
from corrbench.data.suites import Part
from corrbench.device import resolve_device
from corrbench.engine.evaluate import (metric_row, open_suite_for_run, part_logits, provenance,
                                       resolve_normaliser, suite_identity)
from corrbench.progress import ProgressLike, null_progress
from corrbench.engine.runs import load_run, run_identity
from corrbench.metrics import SampleStats, fit_temperature, sample_stats
from corrbench.report.plots import reliability_diagram
from corrbench.results import aggregate, to_frame, write_results

DEFAULT_FIT_IMAGES = 5000


@dataclass
class CalibrateResult:
    rows: pd.DataFrame
    summary: pd.DataFrame
    temperature: float
    fit_images: int
    fit_on_holdout: bool
    path: Path | None
    plots: list[Path]


def fit_split(run, data_root: Path, fit_images: int):
    """The clean training images to fit the temperature on: the run's held-out split if it kept one
    (`--holdout`), else a fixed seeded subset of the training split (which the model has seen)."""
    trainset = load_dataset(run.config.dataset, "train", data_root)
    holdout = getattr(run.config, "holdout", 0)
    if holdout:
        _, held = holdout_split(len(trainset), holdout, run.config.seed)
        return SubsetImages(trainset, held), True
    _, subset = holdout_split(len(trainset), min(fit_images, len(trainset)), run.config.seed)
    return SubsetImages(trainset, subset), False


def calibrate(checkpoint: Path | str, suite: str, *, data_root: Path | str | None = None, source: str = "auto",
              seed: int = 0, corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
              batch_size: int | None = None, device: str = "auto", fit_images: int = DEFAULT_FIT_IMAGES,
              results_dir: Path | str | None = "results", plots_dir: Path | str | None = None,
              progress: ProgressLike | None = None) -> CalibrateResult:
    progress = progress or null_progress()
    torch_device = resolve_device(device)
    run = load_run(checkpoint, torch_device)
    batch_size = batch_size or run.config.eval_batch_size
    root = resolve_data_root(data_root if data_root is not None else run.config.data_root)
    opened = open_suite_for_run(run, suite, root, source=source, seed=seed, corruptions=corruptions,
                                severities=severities, device=torch_device)
    normaliser = resolve_normaliser(opened, None)

    fit_set, on_holdout = fit_split(run, root, fit_images)
    fit_task = progress.add_task("fit temperature", total=len(fit_set))
    fit_part = Part("fit", 0, fit_set.labels, fit_set.images)
    logits, labels = zip(*part_logits(run, fit_part.batches(batch_size), torch_device, progress, fit_task))
    temperature = fit_temperature(torch.cat(logits).cpu(), torch.cat(labels).cpu())

    base = {**provenance(run, torch_device, batch_size), "kind": "calibrate", **run_identity(run),
            **suite_identity(opened)}
    rows = []
    pooled: dict[tuple[str, float], list[SampleStats]] = {}
    suite_task = progress.add_task(opened.spec.name, total=len(opened))
    images_task = progress.add_task("images", total=None)
    for part in opened.parts():
        progress.reset(images_task, total=part.n,
                       description="clean" if part.severity == 0 else f"{part.corruption} s{part.severity}")
        chunks = list(part_logits(run, part.batches(batch_size), torch_device, progress, images_task))
        group = "clean" if part.severity == 0 else "corrupted"
        for value in (1.0, temperature):
            stats = SampleStats.concat([sample_stats(l / value, y) for l, y in chunks])
            pooled.setdefault((group, value), []).append(stats)
            rows.append({**base, "temperature": value, "corruption": part.corruption, "severity": part.severity,
                         "benchmark": part.benchmark, **metric_row(stats), **normaliser(part)})
        progress.advance(suite_task)
    frame = to_frame(rows)
    path = None
    if results_dir is not None:
        path = write_results(frame, results_dir, kind="calibrate", run_id=run.run_id, suite=opened.spec.name)
    plots = []
    plots_dir = Path(plots_dir) if plots_dir is not None else (Path(results_dir) / "plots" if results_dir else None)
    if plots_dir is not None:
        for (group, value), parts in pooled.items():
            stats = SampleStats.concat(parts)
            tag = "before" if value == 1.0 else "after"
            name = f"{run.run_id}__{opened.spec.name}__reliability_{group}_{tag}.png"
            title = f"{run.run_id} — {group} ({'T=1' if value == 1.0 else f'temperature {value:.3f}'})"
            plots.append(reliability_diagram(stats.confidence, stats.correct, plots_dir / name, title=title))
    return CalibrateResult(rows=frame, summary=aggregate(frame), temperature=temperature,
                           fit_images=len(fit_set), fit_on_holdout=on_holdout, path=path, plots=plots)
