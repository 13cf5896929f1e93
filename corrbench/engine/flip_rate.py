"""Stability on -P suites: flip probability and top-5 distance per perturbation (Hendrycks &
Dietterich 2019, §3; cifar-p-eval.py), and their unnormalised means mFP / mT5D."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from corrbench.data.datasets import resolve_data_root
from corrbench.data.psuites import P_TEST_PERTURBATIONS, open_perturbation_suite
from corrbench.data.suites import get_suite_spec
from corrbench.device import resolve_device
from corrbench.engine.evaluate import inference_context, provenance
from corrbench.progress import ProgressLike, null_progress
from corrbench.engine.runs import load_run, run_identity
from corrbench.errors import UserError
from corrbench.metrics import flip_probability, is_noise_perturbation, top5_distance, topk_ordinal
from corrbench.results import aggregate, to_frame, write_results


@dataclass
class FlipRateResult:
    rows: pd.DataFrame
    summary: pd.DataFrame
    path: Path | None
    frames: int
    seconds: float


def flip_rate(checkpoint: Path | str, suite: str, *, data_root: Path | str | None = None, source: str = "auto",
              seed: int = 0, perturbations: Sequence[str] | None = None, difficulty: int = 1,
              limit: int | None = None, batch_size: int | None = None, device: str = "auto",
              results_dir: Path | str | None = "results", progress: ProgressLike | None = None) -> FlipRateResult:
    """Flip probability and top-5 distance of a run on each perturbation of a -P suite.

    `source`: 'files' (official layout under the data root), 'generated' (made from the clean test split
    with `seed`, on the evaluation device) or 'auto' (files if present). `limit` keeps the first N videos.
    """
    progress = progress or null_progress()
    torch_device = resolve_device(device)
    run = load_run(checkpoint, torch_device)
    spec = get_suite_spec(suite)
    if spec.dataset != run.config.dataset:
        raise UserError(f"run {run.run_id} was trained on {run.config.dataset} but suite {suite} is built from "
                        f"{spec.dataset}")
    root = resolve_data_root(data_root if data_root is not None else run.config.data_root)
    opened = open_perturbation_suite(suite, root, source=source, seed=seed, perturbations=perturbations,
                                     difficulty=difficulty, device=torch_device, limit=limit)
    frames_per_batch = batch_size or run.config.eval_batch_size
    base = {**provenance(run, torch_device, frames_per_batch), "kind": "flip-rate", **run_identity(run),
            "suite": suite, "source": opened.source, "generator_seed": opened.seed, "temperature": 1.0}
    rows = []
    suite_task = progress.add_task(suite, total=len(opened.parts))
    video_task = progress.add_task("videos", total=None)
    started = time.perf_counter()
    frames = 0
    for part in opened.parts:
        progress.reset(video_task, total=part.n, description=part.perturbation)
        videos_per_batch = max(1, frames_per_batch // part.frames)
        predictions, top5 = [], []
        for videos in part.batches(videos_per_batch):
            count, length = videos.shape[:2]
            images = videos.reshape(count * length, *videos.shape[2:]).to(torch_device)
            with inference_context(torch_device):
                logits = run.method.predict(run.model, images.float().div_(255.0)).float()
            best = topk_ordinal(logits, 5).reshape(count, length, -1).cpu()
            predictions.append(best[..., 0].numpy())
            top5.append(best.numpy())
            frames += count * length
            progress.advance(video_task, count)
        predictions_all, top5_all = np.concatenate(predictions), np.concatenate(top5)
        noise = is_noise_perturbation(part.perturbation)
        rows.append({**base, "corruption": part.perturbation, "severity": 0, "difficulty": part.difficulty,
                     "benchmark": part.perturbation in P_TEST_PERTURBATIONS, "n": part.n,
                     "flip_probability": flip_probability(predictions_all, noise=noise, difficulty=part.difficulty),
                     "top5_distance": top5_distance(top5_all, noise=noise, difficulty=part.difficulty)})
        progress.advance(suite_task)
    seconds = time.perf_counter() - started
    frame = to_frame(rows)
    path = None
    if results_dir is not None:
        path = write_results(frame, results_dir, kind="flip-rate", run_id=run.run_id, suite=suite)
    return FlipRateResult(rows=frame, summary=aggregate(frame), path=path, frames=frames, seconds=seconds)
