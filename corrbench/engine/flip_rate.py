"""Stability on -P suites: flip probability and top-5 distance per perturbation (Hendrycks &
Dietterich 2019, §3; cifar-p-eval.py), and their unnormalised means mFP / mT5D. Runs on the evaluation
session (any model source); walks sequences instead of parts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from corrbench.data.datasets import dataset_info
from corrbench.data.psuites import open_perturbation_suite
from corrbench.engine.session import ModelArg, Stopwatch, start_session
from corrbench.engine.sources import SourceOptions
from corrbench.metrics import flip_probability, is_noise_perturbation, top5_distance, topk_ordinal
from corrbench.progress import ProgressLike
from corrbench.results import aggregate, to_frame, write_results


@dataclass
class FlipRateResult:
    rows: pd.DataFrame
    summary: pd.DataFrame
    path: Path | None
    frames: int
    seconds: float


def flip_rate(model: ModelArg, suite: str, *, options: SourceOptions | None = None,
              data_root: Path | str | None = None, source: str = "auto", seed: int = 0,
              perturbations: Sequence[str] | None = None, difficulty: int = 1, limit: int | None = None,
              batch_size: int | None = None, device: str = "auto", results_dir: Path | str | None = "results",
              progress: ProgressLike | None = None) -> FlipRateResult:
    """Flip probability and top-5 distance of a model on each perturbation of a -P suite.

    `source`: 'files' (official layout under the data root), 'generated' (made from the clean test split
    with `seed`, on the evaluation device) or 'auto' (files if present). `limit` keeps the first N videos.
    `batch_size` counts frames per forward pass.
    """
    session = start_session(model, suite, options=options, data_root=data_root, batch_size=batch_size,
                            device=device, progress=progress)
    opened = open_perturbation_suite(suite, session.data_root, source=source, seed=seed, perturbations=perturbations,
                                     difficulty=difficulty, device=session.device, limit=limit)
    size = dataset_info(session.spec.dataset).image_size
    session.bind_shape((3, size, size))
    base = {**session.row_base("flip-rate"), "suite": suite, "source": opened.source, "generator_seed": opened.seed,
            "temperature": 1.0}
    progress = session.progress
    rows = []
    suite_task = progress.add_task(suite, total=len(opened.parts))
    video_task = progress.add_task("videos", total=None)
    clock = Stopwatch()
    frames = 0
    for part in opened.parts:
        progress.reset(video_task, total=part.n, description=part.perturbation)
        videos_per_batch = max(1, session.batch_size // part.frames)
        predictions, top5 = [], []
        for videos in part.batches(videos_per_batch):
            count, length = videos.shape[:2]
            images = videos.reshape(count * length, *videos.shape[2:]).to(session.device)
            logits = session.predictor.logits(images)
            best = topk_ordinal(logits, 5).reshape(count, length, -1).cpu()
            predictions.append(best[..., 0].numpy())
            top5.append(best.numpy())
            frames += count * length
            progress.advance(video_task, count)
        predictions_all, top5_all = np.concatenate(predictions), np.concatenate(top5)
        noise = is_noise_perturbation(part.perturbation)
        rows.append({**base, "corruption": part.perturbation, "severity": 0, "difficulty": part.difficulty,
                     "benchmark": part.perturbation in opened.test_perturbations, "n": part.n,
                     "flip_probability": flip_probability(predictions_all, noise=noise, difficulty=part.difficulty),
                     "top5_distance": top5_distance(top5_all, noise=noise, difficulty=part.difficulty)})
        progress.advance(suite_task)
    seconds = clock.seconds
    frame = to_frame(rows)
    path = None
    if results_dir is not None:
        path = write_results(frame, results_dir, kind="flip-rate", run_id=session.predictor.identity.run_id,
                             suite=suite)
    return FlipRateResult(rows=frame, summary=aggregate(frame), path=path, frames=frames, seconds=seconds)
