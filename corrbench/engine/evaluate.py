"""Evaluation: stream clean + every corruption × severity of a -C suite through any model (a corrbench
run or another model source) and turn per-sample statistics into one results row per (corruption, severity)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from corrbench.data.suites import CorruptionSuite, Part, open_corruption_suite
from corrbench.engine.runs import LoadedRun
from corrbench.engine.session import ModelArg, Session, Stopwatch, start_session
from corrbench.engine.sources import Predictor, SourceOptions, predictor_from_run
from corrbench.errors import MissingDataError
from corrbench.metric_catalog import ECE_BINS, RMS_BETA, metric_values
from corrbench.metrics import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS, SampleStats
from corrbench.progress import ProgressLike
from corrbench.results import (aggregate, load_results, merge_shards, sample_columns, shard_columns, to_frame,
                               write_results)
from corrbench.shards import Shard, parse_shard, shard_from_environment

@dataclass
class EvalResult:
    """Rows (one per corruption × severity, clean first), their summary, and the per-sample statistics of
    every part (`samples[(corruption, severity)]`, in suite order) for intervals and paired tests."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    path: Path | None
    images: int
    seconds: float
    samples: dict[tuple[str, int], SampleStats] = field(default_factory=dict, repr=False)
    scale_note: str = ""      # which corruption scale family the suite uses and why (generated suites)
    shard: Shard | None = None   # the shard this process evaluated (rows, samples: its images only)
    merged: pd.DataFrame | None = None   # under torchrun, on rank 0: every rank's rows merged (full suite)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def metric_row(stats: SampleStats) -> dict:
    """The per-(corruption, severity) columns of the results schema from per-sample statistics: every
    metric of corrbench.metric_catalog, their definitions, and the per-image data (docs/results-schema.md)."""
    return {
        "n": int(stats.correct.shape[0]),
        **metric_values(stats),
        "ece_binning": "equal-width", "ece_bins": ECE_BINS,
        "rms_adaptive_binning": "equal-count, last bin dropped (Hendrycks calib_err)",
        "rms_adaptive_beta": RMS_BETA, "rms_equal_width_bins": ECE_BINS,
        **sample_columns(stats),
    }


def collect_stats(model: Predictor | LoadedRun, part: Part, batch_size: int, device: torch.device,
                  progress: ProgressLike, task, temperature: float = 1.0) -> SampleStats:
    """Per-sample statistics of one part for a Predictor or a loaded run (benchmarks and tests use this)."""
    predictor = model if isinstance(model, Predictor) else predictor_from_run(model, SourceOptions()).to(device)
    session = Session(predictor=predictor, spec=None, device=device, data_root=Path("."), batch_size=batch_size,
                      progress=progress)
    return session.stats(part, task, temperature)


def suite_identity(suite: CorruptionSuite) -> dict:
    return {"suite": suite.spec.name, "source": suite.source, "generator_seed": suite.seed,
            "scale_family": getattr(suite, "scale_family", None)}


def open_suite(session: Session, suite: str, *, source: str, seed: int, corruptions: Sequence[str] | None,
               severities: Sequence[int] | None) -> CorruptionSuite:
    """Open the -C suite for a session and bind the session's predictor to its clean dataset."""
    opened = open_corruption_suite(suite, session.data_root, dataset=session.spec.dataset, source=source, seed=seed,
                                   corruptions=corruptions, severities=severities, device=session.device)
    session.bind(opened.clean)
    return opened


