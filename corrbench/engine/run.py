"""`corrbench run`: execute a recipe's jobs — train what is missing, evaluate, render the table.

Finished work is never redone: a train job is done when its run folder holds a complete checkpoint
(the run id includes the config hash, so a changed setting is a new run), an interrupted one resumes
from its last epoch, and an eval job is done when the results folder already holds its
(kind, run, suite, source) rows for the corruptions and severities it asks for, measured on the run's
current checkpoint (same sha256) — rows of an older checkpoint make the job 'stale', and it runs again.
A recipe's `[[recipe.checkpoints]]` rows (baselines a paper took from public checkpoints) become eval jobs of
those model sources: only the paper's own method trains; a row whose weights file is missing is listed as
'needs weights' with where to put it, and the rest of the recipe runs.
Launchers: `local` runs jobs one after the other in this process; `submitit` submits one job per run
(Slurm, or submitit's local executor) with one task per GPU (corrbench.engine.launch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from corrbench.config import RunConfig
from corrbench.engine.checkpoint import CHECKPOINT_NAME, file_sha256, load_checkpoint
from corrbench.progress import ProgressLike, null_progress
from corrbench.errors import InvalidValueError, MissingDataError
from corrbench.recipes import EvalJob, Recipe, TrainJob, expand, load_recipe
from corrbench.results import CLEAN, COLUMNS, load_results

LAUNCHERS = ("local", "submitit")


@dataclass(frozen=True)
class CheckpointJob:
    """An eval job of a public checkpoint (a recipe's `[[recipe.checkpoints]]` row): evaluated, not trained."""

    method: str
    dataset: str
    arch: str
    model: str                 # a model source: torchvision:NAME, timm:NAME, …
    weights: str | None        # a torchvision enum name or a file (checkpoints/…)
    label: str | None
    origin: str
    suite: str
    options: tuple = field(default_factory=tuple)   # sorted (key, value) pairs, as EvalJob's
    kind: str = "eval"

    @property
    def run_id(self) -> str:   # what the plan shows in its run column
        return self.label or expected_model_source(self.model, self.weights)

    def weights_file(self) -> Path | None:
        """Where the weights must be: the file the row names, or torch hub's cache file of torchvision enum
        weights; None when the source finds its own (timm / hf-hub names)."""
        if not self.weights:
            return None
        if expected_model_source(self.model, self.weights) == self.model:   # a file
            return Path(self.weights)
        name = self.model.partition(":")[2]
        try:
            import torch
            import torchvision
            url = torchvision.models.get_model_weights(name)[self.weights].url
        except Exception:   # an unknown name: opening the model says which
            return None
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def expected_model_source(model: str, weights: str | None) -> str:
    """The model_source an evaluation of `model` with `weights` records (engine/sources.py): torchvision
    enum weights are part of it (`torchvision:resnet50.IMAGENET1K_V1`); files are identified by their sha256."""
    if weights and model.startswith("torchvision:") and "/" not in weights and not weights.endswith(
            (".pt", ".pth", ".tar", ".bin", ".safetensors")):
        return f"{model}.{weights}"
    return model


@dataclass
class PlannedJob:
    job: TrainJob | EvalJob | CheckpointJob
    status: str            # 'done' | 'resume' | 'todo' | 'stale' (results of an older checkpoint) | 'needs weights'
    work: str              # what it costs, in image passes
    note: str = ""         # for 'needs weights': where to put them (and whose weights they are)

    @property
    def kind(self) -> str:
        return "train" if isinstance(self.job, TrainJob) else self.job.kind


@dataclass
class Plan:
    recipe: Recipe
    jobs: list[PlannedJob]

    @property
    def pending(self) -> list[PlannedJob]:
        return [j for j in self.jobs if j.status not in ("done", "needs weights")]


def train_status(job: TrainJob, runs_dir: Path) -> str:
    checkpoint = runs_dir / job.run_id / CHECKPOINT_NAME
    if not checkpoint.is_file():
        return "todo"
    return "done" if load_checkpoint(checkpoint).get("complete") else "resume"


def finished_evaluations(results_dir: Path) -> pd.DataFrame:
    """The rows already in the results folder (merged: newest per key); empty when there are none."""
    if not results_dir.is_dir():
        return pd.DataFrame(columns=COLUMNS)
    try:
        return load_results(results_dir)
    except MissingDataError:
        return pd.DataFrame(columns=COLUMNS)


def eval_status(job: EvalJob, finished: pd.DataFrame, checkpoint_sha256: str | None) -> str:
    """'done' when the results hold the job's rows measured on the checkpoint with this sha256 (None: the
    run is not trained to the end yet), 'stale' when they come from other weights, else 'todo'."""
    options = dict(job.options)
    source = options.get("source", "auto")
    mine = finished[(finished["kind"] == job.kind) & (finished["run_id"] == job.run_id)
                    & (finished["suite"] == job.suite)]
    if source != "auto":
        mine = mine[mine["source"] == source]
    corrupted = mine[mine["corruption"] != CLEAN]
    wanted_corruptions = set(options.get("corruptions") or ())
    wanted_severities = {int(s) for s in options.get("severities") or ()}
    if (mine.empty or not wanted_corruptions <= set(corrupted["corruption"])
            or (job.kind != "flip-rate" and not wanted_severities <= set(corrupted["severity"].astype(int)))):
        return "todo"
    if checkpoint_sha256 is None:
        return "todo"
    if wanted_corruptions:
        mine = mine[mine["corruption"].isin(wanted_corruptions | {CLEAN})]
    return "done" if (mine["weights_sha256"].astype(object) == checkpoint_sha256).all() else "stale"


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
    trained = {j.job.run_id: j.status == "done" for j in jobs}
    digests: dict[str, str | None] = {}
    for job in eval_jobs:
        if job.run_id not in digests:
            checkpoint = runs_dir / job.run_id / CHECKPOINT_NAME
            if job.run_id in trained:
                complete = trained[job.run_id]
            else:
                complete = checkpoint.is_file() and bool(load_checkpoint(checkpoint).get("complete"))
            digests[job.run_id] = file_sha256(checkpoint) if complete else None
        jobs.append(PlannedJob(job, eval_status(job, finished, digests[job.run_id]),
                               f"{job.suite}, {dict(job.options).get('source', 'auto')}"))
    for job in checkpoint_jobs(recipe, assignments, only, data_root=data_root, device=device):
        status, note = checkpoint_status(job, finished)
        jobs.append(PlannedJob(job, status, f"{job.suite}, {dict(job.options).get('source', 'auto')}; "
                                            f"{expected_model_source(job.model, job.weights)}", note))
    return Plan(recipe, jobs)


def checkpoint_jobs(recipe: Recipe, assignments: Sequence[str] = (), only: Sequence[str] = (), *,
                    data_root: str | None = None, device: str = "auto") -> list[CheckpointJob]:
    """The eval jobs of the recipe's `[[recipe.checkpoints]]` rows, for the datasets the recipe trains (after
    `--set`) and the rows `--only` keeps (dataset, arch, method), on every suite of `[eval]`."""
    from corrbench.recipes import SUITE_KINDS, check_recipe, tomllib
    if recipe.path is None or not Path(recipe.path).is_file():
        return []
    rows = tomllib.loads(Path(recipe.path).read_text()).get("recipe", {}).get("checkpoints", [])
    if not rows:
        return []
    recipe, _ = check_recipe(recipe, assignments, (), data_root=data_root, device=device)
    filters: dict[str, set[str]] = {}
    for text in only:
        key, _, values = text.partition("=")
        filters.setdefault(key.strip(), set()).update(v.strip() for v in values.split(","))
    jobs = []
    for row in rows:
        values = {key: str(row.get(key, "")) for key in ("dataset", "arch", "method")}
        if row.get("dataset") not in recipe.datasets or any(values.get(k, None) not in allowed
                                                            for k, allowed in filters.items() if k in values):
            continue
        for suite in recipe.eval["suites"]:
            name = f"{row['dataset']}-{suite}" if suite in SUITE_KINDS else suite
            if name.endswith("-p"):
                continue   # flip-rate of public checkpoints: `corrbench flip-rate --model …` by hand
            options = {"source": recipe.eval.get("source", "auto")}
            for key in ("corruptions", "severities", "seed"):
                if key in recipe.eval:
                    value = recipe.eval[key]
                    options[key] = tuple(value) if isinstance(value, list) else value
            jobs.append(CheckpointJob(method=row["method"], dataset=row["dataset"], arch=row["arch"],
                                      model=row["model"], weights=row.get("weights"), label=row.get("label"),
                                      origin=row.get("origin", ""), suite=name, options=tuple(sorted(options.items()))))
    return jobs


def checkpoint_status(job: CheckpointJob, finished: pd.DataFrame) -> tuple[str, str]:
    """('needs weights', where to put them) when the weights are missing, else ('done' | 'todo' | 'stale', '')
    from the results of that model source (and label) on the job's suite."""
    where = job.weights_file()
    if where is not None and not where.is_file():
        return "needs weights", f"{where}" + (f" ({job.origin})" if job.origin else "")
    options = dict(job.options)
    mine = finished[(finished["kind"] == "eval") & (finished["suite"] == job.suite)
                    & (finished["model_source"] == expected_model_source(job.model, job.weights))]
    if job.label:
        mine = mine[mine["label"] == job.label]
    if options.get("source", "auto") != "auto":
        mine = mine[mine["source"] == options["source"]]
    corrupted = mine[mine["corruption"] != CLEAN]
    if (mine.empty or not set(options.get("corruptions") or ()) <= set(corrupted["corruption"])
            or not {int(s) for s in options.get("severities") or ()} <= set(corrupted["severity"].astype(int))):
        return "todo", ""
    if where is not None and not (mine["weights_sha256"].astype(object) == file_sha256(where)).all():
        return "stale", ""
    return "done", ""


def execute_train(config: dict[str, Any], runs_dir: str) -> str:
    """One train job (module-level so submitit can pickle it); returns a log line saying what it did."""
    from corrbench.engine.train import train
    result = train(RunConfig.from_json(config), runs_dir=runs_dir, resume=True)
    resumed = f", resumed from epoch {result.resumed_from_epoch}" if result.resumed_from_epoch else ""
    ranks = len(result.rank_digests)
    same = "identical on every rank" if len(set(result.rank_digests)) == 1 else "DIFFER between ranks"
    return (f"trained {result.run_dir}: {result.epochs_completed} epochs{resumed}; {ranks} process"
            f"{'es' if ranks > 1 else ''}, weights {same} (sha256 {result.weights_digest[:16]})")


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


def execute_checkpoint_eval(model: str, weights: str | None, label: str | None, suite: str,
                            options: dict[str, Any], results_dir: str, data_root: str | None, device: str) -> str:
    """One eval job of a public checkpoint (module-level so submitit can pickle it)."""
    from corrbench.engine.evaluate import evaluate
    from corrbench.engine.sources import SourceOptions
    result = evaluate(model, suite, options=SourceOptions(weights=weights, label=label), data_root=data_root,
                      device=device, results_dir=results_dir, source=options.get("source", "auto"),
                      seed=int(options.get("seed", 0)),
                      corruptions=list(options["corruptions"]) if options.get("corruptions") else None,
                      severities=list(options["severities"]) if options.get("severities") else None)
    return str(result.path)


def job_name(job: PlannedJob) -> str:
    """A job's name in submission records and `--status`: `train RUN`, `eval RUN SUITE`."""
    return f"train {job.job.run_id}" if job.kind == "train" else f"{job.kind} {job.job.run_id} {job.job.suite}"


def _call(job: PlannedJob, runs_dir: str, results_dir: str, data_root: str | None,
          device: str) -> tuple[Callable, tuple]:
    """The module-level function and arguments that do one job (picklable for submitit)."""
    if job.kind == "train":
        return execute_train, (job.job.config.to_json(), runs_dir)
    if isinstance(job.job, CheckpointJob):
        return execute_checkpoint_eval, (job.job.model, job.job.weights, job.job.label, job.job.suite,
                                         dict(job.job.options), results_dir, data_root, device)
    return execute_eval, (job.job.kind, str(Path(runs_dir) / job.job.run_id), job.job.suite, dict(job.job.options),
                          results_dir, data_root, device)


def execute(run_plan: Plan, *, runs_dir: Path | str = "runs", results_dir: Path | str = "results",
            data_root: str | None = None, device: str = "auto", launcher: str = "local",
            submitit_options: dict[str, Any] | None = None, progress: ProgressLike | None = None,
            on_job_done: Callable[[PlannedJob], None] | None = None, wait: bool = True) -> list[PlannedJob]:
    """Run the plan's pending jobs (train first); returns the jobs that ran (or were submitted: `wait=False`).

    `submitit`: one job per training run (train, then that run's evaluations) and per public checkpoint,
    each with `tasks_per_node` tasks (default: one per GPU) forming one DDP group (corrbench.engine.launch);
    without `wait` it returns once submitted (`corrbench run RECIPE --status` follows them)."""
    if launcher not in LAUNCHERS:
        raise InvalidValueError(f"--launcher must be one of {', '.join(LAUNCHERS)}, got '{launcher}'")
    progress = progress or null_progress()
    runs_dir, results_dir = str(runs_dir), str(results_dir)
    pending = [j for j in run_plan.pending if j.kind == "train"] + [j for j in run_plan.pending if j.kind != "train"]
    task = progress.add_task("recipe jobs", total=len(pending), log="each")   # plain log: a line per job done
    ran: list[PlannedJob] = []

    def finished(job: PlannedJob) -> None:
        job.status = "done"
        ran.append(job)
        progress.update(task, job=f"{job.kind} {job.job.run_id}")
        progress.advance(task)
        if on_job_done is not None:
            on_job_done(job)

    if launcher == "local":
        for job in pending:
            function, args = _call(job, runs_dir, results_dir, data_root, device)
            function(*args)
            finished(job)
        return ran
    from corrbench.engine import launch
    groups: dict[str, list[PlannedJob]] = {}   # a run's training and evaluations share one job, in order
    for job in pending:
        key = f"checkpoint {job.job.run_id} {job.job.suite}" if isinstance(job.job, CheckpointJob) else job.job.run_id
        groups.setdefault(key, []).append(job)
    batches = list(groups.values())
    tasks = [([job_name(j) for j in jobs], [_call(j, runs_dir, results_dir, data_root, device) for j in jobs])
             for jobs in batches]
    if not tasks:
        return ran
    submitted = launch.submit(tasks, folder=Path(runs_dir) / "submitit", options=dict(submitit_options or {}),
                              recipe=run_plan.recipe.name)
    if not wait:
        for jobs, job in zip(batches, submitted):
            for planned in jobs:
                planned.status = f"submitted: {job.job_id}"
                ran.append(planned)
        return ran
    launch.wait(submitted, [names for names, _ in tasks], lambda index: [finished(j) for j in batches[index]])
    return ran


def status(run_plan: Plan, runs_dir: Path | str = "runs") -> dict[str, "object"]:
    """Per job name the state of its newest submitit job (corrbench.engine.launch.JobState), if submitted."""
    from corrbench.engine.launch import job_states
    states = job_states(Path(runs_dir) / "submitit", run_plan.recipe.name)
    return {job_name(j): states[job_name(j)] for j in run_plan.jobs if job_name(j) in states}
