"""`corrbench run`: execute a recipe's jobs — train what is missing, evaluate, render the table.

Finished work is never redone: a train job is done when its run folder holds a complete checkpoint
(the run id includes the config hash, so a changed setting is a new run), an interrupted one resumes
from its last epoch, and an eval job is done when the results folder already holds its
(kind, run, suite, source) rows. Launchers: `local` runs jobs one after the other in this process;
`submitit` submits them as job arrays (Slurm, or submitit's local executor), train jobs first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from corrbench.config import RunConfig
from corrbench.engine.checkpoint import CHECKPOINT_NAME, load_checkpoint
from corrbench.progress import ProgressLike, null_progress
from corrbench.errors import InvalidValueError, MissingDataError
from corrbench.recipes import EvalJob, Recipe, TrainJob, expand, load_recipe

LAUNCHERS = ("local", "submitit")


@dataclass
class PlannedJob:
    job: TrainJob | EvalJob
    status: str            # 'done' | 'resume' | 'todo'
    work: str              # what it costs, in image passes

    @property
    def kind(self) -> str:
        return "train" if isinstance(self.job, TrainJob) else self.job.kind


@dataclass
class Plan:
    recipe: Recipe
    jobs: list[PlannedJob]

    @property
    def pending(self) -> list[PlannedJob]:
        return [j for j in self.jobs if j.status != "done"]


def train_status(job: TrainJob, runs_dir: Path) -> str:
    checkpoint = runs_dir / job.run_id / CHECKPOINT_NAME
    if not checkpoint.is_file():
        return "todo"
    return "done" if load_checkpoint(checkpoint).get("complete") else "resume"


def finished_evaluations(results_dir: Path) -> set[tuple[str, str, str, str]]:
    """(kind, run_id, suite, source) of every results file already written."""
    if not results_dir.is_dir():
        return set()
    from corrbench.results import load_results
    try:
        rows = load_results(results_dir)
    except MissingDataError:
        return set()
    return set(zip(rows["kind"], rows["run_id"], rows["suite"], rows["source"]))


def _eval_done(job: EvalJob, finished: set) -> bool:
    source = dict(job.options).get("source", "auto")
    return any(k == job.kind and r == job.run_id and s == job.suite and (source == "auto" or src == source)
               for k, r, s, src in finished)


def _train_work(job: TrainJob) -> str:
    from corrbench.data.datasets import dataset_info
    config = job.config.resolved()
    return f"{config.epochs} epochs × {dataset_info(config.dataset).name} train split"


def plan(recipe_path: Path | str, *, assignments: Sequence[str] = (), only: Sequence[str] = (),
         runs_dir: Path | str = "runs", results_dir: Path | str = "results", data_root: str | None = None,
         device: str = "auto") -> Plan:
    recipe = load_recipe(recipe_path)
    train_jobs, eval_jobs = expand(recipe, assignments, only, data_root=data_root, device=device)
    runs_dir, results_dir = Path(runs_dir), Path(results_dir)
    finished = finished_evaluations(results_dir)
    jobs = [PlannedJob(job, train_status(job, runs_dir), _train_work(job)) for job in train_jobs]
    for job in eval_jobs:
        jobs.append(PlannedJob(job, "done" if _eval_done(job, finished) else "todo",
                               f"{job.suite}, {dict(job.options).get('source', 'auto')}"))
    return Plan(recipe, jobs)


def execute_train(config: dict[str, Any], runs_dir: str) -> str:
    """One train job (module-level so submitit can pickle it)."""
    from corrbench.engine.train import train
    result = train(RunConfig.from_json(config), runs_dir=runs_dir, resume=True)
    return str(result.run_dir)


def execute_eval(kind: str, run_dir: str, suite: str, options: dict[str, Any], results_dir: str,
                 data_root: str | None, device: str) -> str:
    """One eval / flip-rate job (module-level so submitit can pickle it)."""
    if kind == "flip-rate":
        from corrbench.engine.flip_rate import flip_rate
        result = flip_rate(run_dir, suite, data_root=data_root, device=device, results_dir=results_dir)
        return str(result.path)
    from corrbench.engine.evaluate import evaluate
    result = evaluate(run_dir, suite, data_root=data_root, device=device, results_dir=results_dir,
                      source=options.get("source", "auto"), seed=int(options.get("seed", 0)),
                      corruptions=list(options["corruptions"]) if options.get("corruptions") else None,
                      severities=list(options["severities"]) if options.get("severities") else None)
    return str(result.path)


def execute(run_plan: Plan, *, runs_dir: Path | str = "runs", results_dir: Path | str = "results",
            data_root: str | None = None, device: str = "auto", launcher: str = "local",
            submitit_options: dict[str, Any] | None = None, progress: ProgressLike | None = None,
            on_job_done: Callable[[PlannedJob], None] | None = None) -> list[PlannedJob]:
    """Run the plan's pending jobs (train first); returns the jobs that ran."""
    if launcher not in LAUNCHERS:
        raise InvalidValueError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got '{launcher}'")
    progress = progress or null_progress()
    runs_dir, results_dir = str(runs_dir), str(results_dir)
    trains = [j for j in run_plan.pending if j.kind == "train"]
    evals = [j for j in run_plan.pending if j.kind != "train"]
    train_calls = [(execute_train, (j.job.config.to_json(), runs_dir)) for j in trains]
    eval_calls = [(execute_eval, (j.job.kind, str(Path(runs_dir) / j.job.run_id), j.job.suite, dict(j.job.options),
                                  results_dir, data_root, device)) for j in evals]
    task = progress.add_task("recipe jobs", total=len(trains) + len(evals))
    ran: list[PlannedJob] = []
    for jobs, calls in ((trains, train_calls), (evals, eval_calls)):
        if not calls:
            continue
        if launcher == "local":
            for job, (function, args) in zip(jobs, calls):
                function(*args)
                job.status = "done"
                ran.append(job)
                progress.advance(task)
                if on_job_done is not None:
                    on_job_done(job)
        else:
            _submit_array(calls, Path(runs_dir) / "submitit", submitit_options or {})
            for job in jobs:
                job.status = "done"
                ran.append(job)
                progress.advance(task)
                if on_job_done is not None:
                    on_job_done(job)
    return ran


def _submit_array(calls: list[tuple[Callable, tuple]], folder: Path, options: dict[str, Any]) -> list[Any]:
    """Submit calls of one function as a submitit job array and wait for all of them."""
    try:
        import submitit
    except ImportError:
        raise InvalidValueError("--launcher submitit needs the submitit package: pip install 'corrbench[slurm]'") from None
    options = dict(options)
    cluster = options.pop("cluster", None)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    if options:
        executor.update_parameters(**options)
    function = calls[0][0]
    columns = list(zip(*(args for _, args in calls)))
    jobs = executor.map_array(function, *columns)
    return [job.result() for job in jobs]
