"""`corrbench data download`: the published -C / -P sets (and clean CIFAR / Tiny ImageNet) into the data root."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from corrbench.cli.common import console, err_console

HELP = """Download published sets into the data root: resumable, checked against the published checksums, unpacked atomically.

Names: cifar10-c, cifar100-c, cifar10-p, cifar100-p, tinyimagenet-c, imagenet-c, mnist-mnistc, and the clean cifar10, cifar100, tinyimagenet (without a name: the list, with what is already there). Archives travel through <data root>/downloads/; a cut connection resumes where it stopped (run the command again). Without network, put the archive in that folder by hand and run the command again: it is checked and unpacked. $CORRBENCH_DOWNLOAD_MIRROR (or --mirror) replaces the sources by <mirror>/<file name>.

Example: corrbench data download cifar10-c cifar10 --data-root ./data
"""


def download_command(
    names: Optional[List[str]] = typer.Argument(None, help="Sets to download, e.g. cifar10-c imagenet-c."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL serving the archives by file name [default: $CORRBENCH_DOWNLOAD_MIRROR, else the published sources]."),
    keep_archives: bool = typer.Option(False, "--keep-archives", help="Keep the verified archives in <data root>/downloads after unpacking."),
) -> None:
    from corrbench.data.download import download

    if not names:
        _print_catalog(data_root)
        return
    with download_progress() as progress:
        results = download(names, data_root, mirror=mirror, keep_archives=keep_archives, progress=progress)
    table = Table(title="data download")
    for column, justify in (("set", "left"), ("folder", "left"), ("status", "left"), ("archive", "left"),
                            ("MB", "right"), ("checked", "left")):
        table.add_column(column, justify=justify)
    unchecked = []
    for result in results:
        if not result.archives:
            table.add_row(result.name, str(result.folder), "[green]present[/]", "—", "", "")
        for fetched in result.archives:
            table.add_row(result.name, str(result.folder), "[green]downloaded[/]", fetched.file,
                          f"{fetched.bytes / 1e6:,.1f}", escape(fetched.checked))
            if fetched.checked.startswith("no "):
                unchecked.append((result, fetched))
    console.print(table)
    for result, fetched in unchecked:
        console.print(f"{fetched.file}: no published checksum is known; its sha256 is {fetched.sha256} — compare it "
                      f"with the source's listing, and check the folder with `corrbench data verify {result.folder}`",
                      highlight=False, soft_wrap=True)


def _print_catalog(data_root: Optional[Path]) -> None:
    from corrbench.data.datasets import resolve_data_root
    from corrbench.data.download import CATALOG, installed

    root = resolve_data_root(data_root)
    table = Table(title=f"downloadable sets (data root: {root})")
    for column in ("name", "folder", "archives", "source", "status"):
        table.add_column(column)
    for spec in CATALOG.values():
        there = sum(installed(archive, root) for archive in spec.archives)
        status = ("[green]present[/]" if there == len(spec.archives) else
                  f"[yellow]{there} of {len(spec.archives)} archives[/]" if there else "missing")
        files = ", ".join(archive.file for archive in spec.archives)
        table.add_row(spec.name, spec.folder, files, spec.source, status)
    console.print(table)


class LineProgress:
    """Progress as plain log lines on stderr (for logs and pipes): a task's start, every 10 %, its end."""

    def __init__(self) -> None:
        self._tasks: dict[int, dict[str, Any]] = {}

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total, "completed": 0.0, "reported": -1,
                                "started": time.monotonic()}
        self._report(task_id)
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self._tasks[task_id]["completed"] += advance
        self._report(task_id)

    def update(self, task_id: int, **fields: Any) -> None:
        task = self._tasks[task_id]
        for key in ("description", "total", "completed"):
            if fields.get(key) is not None:
                task[key] = fields[key]
        self._report(task_id)

    def reset(self, task_id: int, **fields: Any) -> None:
        self._tasks[task_id].update(completed=0.0, reported=-1)
        self.update(task_id, **fields)

    def _report(self, task_id: int) -> None:
        task = self._tasks[task_id]
        total, done = task["total"], task["completed"]
        step = int(10 * done / total) if total else (0 if done == 0 else task["reported"])
        if step <= task["reported"]:
            return
        task["reported"] = step
        size = f"{done / 1e6:,.1f} / {total / 1e6:,.1f} MB" if total else f"{done / 1e6:,.1f} MB"
        seconds = time.monotonic() - task["started"]
        print(f"{task['description']}: {10 * step}% ({size}, {seconds:.0f} s)", file=sys.stderr, flush=True)


@contextmanager
def download_progress() -> Iterator[Any]:
    """Byte-counting rich bars on a terminal, plain lines otherwise."""
    if not err_console.is_terminal:
        yield LineProgress()
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), console=err_console, transient=True)
    with progress:
        yield progress


def register(app: typer.Typer) -> None:
    """Add `download` to the `corrbench data` group."""
    app.command("download", help=HELP)(download_command)
