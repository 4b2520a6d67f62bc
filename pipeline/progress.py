"""What a user watches while a run works: one rich progress line per phase.

The per-document phase has no known total (a WARC's record count is known only once read), so it
shows inputs finished out of all, documents processed and the rate; global stages show a spinner
while they run and their seconds when done; shard writing is a plain bar. With progress off
(`--no-progress`, CI logs, tests) every call is a no-op.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import TracebackType


class RunProgress(AbstractContextManager):
    def __init__(self, enabled: bool, console=None) -> None:
        self._progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False,
            )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, key: str, description: str, total: int | None = None, info: str = "") -> None:
        if self._progress is not None:
            self._tasks[key] = self._progress.add_task(description, total=total, info=info)

    def update(self, key: str, *, advance: int = 0, completed: int | None = None, info: str | None = None) -> None:
        if self._progress is not None and key in self._tasks:
            fields = {} if info is None else {"info": info}
            self._progress.update(self._tasks[key], advance=advance, completed=completed, **fields)

    def finish(self, key: str, info: str | None = None) -> None:
        """Mark a task done (an open-ended one gets its count as total, so the bar fills)."""
        if self._progress is not None and key in self._tasks:
            task = self._progress.tasks[self._tasks[key]]
            total = task.total if task.total is not None else max(task.completed, 1)
            fields = {} if info is None else {"info": info}
            self._progress.update(self._tasks[key], total=total, completed=total, **fields)
