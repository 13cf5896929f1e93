"""`corrbench run --launcher submitit`: one submitit job per training run (its training, then its evaluations)
and per public checkpoint, one task per GPU in each job.

Every task of a job runs `RecipeTask`: with more than one task it exports torch.distributed's environment from
submitit's (`TorchDistributedEnvironment`), so training is one DDP run over the job's GPUs and evaluation is
sharded over them (corrbench.shards). On preemption or timeout submitit calls `RecipeTask.checkpoint`, which
requeues the same task: training resumes from the run's last checkpoint (the run folder is the state).
Submissions are recorded in `<runs>/submitit/submissions.jsonl`, so `corrbench run RECIPE --status` can show
each job's state later, from another shell, from the run folders, results and submitit's own files.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from corrbench.errors import InvalidValueError, UserError

SUBMISSIONS = "submissions.jsonl"


class JobFailedError(UserError):
    """A submitted job ended with an error (its log says why)."""


@dataclass
class RecipeTask:
    """What every task of one submitit job runs: `steps` ((function, args) of corrbench.engine.run) in order."""

    steps: list[tuple[Callable, tuple]]
    distributed: bool

    def __call__(self) -> list[str]:
        if self.distributed:   # RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT for env:// (gloo / NCCL)
            import submitit
            # CUDA_VISIBLE_DEVICES stays whole: each rank takes cuda:LOCAL_RANK (corrbench.device)
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        done = []
        for function, args in self.steps:
            done.append(function(*args))
            print(f"corrbench: {done[-1]}", flush=True)   # submitit's log of this task is the job's record
        return done

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Called by submitit on preemption / timeout: requeue the same steps; training resumes from the run
        folder's checkpoint (train(resume=True)) and finished evaluations are cheap to repeat."""
        import submitit
        return submitit.helpers.DelayedSubmission(RecipeTask(self.steps, self.distributed))


def make_executor(folder: Path, options: dict[str, Any]):
    try:
        import submitit
    except ImportError:
        raise InvalidValueError("--launcher submitit needs the submitit package: pip install 'corrbench[slurm]'") from None
    options = {k: v for k, v in options.items() if v is not None}
    cluster = options.pop("cluster", None)
    if "gpus_per_node" in options and "tasks_per_node" not in options:
        options["tasks_per_node"] = options["gpus_per_node"]   # one task (process) per GPU
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    if options:
        executor.update_parameters(**options)
    return executor


def submit(tasks: Sequence[tuple[list[str], list[tuple[Callable, tuple]]]], *, folder: Path, options: dict[str, Any],
           recipe: str) -> list[Any]:
    """Submit one job per (step names, steps) without waiting; records them for `--status`; returns the jobs."""
    executor = make_executor(folder, options)
    world = int(options.get("tasks_per_node") or options.get("gpus_per_node") or 1) * int(options.get("nodes") or 1)
    with executor.batch():
        jobs = [executor.submit(RecipeTask(list(steps), distributed=world > 1)) for _, steps in tasks]
    from corrbench.results import utc_timestamp
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / SUBMISSIONS, "a") as handle:   # one line per job, appended: earlier submissions stay
        for (names, _), job in zip(tasks, jobs):
            handle.write(json.dumps({"recipe": recipe, "job_id": str(job.job_id), "cluster": executor.cluster,
                                     "tasks": world, "steps": list(names), "submitted": utc_timestamp()}) + "\n")
    return jobs


def wait(jobs: Sequence[Any], names: Sequence[list[str]], on_done: Callable[[int], None]) -> None:
    """Wait for every job; a failed one is one line naming its log."""
    for index, job in enumerate(jobs):
        try:
            job.result()
        except Exception as error:   # submitit.core.utils.FailedJobError carries the task's traceback
            lines = [line for line in str(error).splitlines() if line.strip()]
            last = next((line.strip() for line in reversed(lines) if not line.startswith((" ", "\t", "-"))),
                        type(error).__name__)
            raise JobFailedError(f"submitit job {job.job_id} ({', '.join(names[index])}) failed: {last[:200]}; "
                                 f"log: {job.paths.stderr}") from None
        on_done(index)


@dataclass
class JobState:
    job_id: str
    state: str          # pending | running | requeued | finished | failed: … | a Slurm state
    log: Path


def job_states(folder: Path, recipe: str) -> dict[str, JobState]:
    """Step name → the state of the newest job that ran it, from the submission records and submitit's files
    (result pickle: finished / failed; a log: running, requeued after preemption; none yet: pending); on Slurm
    the scheduler's state is asked for too."""
    records = folder / SUBMISSIONS
    if not records.is_file():
        return {}
    states: dict[str, JobState] = {}
    for line in records.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:   # a line cut by a full disk: the others still count
            continue
        if record.get("recipe") != recipe:
            continue
        state = _state(folder, record)
        for name in record.get("steps", []):
            states[name] = state
    return states


def _state(folder: Path, record: dict) -> JobState:
    job_id = record["job_id"]
    result, log = folder / f"{job_id}_0_result.pkl", folder / f"{job_id}_0_log.err"
    if result.is_file():
        try:
            outcome, value = pickle.loads(result.read_bytes())
        except Exception:   # being written, or unreadable without the job's classes
            outcome, value = "unknown", ""
        if outcome == "success":
            return JobState(job_id, "finished", log)
        last = [line for line in str(value).splitlines() if line.strip()][-1:] or [""]
        return JobState(job_id, f"failed: {last[0].strip()[:160]}", log)
    if record.get("cluster") == "slurm":
        try:
            import submitit
            return JobState(job_id, submitit.SlurmJob(folder=folder, job_id=job_id).state.lower(), log)
        except Exception:   # sacct unavailable: fall back to the files
            pass
    if log.is_file():
        text = log.read_text(errors="replace")
        return JobState(job_id, "requeued" if ("Requeued" in text or "preempted" in text) else "running", log)
    return JobState(job_id, "pending", log)
