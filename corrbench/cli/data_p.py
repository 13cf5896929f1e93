"""`corrbench data make-p`: write generated -P suites in the CIFAR-10-P file layout."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from corrbench.cli.common import console, progress_bars, split_names

HELP = """Write -P perturbation sequences of a 32-px dataset's test split as CIFAR-10-P files:
<out>/<perturbation>.npy, uint8 (N, T, 32, 32, 3), noise of difficulty d > 1 as <name>_<d>.npy.

The bytes are those `corrbench flip-rate --source generated --seed S` evaluates.

Example: corrbench data make-p --dataset mnist5k --out ./data/MNIST5K-P --perturbations rotate,tilt
"""


def make_p(
    dataset: str = typer.Option(..., "--dataset", help="A 32-px dataset whose test split is perturbed, e.g. cifar10 or mnist5k."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [default: <data root>/<the dataset's -P folder>, e.g. CIFAR-10-P]."),
    perturbations: Optional[str] = typer.Option(None, help="Comma-separated subset [default: all 14, test and validation]."),
    difficulty: int = typer.Option(1, help="Noise level 1-3 of the noise sequences (files <name>_<d>.npy for d > 1)."),
    seed: int = typer.Option(0, help="Seed of the random draws (noise, snow and spatter layers)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N test images (videos)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N (bytes match `flip-rate` on the same device type)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing <perturbation>.npy files."),
) -> None:
    """Write generated -P suites (CIFAR-10-P layout); the command's help is HELP."""
    from corrbench.data.datasets import resolve_data_root
    from corrbench.data.psuites import default_p_folder, write_p_suite
    from corrbench.device import resolve_device

    root = resolve_data_root(data_root)
    folder = out if out is not None else default_p_folder(dataset, root)
    with progress_bars() as progress:
        written = write_p_suite(dataset, folder, data_root=root, perturbations=split_names(perturbations),
                                difficulty=difficulty, seed=seed, limit=limit, device=resolve_device(device),
                                overwrite=overwrite, progress=progress)
    table = Table(title=f"{dataset} -P → {folder} (seed {seed})")
    for column, justify in (("file", "left"), ("videos", "right"), ("frames", "right"), ("MB", "right")):
        table.add_column(column, justify=justify)
    for path in written:
        videos = np.load(path, mmap_mode="r")
        table.add_row(path.name, f"{videos.shape[0]:,}", str(videos.shape[1]), f"{path.stat().st_size / 1e6:.1f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `make-p` to the `corrbench data` app."""
    app.command("make-p", help=HELP)(make_p)
