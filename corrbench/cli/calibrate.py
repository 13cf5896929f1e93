"""`corrbench calibrate`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli.common import console, progress_bars, split_ints, split_names
from corrbench.cli.display import severity_table, summary_table

HELP = """Calibration under corruption: ECE, RMS (both schemes), max calibration error, NLL per corruption ×
severity, before and after temperature scaling fitted on clean training images; reliability diagrams as PNG.

Example: corrbench calibrate --checkpoint runs/<run_id> --suite mnist5k-c
"""


def calibrate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A run folder (runs/<run_id>) or its checkpoint.pt."),
    suite: Optional[str] = typer.Option(None, help="Suite, e.g. cifar10-c [default: <run's dataset>-c]."),
    source: str = typer.Option("auto", help="auto (official files if present), files, or generated."),
    seed: int = typer.Option(0, help="Seed of the generated suite (--source generated)."),
    corruptions: Optional[str] = typer.Option(None, help="Comma-separated subset of corruptions."),
    severities: Optional[str] = typer.Option(None, help="Comma-separated subset of severities (1-5)."),
    fit_images: int = typer.Option(5000, "--fit-images", help="Training images for the temperature fit when the run kept no --holdout."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Evaluation batch size."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder for the results file and plots/."),
) -> None:
    from corrbench.engine.calibrate import calibrate as run_calibration
    from corrbench.engine.runs import default_suite
    from corrbench.errors import check_range

    check_range("--fit-images", fit_images, low=1)
    suite = suite or default_suite(checkpoint, "c")
    with progress_bars() as progress:
        result = run_calibration(checkpoint, suite, data_root=data_root, source=source, seed=seed,
                                 corruptions=split_names(corruptions),
                                 severities=split_ints(severities, "--severities"), batch_size=batch_size,
                                 device=device, fit_images=fit_images, results_dir=results, progress=progress)
    rows = result.rows
    before = rows[rows["temperature"] == 1.0]
    after = rows[rows["temperature"] != 1.0] if result.temperature != 1.0 else before
    console.print(severity_table(before, f"{suite} ECE % before temperature scaling", metric="ece"))
    console.print(severity_table(after, f"{suite} ECE % after (T = {result.temperature:.3f})", metric="ece"))
    console.print(summary_table(result.summary, "calibration summary (benchmark corruptions)"))
    where = "the run's held-out split" if result.fit_on_holdout else \
        "training images the model was trained on (train with --holdout N for a true held-out split)"
    console.print(f"temperature {result.temperature:.4f} fitted on {result.fit_images} {where}", highlight=False, soft_wrap=True)
    console.print(f"results: {result.path}", highlight=False, soft_wrap=True)
    for path in result.plots:
        console.print(f"reliability diagram: {path}", highlight=False, soft_wrap=True)
