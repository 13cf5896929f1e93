"""`corrbench data make-mnistc`: write an MNIST-C suite in the official layout."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from corrbench.cli.common import console

HELP = """Write MNIST-C (15 corruptions, one fixed severity each) for a 28×28 digit test split, in the official
layout: <out>/<corruption>/test_images.npy (N, 28, 28, 1) uint8 and test_labels.npy. `eval --suite <dataset>-mnistc
--source generated --seed S` sees exactly these images (same seed, same device type). --out appears complete or not
at all.

Example: corrbench data make-mnistc --dataset mnist5k --out data/mnist5k_c
"""


def make_mnistc_command(
    dataset: str = typer.Option(..., "--dataset", help="mnist or mnist5k."),
    out: Path = typer.Option(..., "--out", help="The MNIST-C folder to write; must be empty or absent."),
    seed: int = typer.Option(0, help="Generator seed (the --seed of `eval --source generated`)."),
    corruptions: Optional[str] = typer.Option(None, help="Comma-separated subset of the 15 corruptions [default: all]."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N (bytes match `eval` on the same device type)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    from corrbench.cli.common import split_names
    from corrbench.data.mnistc import make_mnistc
    from corrbench.device import resolve_device
    result = make_mnistc(dataset, out, seed=seed, corruptions=split_names(corruptions), data_root=data_root,
                         device=resolve_device(device), overwrite=overwrite)
    console.print(f"wrote {len(result.corruptions)} corruptions, {result.images:,} digits to {result.out} "
                  f"in {result.seconds:.1f} s (seed {seed})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `make-mnistc` to the `corrbench data` app."""
    app.command("make-mnistc", help=HELP)(make_mnistc_command)
