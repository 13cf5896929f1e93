"""`corrbench flip-rate`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from corrbench.cli.common import console, fmt, percent, progress_bars, split_names

HELP = """Stability on a -P suite: flip probability and top-5 distance per perturbation, and their means
(mFP, mT5D; unnormalised, as reported for CIFAR-10-P).

Reads the official files (e.g. CIFAR-10-P under the data root) or generates the sequences from the clean
test split with corrbench's perturbation engine (--source generated; `corrbench data make-p` writes the
same bytes as files).

Example: corrbench flip-rate --checkpoint runs/<run_id> --suite cifar10-p --data-root ./data
"""


def flip_rate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A run folder (runs/<run_id>) or its checkpoint.pt."),
    suite: Optional[str] = typer.Option(None, help="A -P suite, e.g. cifar10-p [default: <run's dataset>-p]."),
    source: str = typer.Option("auto", help="auto (official files if present), files, or generated."),
    seed: int = typer.Option(0, help="Seed of the generated sequences (--source generated)."),
    perturbations: Optional[str] = typer.Option(None, help="Comma-separated subset of perturbations."),
    difficulty: int = typer.Option(1, help="Frame step for non-noise sequences; noise level (file _2/_3) for noise ones."),
    limit: Optional[int] = typer.Option(None, help="Only the first N videos of each perturbation."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Frames per forward pass."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder for the results Parquet file."),
) -> None:
    from corrbench.engine.flip_rate import flip_rate as run_flip_rate
    from corrbench.engine.runs import default_suite

    suite = suite or default_suite(checkpoint, "p")
    with progress_bars() as progress:
        result = run_flip_rate(checkpoint, suite, data_root=data_root, source=source, seed=seed,
                               perturbations=split_names(perturbations), difficulty=difficulty, limit=limit,
                               batch_size=batch_size, device=device, results_dir=results, progress=progress)
    table = Table(title=f"{suite} ({result.rows['source'].iloc[0]}) — {result.rows['run_id'].iloc[0]} "
                        f"(difficulty {difficulty})")
    for column in ("perturbation", "videos", "flip prob. %", "top-5 dist."):
        table.add_column(column, justify="left" if column == "perturbation" else "right")
    for row in result.rows.itertuples(index=False):
        table.add_row(row.corruption, str(row.n), percent(row.flip_probability), fmt(row.top5_distance))
    summary = result.summary.iloc[0]
    table.add_row("mean (test perturbations)", "", percent(summary["mean_flip_probability"]),
                  fmt(summary["mean_top5_distance"]), style="bold")
    console.print(table)
    console.print(f"{result.frames} frames in {result.seconds:.1f} s; results: {result.path}", highlight=False, soft_wrap=True)
