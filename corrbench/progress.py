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
