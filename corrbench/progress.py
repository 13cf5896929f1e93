"""Progress reporting seam: the engine talks to anything shaped like rich.progress.Progress."""
from __future__ import annotations

from typing import Any, Protocol


class ProgressLike(Protocol):
    def add_task(self, description: str, total: float | None = ..., **fields: Any) -> Any: ...
    def advance(self, task_id: Any, advance: float = ...) -> None: ...
    def reset(self, task_id: Any, **fields: Any) -> None: ...
    def update(self, task_id: Any, **fields: Any) -> None: ...


class _NullProgress:
    """Does nothing; the library's default when no one is watching."""

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def advance(self, task_id: Any, advance: float = 1) -> None:
        pass

    def reset(self, task_id: Any, **fields: Any) -> None:
        pass

    def update(self, task_id: Any, **fields: Any) -> None:
        pass


def null_progress() -> ProgressLike:
    return _NullProgress()


class PlainProgress:
    """Progress as plain log lines, for a stderr that is not a terminal (Slurm, nohup, a pipe).

    A task created with `log="each"` prints one line per `advance` (e.g. one per epoch), with the fields last
    given to `update` (loss, lr, images/s …) and an ETA from the mean time per step so far; any other task
    prints one line when it completes (e.g. one per evaluated part), unless created with `log=False`.
    """

    def __init__(self, write: Any, clock: Any = None):
        import time

        self._write = write
        self._clock = clock or time.perf_counter
        self._tasks: dict[int, dict[str, Any]] = {}

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self._tasks)
        self._tasks[task_id] = {"description": description, "total": total,
                                "completed": fields.pop("completed", 0) or 0, "start": self._clock(),
                                "start_completed": 0, "log": fields.pop("log", True), "fields": fields}
        self._tasks[task_id]["start_completed"] = self._tasks[task_id]["completed"]
        return task_id

    def advance(self, task_id: Any, advance: float = 1) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        task["completed"] += advance
        if task["log"] == "each":
            self._write(self._line(task, eta=True))
        elif task["log"] and task["total"] and task["completed"] >= task["total"]:
            self._write(self._line(task, eta=False))

    def reset(self, task_id: Any, **fields: Any) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        task.update(completed=fields.pop("completed", 0) or 0, start=self._clock())
        task["start_completed"] = task["completed"]
        for key in ("description", "total"):
            if key in fields:
                task[key] = fields.pop(key)
        task["fields"].update(fields)

    def update(self, task_id: Any, **fields: Any) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        for key in ("description", "total", "completed"):
            if key in fields:
                task[key] = fields.pop(key)
        task["fields"].update(fields)

    def _line(self, task: dict[str, Any], eta: bool) -> str:
        elapsed = self._clock() - task["start"]
        done = task["completed"]
        head = f"{task['description']}: {done:g}" + (f"/{task['total']:g}" if task["total"] else "")
        parts = [head] + [f"{key} {_plain(value)}" for key, value in task["fields"].items() if value is not None]
        parts.append(f"{elapsed:.1f} s")
        steps = done - task["start_completed"]
        if eta and task["total"] and steps > 0:
            remaining = (task["total"] - done) * elapsed / steps
            parts.append(f"ETA {_duration(remaining)}")
        return ", ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
