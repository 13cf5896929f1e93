"""`corrbench runs`."""
from __future__ import annotations

from pathlib import Path

import typer

from corrbench.cli.common import console

HELP = """List the run folders: status (complete / interrupted at epoch k / failed with NaN), method, arch,
dataset, seed, epochs done, and the best and last clean test error (logged with `train --val-every K`).

Example: corrbench runs --runs-dir runs
"""


def runs(runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Folder holding the run folders.")) -> None:
    from corrbench.engine.run_listing import list_runs
    from corrbench.errors import MissingDataError
    from corrbench.report.render import Table, write_table

    if not runs_dir.is_dir():
        raise MissingDataError(f"no runs folder {runs_dir}; train with `corrbench train` or pass --runs-dir")
    listing = list_runs(runs_dir)
    if listing.empty:
        console.print(f"no runs in {runs_dir}", highlight=False)
        return
    rows = [[r.run_id, r.status, r.method, r.arch, r.dataset, "—" if r.seed is None else int(r.seed), r.epochs,
             100 * r.best_val_error, 100 * r.last_val_error] for r in listing.itertuples()]
    write_table(Table(title=f"runs in {runs_dir}", columns=["run", "status", "method", "arch", "dataset", "seed",
                                                             "epochs", "best clean err %", "last clean err %"],
                      rows=rows, row_header=5,
                      caption="clean error: the val_error of train_log.parquet (train --val-every K); — when not logged."),
                "terminal", None, console)
