"""`corrbench eval`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli.common import console, progress_bars, split_ints, split_names
from corrbench.cli.display import severity_table, summary_table

HELP = """Evaluate a trained run on a -C suite: error, NLL, ECE, RMS calibration, AURRA per corruption × severity.

Writes one Parquet file to --results (schema: docs/results-schema.md) and prints the table.

Example: corrbench eval --checkpoint runs/mnist5k-mnist_cnn-standard-s0-1a2b3c4d --suite mnist5k-c
"""


def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A run folder (runs/<run_id>) or its checkpoint.pt."),
    suite: Optional[str] = typer.Option(None, help="Suite, e.g. cifar10-c [default: <run's dataset>-c]."),
    source: str = typer.Option("auto", help="auto (official files if present), files, or generated."),
    seed: int = typer.Option(0, help="Seed of the generated suite (--source generated)."),
    corruptions: Optional[str] = typer.Option(None, help="Comma-separated subset of corruptions."),
    severities: Optional[str] = typer.Option(None, help="Comma-separated subset of severities (1-5)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Evaluation batch size."),
    baseline: Optional[Path] = typer.Option(None, help="Run whose errors normalise the mCE (default: AlexNet for imagenet-c, none otherwise)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder for the results Parquet file."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where --baseline run ids are looked up."),
) -> None:
    from corrbench.engine.evaluate import evaluate as run_evaluation
    from corrbench.engine.runs import default_suite

    suite = suite or default_suite(checkpoint, "c")
    with progress_bars() as progress:
        result = run_evaluation(checkpoint, suite, data_root=data_root, source=source, seed=seed,
                                corruptions=split_names(corruptions), severities=split_ints(severities, "--severities"),
                                batch_size=batch_size, device=device, baseline=baseline, results_dir=results,
                                runs_dir=runs_dir, progress=progress)
    run_id = result.rows["run_id"].iloc[0]
    console.print(severity_table(result.rows, f"{suite} error % ({result.rows['source'].iloc[0]}) — {run_id}"))
    console.print(summary_table(result.summary, "summary (benchmark corruptions)"))
    console.print(f"{result.images} images in {result.seconds:.1f} s ({result.images_per_s:.0f} images/s); "
                  f"results: {result.path}", highlight=False, soft_wrap=True)