def evaluate(model: ModelArg, suite: str, *, dataset: str | None = None, options: SourceOptions | None = None,
             data_root: Path | str | None = None, source: str = "auto", seed: int = 0,
             corruptions: Sequence[str] | None = None, severities: Sequence[int] | None = None,
             batch_size: int | None = None, device: str = "auto", baseline: Path | str | None = None,
             results_dir: Path | str | None = "results", runs_dir: Path | str = "runs",
             progress: ProgressLike | None = None, shard: Shard | str | None = None) -> EvalResult:
    """Evaluate a model on a -C suite; writes one Parquet file under `results_dir` (None: don't write).

    `shard` ('i/n' or a Shard) evaluates only images [⌊i·N/n⌋, ⌊(i+1)·N/n⌋) of every part; its rows carry
    their range and exact per-image data, and `load_results` merges the shards of a key into the full
    part. Under torchrun (WORLD_SIZE > 1) each rank evaluates its own shard, and rank 0 gets every rank's
    rows merged in `EvalResult.merged`.

    `model`: a corrbench run folder / checkpoint, a source string (timm:…, torchvision:…, see
    engine.sources), an nn.Module or a Predictor; `options` its weights, preprocessing, class map, label and
    precision. `dataset`: the clean set of suites that need one (`c`, `cfolder:PATH`, `cnpy:PATH`). `baseline` (a run folder, run id or label) normalises the mCE with that model's errors, read
    from the eval results under `results_dir` (or ./results): evaluate the baseline first.
    """
    if isinstance(shard, str):
        shard = parse_shard(shard)
    group = None
    if shard is None:
        shard = shard_from_environment()
        if shard is not None:
            from corrbench.engine.distributed import init_distributed
            group = init_distributed("cuda" if device.startswith("cuda") or (device == "auto"
                                                                           and torch.cuda.is_available()) else "cpu")
    session = start_session(model, suite, dataset=dataset, options=options, data_root=data_root,
                            batch_size=batch_size, device=device, progress=progress)
    if group is not None and session.device.type == "cuda":
        torch.cuda.set_device(session.device)   # NCCL's object gathers use the current device: this rank's
    opened = open_suite(session, suite, source=source, seed=seed, corruptions=corruptions, severities=severities)
    normaliser = resolve_normaliser(opened, baseline, results_dir=results_dir if results_dir is not None else "results",
                                    runs_dir=runs_dir)
    base = {**session.row_base("eval"), **suite_identity(opened), "temperature": 1.0}
    progress = session.progress
    rows, samples = [], {}
    suite_task = progress.add_task(f"{opened.spec.name}", total=len(opened))
    images_task = progress.add_task("images", total=None)
    clock = Stopwatch()
    total_images = 0
    for part in opened.parts():
        label = "clean" if part.severity == 0 else f"{part.corruption} s{part.severity}"
        start, stop = shard.range(part.n) if shard is not None else (0, part.n)
        progress.reset(images_task, total=stop - start, description=label)
        stats = session.stats(part, images_task, images=(start, stop) if shard is not None else None)
        samples[(part.corruption, part.severity)] = stats
        total_images += stop - start
        placed = shard_columns(stats, shard.index, shard.count, start, stop, part.n) if shard is not None else {}
        rows.append({**base, "corruption": part.corruption, "severity": part.severity,
                     "benchmark": part.benchmark, **metric_row(stats), **normaliser(part), **placed})
        progress.advance(suite_task)
    seconds = clock.seconds
    frame = to_frame(rows)
    path = None
    if results_dir is not None:
        path = write_results(frame, results_dir, kind="eval", run_id=session.predictor.identity.run_id,
                             suite=opened.spec.name, shard=str(shard) if shard is not None else "")
    merged = None
    if group is not None:   # every rank's rows to rank 0, which merges them into the full suite
        from corrbench.engine.distributed import all_gather_objects, barrier
        gathered = all_gather_objects(frame, group)
        barrier(group)
        if group.is_main:
            merged = _in_suite_order(merge_shards(pd.concat(gathered, ignore_index=True)), frame)
    return EvalResult(rows=frame, summary=aggregate(frame), path=path, images=total_images, seconds=seconds,
                      samples=samples, scale_note=getattr(opened, "scale_note", "") or "", shard=shard,
                      merged=merged)


def _in_suite_order(rows: pd.DataFrame, order: pd.DataFrame) -> pd.DataFrame:
    """`rows` sorted as the (corruption, severity) rows of `order` are (the suite's part order, clean first)."""
    position = {(c, int(s)): i for i, (c, s) in enumerate(zip(order["corruption"], order["severity"]))}
    keys = [position.get((c, int(s)), len(position)) for c, s in zip(rows["corruption"], rows["severity"])]
    return rows.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)


def resolve_normaliser(suite: CorruptionSuite, baseline: Path | str | None, *, results_dir: Path | str | None = None,
                       runs_dir: Path | str = "runs"):
    """A function part -> {normaliser_error, mce_normaliser} for the mCE denominators."""
    if baseline is not None:
        errors, baseline_id = baseline_errors(suite, baseline, results_dir=results_dir or "results",
                                              runs_dir=runs_dir)

        def from_baseline(part: Part) -> dict:
            key = (part.corruption, part.severity)
            if key not in errors:
                raise MissingDataError(f"baseline {baseline_id} has no result for {part.corruption} severity "
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


def baseline_id(baseline: Path | str, runs_dir: Path | str) -> str:
    """The run id of a baseline given as a run folder / checkpoint (or runs_dir/<id>), else the text itself
    (a run id or a label of another model's results)."""
    from corrbench.config import RunConfig
    from corrbench.engine.checkpoint import load_checkpoint
    for path in (Path(baseline), Path(runs_dir) / str(baseline)):
        if path.exists():
            return RunConfig.from_json(load_checkpoint(path)["config"]).run_id()
    return str(baseline)


def baseline_errors(suite: CorruptionSuite, baseline: Path | str, *, results_dir: Path | str,
                    runs_dir: Path | str) -> tuple[dict[tuple[str, int], float], str]:
    """Per (corruption, severity) errors of the baseline, read from eval results on disk (never evaluated
    here: evaluate the baseline first)."""
    wanted = baseline_id(baseline, runs_dir)
    found = None
    if Path(results_dir).is_dir():
        try:
            found = load_results(results_dir, kinds=["eval"])
        except MissingDataError:
            found = None
    rows = None
    if found is not None and not found.empty:
        match = found["run_id"] == wanted
        if "label" in found:
            match = match | (found["label"] == wanted)
        mine = found[match & (found["suite"] == suite.spec.name) & (found["source"] == suite.source)]
        if "temperature" in mine:
            mine = mine[mine["temperature"].fillna(1.0) == 1.0]
        if not mine.empty:
            rows = mine.sort_values("timestamp").drop_duplicates(["corruption", "severity"], keep="last")
    if rows is None:
        hint = f"corrbench eval --checkpoint {baseline}" if Path(str(baseline)).exists() else "corrbench eval"
        raise MissingDataError(f"no eval results for baseline {wanted} on {suite.spec.name} ({suite.source}) in "
                               f"{results_dir}; evaluate the baseline first ({hint} --suite {suite.spec.name} "
                               f"--source {suite.source} --results {results_dir})")
    return {(r.corruption, int(r.severity)): float(r.error) for r in rows.itertuples()}, wanted
