"""`corrbench calibrate`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli import model_options as mo
from corrbench.cli.common import console, progress_bars
from corrbench.cli.display import severity_table, summary_table

HELP = """Calibration under corruption of a run (--checkpoint) or any model (--model, as in `eval`): ECE, RMS (both schemes), max calibration error, NLL per corruption ×
severity, before and after temperature scaling fitted on clean training images; reliability diagrams as PNG.

Example: corrbench calibrate --checkpoint runs/<run_id> --suite mnist5k-c
"""


def calibrate(
    checkpoint: Optional[Path] = mo.CHECKPOINT,
    model: Optional[str] = mo.MODEL,
    suite: Optional[str] = typer.Option(None, help="Suite, e.g. cifar10-c [default: <run's dataset>-c]."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="The clean set of suites that need one: --suite c, cfolder:PATH, cnpy:PATH (a registered name, npy:IMAGES,LABELS or folder:PATH) [default: the run's]."),
    source: str = typer.Option("auto", help="auto (official files if present), files, or generated."),
    seed: int = typer.Option(0, help="Seed of the generated suite (--source generated)."),
    corruptions: Optional[str] = typer.Option(None, help="Comma-separated subset of corruptions."),
    severities: Optional[str] = typer.Option(None, help="Comma-separated subset of severities (1-5)."),
    fit_images: int = typer.Option(5000, "--fit-images", help="Training images for the temperature fit when the run kept no --holdout."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Evaluation batch size."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder for the results file and plots/."),
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
    from corrbench.cli.common import check_evaluation_options, check_positive, corruption_names, severity_list

    # Everything the command line says is checked before torch loads and before any work.
    chosen_corruptions, chosen_severities = corruption_names(corruptions, suite), severity_list(severities)
    check_positive("--fit-images", fit_images)
    check_evaluation_options(batch_size, source, device, results)
    from corrbench.engine.calibrate import calibrate as run_calibration
    from corrbench.report.plots import calibration_diagrams

    target, options = mo.model_and_options(checkpoint, model, weights=weights, model_dir=model_dir, mean=mean,
                                           std=std, input_size=input_size, interpolation=interpolation,
                                           crop_pct=crop_pct, class_map=class_map, label=label, precision=precision)
    suite = mo.suite_or_default(suite, checkpoint, "c")
    with progress_bars() as progress:
        result = run_calibration(target, suite, dataset=dataset, options=options, data_root=data_root, source=source, seed=seed,
                                 corruptions=chosen_corruptions, severities=chosen_severities, batch_size=batch_size,
                                 device=device, fit_images=fit_images, results_dir=results, progress=progress)
    rows = result.rows
    before = rows[rows["temperature"] == 1.0]
    after = rows[rows["temperature"] != 1.0] if result.temperature != 1.0 else before
    console.print(severity_table(before, f"{suite} ECE % before temperature scaling", metric="ece"))
    console.print(severity_table(after, f"{suite} ECE % after (T = {result.temperature:.3f})", metric="ece"))
    console.print(summary_table(result.summary, "calibration summary (benchmark corruptions)"))
    console.print(f"temperature {result.temperature:.4f} fitted on {result.fit_images} {result.fit_split}",
                  highlight=False, soft_wrap=True)
    console.print(f"results: {result.path}", highlight=False, soft_wrap=True)
    plots = calibration_diagrams(result.reliability, results / "plots", label=result.label, suite=suite,
                                 temperature=result.temperature)
    for path in plots:
        console.print(f"reliability diagram: {path}", highlight=False, soft_wrap=True)
