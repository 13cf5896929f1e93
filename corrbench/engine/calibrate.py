"""Calibration under corruption: the calibration metrics per corruption × severity, before and after
temperature scaling (Guo et al. 2017) fitted on clean training images. The engine returns the pooled
per-sample statistics; report.plots draws the reliability diagrams from them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from corrbench.data.datasets import ImageSet, load_dataset
from corrbench.data.splits import SubsetImages, holdout_split
from corrbench.data.suites import Part
from corrbench.engine.evaluate import metric_row, open_suite, resolve_normaliser, suite_identity
from corrbench.engine.session import ModelArg, Session, start_session
from corrbench.engine.sources import SourceOptions
from corrbench.metrics import SampleStats, fit_temperature, sample_stats
from corrbench.progress import ProgressLike
from corrbench.results import aggregate, to_frame, write_results

DEFAULT_FIT_IMAGES = 5000
FIT_SEED = 0   # the seeded training subset for models that are not corrbench runs


@dataclass
class CalibrateResult:
    rows: pd.DataFrame
    summary: pd.DataFrame
    temperature: float
    fit_images: int
    fit_on_holdout: bool
    fit_split: str                # what the temperature was fitted on, in words
    path: Path | None
    # pooled per-sample statistics for reliability diagrams: (clean|corrupted, before|after) → stats
    reliability: dict[tuple[str, str], SampleStats] = field(default_factory=dict, repr=False)
    label: str = ""


def fit_split(session: Session, fit_images: int) -> tuple[ImageSet, bool, str]:
    """The clean training images to fit the temperature on: a run's held-out split if it kept one
    (`--holdout`), else a fixed seeded subset of the training split (which a run has seen)."""
    run = session.run
    dataset = session.spec.dataset
    trainset = load_dataset(dataset, "train", session.data_root)
    if run is not None and getattr(run.config, "holdout", 0):
        _, held = holdout_split(len(trainset), run.config.holdout, run.config.seed)
        return SubsetImages(trainset, held), True, "the run's held-out split"
    seed = run.config.seed if run is not None else FIT_SEED
    _, subset = holdout_split(len(trainset), min(fit_images, len(trainset)), seed)
    words = ("training images the model was trained on (train with --holdout N for a true held-out split)"
             if run is not None else f"{dataset} training images (seeded subset)")
    return SubsetImages(trainset, subset), False, words


def calibrate(model: ModelArg, suite: str, *, dataset: str | None = None, options: SourceOptions | None = None,
              data_root: Path | str | None = None, source: str = "auto", seed: int = 0,
              corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
              batch_size: int | None = None, device: str = "auto", fit_images: int = DEFAULT_FIT_IMAGES,
              results_dir: Path | str | None = "results", progress: ProgressLike | None = None) -> CalibrateResult:
    session = start_session(model, suite, dataset=dataset, options=options, data_root=data_root,
                            batch_size=batch_size, device=device, progress=progress)
    opened = open_suite(session, suite, source=source, seed=seed, corruptions=corruptions, severities=severities)
    normaliser = resolve_normaliser(opened, None)
    progress = session.progress

    fit_set, on_holdout, fit_words = fit_split(session, fit_images)
    fit_task = progress.add_task("fit temperature", total=len(fit_set))
    fit_part = Part("fit", 0, fit_set.labels, fit_set.images)
    logits, labels = zip(*session.logits(fit_part.batches(session.batch_size), fit_task))
    temperature = fit_temperature(torch.cat(logits).cpu(), torch.cat(labels).cpu())

    base = {**session.row_base("calibrate"), **suite_identity(opened)}
    rows = []
    pooled: dict[tuple[str, str], list[SampleStats]] = {}
    suite_task = progress.add_task(opened.spec.name, total=len(opened))
    images_task = progress.add_task("images", total=None)
    for part in opened.parts():
        progress.reset(images_task, total=part.n,
                       description="clean" if part.severity == 0 else f"{part.corruption} s{part.severity}")
        chunks = list(session.logits(part.batches(session.batch_size), images_task))
        group = "clean" if part.severity == 0 else "corrupted"
        for tag, value in (("before", 1.0), ("after", temperature)):
            stats = SampleStats.concat([sample_stats(l / value, y) for l, y in chunks])
            pooled.setdefault((group, tag), []).append(stats)
            rows.append({**base, "temperature": value, "corruption": part.corruption, "severity": part.severity,
                         "benchmark": part.benchmark, **metric_row(stats), **normaliser(part)})
        progress.advance(suite_task)
    frame = to_frame(rows)
    identity = session.predictor.identity
    path = None
    if results_dir is not None:
        path = write_results(frame, results_dir, kind="calibrate", run_id=identity.run_id, suite=opened.spec.name)
    return CalibrateResult(rows=frame, summary=aggregate(frame), temperature=temperature, fit_images=len(fit_set),
                           fit_on_holdout=on_holdout, fit_split=fit_words, path=path,
                           reliability={key: SampleStats.concat(parts) for key, parts in pooled.items()},
                           label=identity.run_id)
