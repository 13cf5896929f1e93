"""`corrbench eval`."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from corrbench.cli import model_options as mo
from corrbench.cli.common import console, progress_bars
from corrbench.cli.display import severity_table, summary_table
from corrbench.errors import CorrbenchWarning

HELP = """Evaluate a model on a -C suite: error, NLL, ECE, RMS calibration, AURRA per corruption × severity.

The model is a corrbench run (--checkpoint) or any other model (--model: timm, Hugging Face hub,
torchvision, RobustBench, TorchScript, a Python factory). Writes one Parquet file to --results (schema: docs/results-schema.md) and prints the table.

Example: corrbench eval --checkpoint runs/mnist5k-mnist_cnn-standard-s0-1a2b3c4d --suite mnist5k-c
Example: corrbench eval --model timm:resnet18 --weights resnet18_cifar10.safetensors --suite cifar10-c
"""


def evaluate(
    checkpoint: Optional[Path] = mo.CHECKPOINT,
    model: Optional[str] = mo.MODEL,
    suite: Optional[str] = typer.Option(None, help="Suite, e.g. cifar10-c [default: <run's dataset>-c]."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="The clean set of suites that need one: --suite c, cfolder:PATH, cnpy:PATH (a registered name, npy:IMAGES,LABELS or folder:PATH) [default: the run's]."),
    source: str = typer.Option("auto", help="auto (official files if present), files, or generated."),
    seed: int = typer.Option(0, help="Seed of the generated suite (--source generated)."),
    corruptions: Optional[str] = typer.Option(None, help="Comma-separated subset of corruptions."),
    severities: Optional[str] = typer.Option(None, help="Comma-separated subset of severities (1-5)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Evaluation batch size."),
    baseline: Optional[Path] = typer.Option(None, help="Run folder, run id or label whose eval results (in --results; evaluate it first) normalise the mCE (default: AlexNet for imagenet-c, none otherwise)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    download: bool = typer.Option(False, "--download", help="First download the suite and its clean dataset if they are published sets missing from the data root (as `corrbench data download`)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder for the results Parquet file."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where --baseline run ids are looked up."),
    weights: Optional[str] = mo.WEIGHTS,
    model_dir: Optional[Path] = mo.MODEL_DIR,
    mean: Optional[str] = mo.MEAN,
    std: Optional[str] = mo.STD,
    input_size: Optional[str] = mo.INPUT_SIZE,
    interpolation: Optional[str] = mo.INTERPOLATION,
    crop_pct: Optional[float] = mo.CROP_PCT,
    class_map: Optional[str] = mo.CLASS_MAP,
    label: Optional[str] = mo.LABEL,
    precision: str = mo.PRECISION,
    shard: Optional[str] = typer.Option(None, "--shard", metavar="I/N", help="Evaluate only shard I of N (images ⌊I·N_part/N⌋ to ⌊(I+1)·N_part/N⌋ of every part); one Parquet file per shard, merged by report. Under torchrun each rank takes its own shard."),
) -> None:
    from corrbench.cli.common import check_evaluation_options, corruption_names, severity_list

    # Everything the command line says is checked before torch loads and before any work.
    chosen_corruptions, chosen_severities = corruption_names(corruptions, suite), severity_list(severities)
    check_evaluation_options(batch_size, source, device, results)
    from corrbench.shards import parse_shard
    chosen_shard = parse_shard(shard) if shard is not None else None
    from corrbench.engine.evaluate import evaluate as run_evaluation

    target, options = mo.model_and_options(checkpoint, model, weights=weights, model_dir=model_dir, mean=mean,
                                           std=std, input_size=input_size, interpolation=interpolation,
                                           crop_pct=crop_pct, class_map=class_map, label=label, precision=precision)
    suite = mo.suite_or_default(suite, checkpoint, "c")
    if download and source != "generated":
        from corrbench.cli.data_download import download_progress
        from corrbench.data.download import ensure_downloaded
        with download_progress() as progress:
            ensure_downloaded(suite, data_root, progress=progress)
    with progress_bars() as progress:
        result = run_evaluation(target, suite, dataset=dataset, options=options, data_root=data_root, source=source, seed=seed,
                                corruptions=chosen_corruptions, severities=chosen_severities,
                                batch_size=batch_size, device=device, baseline=baseline, results_dir=results,
                                runs_dir=runs_dir, progress=progress, shard=chosen_shard)
    rows, summary, part = result.rows, result.summary, ""
    if result.merged is not None:   # torchrun rank 0: every rank's shard merged into the full suite
        from corrbench.results import aggregate
        rows, summary = result.merged, aggregate(result.merged)
        part = f" — {result.shard.count} shards merged"
    elif result.shard is not None:
        if chosen_shard is None and result.shard.index != 0:   # torchrun: rank 0 prints the merged table
            console.print(f"shard {result.shard}: {result.images} images in {result.seconds:.1f} s; results: "
                          f"{result.path}", highlight=False, soft_wrap=True)
            return
        part = f" — shard {result.shard} only ({result.images} images; report merges the shards)"
    name = rows["label"].iloc[0] if "label" in rows else rows["run_id"].iloc[0]
    console.print(severity_table(rows, f"{suite} error % ({rows['source'].iloc[0]}) — {name}{part}"))
    console.print(summary_table(summary, "summary (benchmark corruptions)", rows=rows))
    if result.scale_note:
        console.print(result.scale_note, highlight=False, soft_wrap=True)
    console.print(f"{result.images} images in {result.seconds:.1f} s ({result.images_per_s:.0f} images/s); "
                  f"results: {result.path}", highlight=False, soft_wrap=True)
    from corrbench.results import incomplete_checkpoint_warning
    unfinished = incomplete_checkpoint_warning(result.rows)   # e.g. a run stopped at epoch 3 of 10
    if unfinished:
        warnings.warn(unfinished, CorrbenchWarning)
