"""`corrbench flip-rate`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from corrbench.cli import model_options as mo
from corrbench.cli.common import console, fmt, percent, progress_bars

HELP = """Stability of a run (--checkpoint) or any model (--model, as in `eval`) on a -P suite: flip
probability and top-5 distance per perturbation, and their means (mFP, mT5D; unnormalised, as reported
for CIFAR-10-P).

Reads the official files (e.g. CIFAR-10-P under the data root) or generates the sequences from the clean
test split with corrbench's perturbation engine (--source generated; `corrbench data make-p` writes the
same bytes as files).

Example: corrbench flip-rate --checkpoint runs/<run_id> --suite cifar10-p --data-root ./data
"""


def flip_rate(
    checkpoint: Optional[Path] = mo.CHECKPOINT,
    model: Optional[str] = mo.MODEL,
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
) -> None:
    from corrbench.cli.common import check_evaluation_options, check_positive, perturbation_names
    from corrbench.errors import check_range

    # Everything the command line says is checked before torch loads and before any work.
    chosen_perturbations = perturbation_names(perturbations, suite)
    check_range("--difficulty", difficulty, low=1)   # a frame step; noise levels (1-3) are checked per sequence
    check_positive("--limit", limit)
    check_evaluation_options(batch_size, source, device, results)
    from corrbench.engine.flip_rate import flip_rate as run_flip_rate

    target, options = mo.model_and_options(checkpoint, model, weights=weights, model_dir=model_dir, mean=mean,
                                           std=std, input_size=input_size, interpolation=interpolation,
                                           crop_pct=crop_pct, class_map=class_map, label=label, precision=precision)
    suite = mo.suite_or_default(suite, checkpoint, "p")
    with progress_bars() as progress:
        result = run_flip_rate(target, suite, options=options, data_root=data_root, source=source, seed=seed,
                               perturbations=chosen_perturbations, difficulty=difficulty, limit=limit,
                               batch_size=batch_size, device=device, results_dir=results, progress=progress)
    name = result.rows["label"].iloc[0] if "label" in result.rows else result.rows["run_id"].iloc[0]
    table = Table(title=f"{suite} ({result.rows['source'].iloc[0]}) — {name} "
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
