"""`corrbench run`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from corrbench.cli.common import console, progress_bars

HELP = """Run a recipe: train what is missing (resuming interrupted runs), evaluate, and print the recipe's table
with the published numbers beside corrbench's. Finished jobs are skipped.

Example: corrbench run recipes/magn_table1.toml --set epochs=1 --set dataset=mnist5k --set arch=mnist_cnn --dry-run
"""


def run(
    recipe: Path = typer.Argument(..., help="A recipe TOML (see recipes/)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override: dataset/arch/method/augment/seed=…, eval.KEY=…, or a training setting."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Only jobs with KEY=VALUE (dataset, arch, method, augment, seed)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs, their status and cost; run nothing."),
    launcher: str = typer.Option("local", help="local (sequential) or submitit (Slurm job arrays)."),
    cluster: Optional[str] = typer.Option(None, help="submitit cluster: slurm, local or debug [default: auto]."),
    partition: Optional[str] = typer.Option(None, help="Slurm partition (submitit)."),
    gpus_per_node: Optional[int] = typer.Option(None, "--gpus-per-node", help="GPUs per job (submitit)."),
    timeout_min: int = typer.Option(24 * 60, "--timeout-min", help="Job time limit in minutes (submitit)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
    results: Path = typer.Option(Path("results"), "--results", help="Results folder."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    format: str = typer.Option("terminal", "--format", help="Table format: terminal, md, csv, latex, html."),
) -> None:
    from corrbench.cli.report import print_recipe_table
    from corrbench.engine.run import execute, plan

    run_plan = plan(recipe, assignments=set_ or [], only=only or [], runs_dir=runs_dir, results_dir=results,
                    data_root=str(data_root) if data_root else None, device=device)
    table = Table(title=f"{run_plan.recipe.name}: {len(run_plan.jobs)} jobs, {len(run_plan.pending)} to run")
    for column in ("job", "run", "what", "status"):
        table.add_column(column)
    for job in run_plan.jobs:
        status = {"done": "[green]done[/]", "resume": "[yellow]resume[/]", "todo": "todo"}[job.status]
        table.add_row(job.kind, job.job.run_id, job.work, status)
    console.print(table)
    if run_plan.recipe.cost:
        console.print(f"work of the full recipe: {run_plan.recipe.cost}", highlight=False, soft_wrap=True)
    if dry_run:
        return
    options = {"cluster": cluster, "timeout_min": timeout_min}
    if partition:
        options["slurm_partition"] = partition
    if gpus_per_node is not None:
        options["gpus_per_node"] = gpus_per_node
    with progress_bars() as progress:
        execute(run_plan, runs_dir=runs_dir, results_dir=results, data_root=str(data_root) if data_root else None,
                device=device, launcher=launcher, submitit_options=options, progress=progress)
    print_recipe_table(run_plan.recipe, results, format)
