"""The batch's progress display: a rich progress bar on a terminal, plain lines in a log.

In a CI log (no TTY) a bar cannot redraw itself, so the batch writes one line every tenth of the class
(and for the last submission) instead: how many are done, how many did not grade cleanly, the time.
"""
from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, TextIO, cast

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

LINES = 10  # lines a whole batch writes to a log, at most (plus the last)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class NoProgress:
    """No progress shown (--quiet, and a platform's one submission). It has the part of rich's Progress interface
    the batch uses (add_task, update, a context manager)."""

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: int, completed: int = 0) -> TaskID:
        return cast("TaskID", 0)

    def update(self, task: TaskID, advance: int = 1, description: str = "", problem: bool = False,
               refresh: bool = True) -> None:
        return None


class LineProgress(NoProgress):
    """Progress as plain lines, for a log: `grading: 12/40 (30%), 1 not graded; 1m05s elapsed, ~2m32s left`."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.total, self.done, self.problems, self.began, self.step, self.start_done = 0, 0, 0, 0.0, 1, 0

    def add_task(self, description: str, total: int, completed: int = 0) -> TaskID:
        self.total, self.done, self.start_done, self.began = total, completed, completed, time.monotonic()
        self.step = max(1, math.ceil((total - completed) / LINES))
        if completed:
            print(f"grading: {completed}/{total} unchanged since the last run, {total - completed} to grade",
                  file=self.stream, flush=True)
        return cast("TaskID", 0)

    def update(self, task: TaskID, advance: int = 1, description: str = "", problem: bool = False,
               refresh: bool = True) -> None:
        """One more submission done (problem: its status is not graded); a line every step (refresh: as rich's)."""
        self.done += advance
        self.problems += problem
        fresh = self.done - self.start_done
        if fresh % self.step and self.done < self.total:
            return
        elapsed = time.monotonic() - self.began
        left = self.total - self.done
        eta = f", ~{_duration(elapsed / fresh * left)} left" if fresh and left else ""
        percent = 100 * self.done / self.total if self.total else 100.0
        print(f"grading: {self.done}/{self.total} ({percent:.0f}%), {self.problems} not graded; "
              f"{_duration(elapsed)} elapsed{eta}", file=self.stream, flush=True)


def batch_progress(enabled: bool, stream: TextIO | None = None) -> Progress | NoProgress:
    """A progress bar on a terminal, lines when the output is a log; nothing at all when not enabled."""
    if not enabled:
        return NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    console = Console(file=stream) if stream else Console()
    if not console.is_terminal:
        return LineProgress(stream)
    return Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}", markup=False),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    auto_refresh=False)  # redrawn as each submission finishes: no thread, the workers fork from here
