"""`corrbench run`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from corrbench.cli.common import console, progress_bars

HELP = """Run a recipe: train what is missing (resuming interrupted runs), evaluate, and print the recipe's table
with the published numbers beside corrbench's. Finished jobs are skipped.

Bundled recipes are run by name (corrbench/bundled_recipes/NAME.toml); any other recipe by its TOML path.

Example: corrbench run magn_table1 --set epochs=1 --set dataset=mnist5k --set arch=mnist_cnn --dry-run
"""


def run(
    recipe: Path = typer.Argument(..., help="A bundled recipe name (quickstart, magn_table1, …) or a recipe TOML path."),
    set_: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override: dataset/arch/method/augment/seed=…, eval.KEY=…, or a training setting."),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="KEY=VALUE", help="Only jobs with KEY=VALUE (dataset, arch, method, augment, seed)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the jobs, their status and cost; run nothing."),
    launcher: str = typer.Option("local", help="local (sequential) or submitit (Slurm job arrays)."),
    cluster: Optional[str] = typer.Option(None, help="submitit cluster: slurm, local or debug [default: auto]."),
    partition: Optional[str] = typer.Option(None, help="Slurm partition (submitit)."),
    gpus_per_node: Optional[int] = typer.Option(None, "--gpus-per-node", help="GPUs per job (submitit); one task (DDP process) per GPU."),
    tasks_per_node: Optional[int] = typer.Option(None, "--tasks-per-node", help="Processes per job (submitit) [default: --gpus-per-node, else 1]; more than one train as one DDP run (gloo on CPU)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="With --launcher submitit: return once the jobs are submitted; follow them with --status."),
    show_status: bool = typer.Option(False, "--status", help="Show every job's state (run folders, results, submitit jobs and logs); run nothing."),
    timeout_min: int = typer.Option(24 * 60, "--timeout-min", help="Job time limit in minutes (submitit)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders go."),
    results: Path = typer.Option(Path("results"), "--results", help="Results folder."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Data folder [default: $CORRBENCH_DATA or ./data]."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    format: str = typer.Option("terminal", "--format", help="Table format: terminal, md, csv, latex, html."),
) -> None:
    from corrbench.cli.common import check_positive, check_results_folder
    from corrbench.names import LAUNCHERS, REPORT_FORMATS, check_name
    from corrbench.recipes import check_recipe, load_recipe
    from corrbench.writable import RUNS_FREE_BYTES, check_writable_folder

    # The recipe, the overrides and the output folders are checked before torch loads and before any work.
    check_name("format", format, REPORT_FORMATS)
    check_name("launcher", launcher, LAUNCHERS)
    check_positive("--gpus-per-node", gpus_per_node)
    check_positive("--tasks-per-node", tasks_per_node)
    if no_wait and launcher != "submitit":
        from corrbench.errors import InvalidValueError
        raise InvalidValueError("--no-wait submits jobs and returns: it needs --launcher submitit")
    check_positive("--timeout-min", timeout_min)
    check_recipe(load_recipe(recipe), set_ or [], only or [], data_root=str(data_root) if data_root else None,
                 device=device)
    if not (dry_run or show_status):
        check_writable_folder(runs_dir, "--runs-dir", free_bytes=RUNS_FREE_BYTES)
        check_results_folder(results)
    from corrbench.cli.report import print_recipe_table
    from corrbench.engine.run import execute, plan

    run_plan = plan(recipe, assignments=set_ or [], only=only or [], runs_dir=runs_dir, results_dir=results,
                    data_root=str(data_root) if data_root else None, device=device)
    from rich.markup import escape
    submitted = {}
    if show_status:
        from corrbench.engine.run import status
        submitted = status(run_plan, runs_dir)
    table = Table(title=f"{run_plan.recipe.name}: {len(run_plan.jobs)} jobs, {len(run_plan.pending)} to run")
    for column in ("job", "run", "what", "status") + (("submitit job", "state", "log") if show_status else ()):
        table.add_column(column)
    from corrbench.engine.run import job_name
    for job in run_plan.jobs:
        status_text = {"done": "[green]done[/]", "resume": "[yellow]resume[/]", "todo": "todo",
                       "stale": "[yellow]stale: checkpoint changed[/]",
                       "needs weights": f"[yellow]needs weights:[/] {escape(job.note)}"
                       }[job.status]
        cells = [job.kind, escape(job.job.run_id), escape(job.work), status_text]
        if show_status:
            state = submitted.get(job_name(job))
            cells += [state.job_id, escape(state.state), str(state.log)] if state is not None else ["", "", ""]
        table.add_row(*cells)
    console.print(table)
    if run_plan.recipe.cost:
        console.print(f"work of the full recipe: {run_plan.recipe.cost}", highlight=False, soft_wrap=True)
    if dry_run or show_status:
        return
    options = {"cluster": cluster, "timeout_min": timeout_min}
    if partition:
        options["slurm_partition"] = partition
    if gpus_per_node is not None:
        options["gpus_per_node"] = gpus_per_node
    if tasks_per_node is not None:
        options["tasks_per_node"] = tasks_per_node
    wait = not (no_wait and launcher == "submitit")
    with progress_bars() as progress:
        ran = execute(run_plan, runs_dir=runs_dir, results_dir=results, data_root=str(data_root) if data_root else None,
                      device=device, launcher=launcher, submitit_options=options, progress=progress, wait=wait)
    if not wait:
        jobs = sorted({j.status.removeprefix("submitted: ") for j in ran})
        console.print(f"submitted {len(jobs)} submitit job{'s' if len(jobs) != 1 else ''} ({', '.join(jobs)}) for "
                      f"{len(ran)} recipe jobs; follow them with `corrbench run {recipe} --status`", highlight=False,
                      soft_wrap=True)
        return
    print_recipe_table(run_plan.recipe, results, format, assignments=set_ or [], runs_dir=runs_dir)
