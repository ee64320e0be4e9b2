"""Progress for long work: Rich bars on a terminal, plain lines otherwise, nothing when asked.

On a terminal (stderr is a TTY) long work shows a Rich progress bar. When stderr is a file or
a pipe (a CI log, ``tunegate finetune > log 2>&1``) a bar would print nothing useful, so the
same calls write plain text lines instead: the first after :data:`LINE_INTERVAL_S` seconds
of work, then at most one per interval, and a last one when the work ends - so a 12-minute
fine-tune leaves a trail in its log while short work (and every fast test) prints nothing.
``tunegate --quiet`` or ``TUNEGATE_PROGRESS=0`` turns both off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = [
    "LINE_INTERVAL_S",
    "LineProgress",
    "console",
    "make_progress",
    "progress_enabled",
    "progress_mode",
    "set_progress",
    "spinner",
    "track",
]

T = TypeVar("T")

console = Console(stderr=True)
_ENABLED: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Force progress bars on/off (``None`` = automatic: on when stderr is a terminal)."""
    global _ENABLED
    _ENABLED = enabled


def progress_mode() -> Literal["bar", "lines", "off"]:
    """``bar`` on a terminal (or when forced on), ``off`` when asked (``--quiet``,
    ``TUNEGATE_PROGRESS=0``), else ``lines``."""
    if _ENABLED is not None:
        return "bar" if _ENABLED else "off"
    if os.environ.get("TUNEGATE_PROGRESS") == "0":
        return "off"
    return "bar" if sys.stderr.isatty() else "lines"


def progress_enabled() -> bool:
    """True when progress bars are drawn (a terminal, or forced on)."""
    return progress_mode() == "bar"


LINE_INTERVAL_S = 30.0
"""Seconds between two plain progress lines (and before the first one)."""


class _LineTask:
    def __init__(self, description: str, total: float | None, completed: float, status: str):
        self.description = description
        self.total = total
        self.completed = completed
        self.status = status
        self.started = time.monotonic()
        self.last_line = self.started
        self.lines = 0


class LineProgress:
    """The part of :class:`rich.progress.Progress` tunegate uses, writing plain lines.

    A line looks like ``fine-tune seed 0: 40/200 (20%), 1m30s elapsed, epoch 1/3 loss 0.412``.
    """

    def __init__(self, *, interval_s: float | None = None, stream: Any = None) -> None:
        self.interval_s = LINE_INTERVAL_S if interval_s is None else interval_s
        self._stream = stream
        self._tasks: list[_LineTask] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            if task.lines:  # a closing line only for work long enough to have reported
                self._write(task, "done" if exc_type is None else "stopped")

    def add_task(
        self,
        description: str,
        *,
        total: float | None = None,
        completed: float = 0,
        status: str = "",
        **_: Any,
    ) -> TaskID:
        self._tasks.append(_LineTask(description, total, completed, status))
        return TaskID(len(self._tasks) - 1)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self,
        task_id: TaskID,
        *,
        advance: float | None = None,
        completed: float | None = None,
        total: float | None = None,
        status: str | None = None,
        **_: Any,
    ) -> None:
        task = self._tasks[task_id]
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if total is not None:
            task.total = total
        if status is not None:
            task.status = status
        now = time.monotonic()
        if now - task.last_line >= self.interval_s:
            task.last_line = now
            self._write(task)

    def _write(self, task: _LineTask, end: str = "") -> None:
        task.lines += 1
        done = f"{task.completed:g}"
        if task.total:
            done += f"/{task.total:g} ({task.completed / task.total:.0%})"
        elapsed = int(time.monotonic() - task.started)
        parts = [f"{task.description}: {done}", f"{elapsed // 60}m{elapsed % 60:02d}s elapsed"]
        if task.status:
            parts.append(task.status)
        if end:
            parts.append(end)
        stream = self._stream if self._stream is not None else sys.stderr
        print(", ".join(parts), file=stream, flush=True)


def make_progress() -> Progress | LineProgress:
    """A Rich bar on a terminal, :class:`LineProgress` when not, a disabled bar when off."""
    if progress_mode() == "lines":
        return LineProgress()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not progress_enabled(),
    )


def track(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (no-op when progress is disabled)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)


@contextmanager
def spinner(description: str) -> Iterator[None]:
    """A status line for work without a known length."""
    if not progress_enabled():
        yield
        return
    with console.status(description):
        yield
