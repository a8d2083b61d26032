"""Progress bars that also show in a log file.

rich draws a progress bar only on a terminal: on a console that is not one (`ns-train ... > log`, `nohup`, a bench
that runs a step as a subprocess) it prints the bars once, when they stop. A vvc-mv-inr INR fit at protocol scale
runs ~1.5 h in one stage, so its log said nothing for that long. `LoggedProgress` keeps rich's bar on a terminal and,
elsewhere, also prints one plain line of the unfinished tasks every `every_s` seconds and a line when a task
finishes.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional, Sequence, Set, TypeVar

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TaskID

T = TypeVar("T")

LOG_EVERY_S = 60.0
"""Seconds between two status lines in a log (a finished task's line is printed at once)."""


def _hms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def task_line(task: Task) -> str:
    """One task as plain text: `description: 3/10 (30%), 0:01:02 elapsed, ~0:02:25 left`."""
    if task.total is None:
        return f"{task.description}: {task.completed:g}, {_hms(task.elapsed)} elapsed"
    pct = 100.0 * task.completed / task.total if task.total else 100.0
    line = f"{task.description}: {task.completed:g}/{task.total:g} ({pct:.0f}%), {_hms(task.elapsed)} elapsed"
    if task.finished:
        return line + ", done"
    remaining = task.time_remaining  # rich's estimate looks at the last 30 s only: none for a slow task
    if remaining is None and task.completed > 0 and task.elapsed:
        remaining = task.elapsed / task.completed * (task.total - task.completed)  # the mean rate so far
    return line + (f", ~{_hms(remaining)} left" if remaining is not None else "")


class LoggedProgress(Progress):
    """`rich.progress.Progress` that writes plain status lines when its console is not a terminal."""

    def __init__(self, *columns: ProgressColumn, console: Console, every_s: float = LOG_EVERY_S, **kwargs) -> None:
        super().__init__(*columns, console=console, **kwargs)
        self.logs = not console.is_terminal and not console.is_jupyter
        self.every_s = every_s
        self._last_line = time.monotonic()
        self._reported_done: Set[TaskID] = set()

    def _log(self, task_id: TaskID) -> None:
        if not self.logs:
            return
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            if task.finished:
                if task_id in self._reported_done:
                    return
                self._reported_done.add(task_id)
                lines = [task_line(task)]
            else:
                now = time.monotonic()
                if now - self._last_line < self.every_s:
                    return
                self._last_line = now
                lines = [task_line(t) for t in self._tasks.values() if t.visible and not t.finished]
        if lines:
            self.console.print(" | ".join(lines), highlight=False, soft_wrap=True)

    def update(self, task_id: TaskID, **kwargs) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)


def track(
    sequence: Sequence[T] | Iterable[T],
    description: str,
    console: Console,
    total: Optional[float] = None,
    every_s: float = LOG_EVERY_S,
) -> Iterable[T]:
    """`rich.progress.track` that a log file shows too."""
    with LoggedProgress(*Progress.get_default_columns(), console=console, every_s=every_s) as bar:
        yield from bar.track(sequence, total=total, description=description)
