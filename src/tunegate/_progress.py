"""Progress bars for long work (Rich), quiet when not attached to a terminal or when asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "progress_enabled", "set_progress", "spinner", "track"]

T = TypeVar("T")

console = Console(stderr=True)
_ENABLED: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Force progress bars on/off (``None`` = automatic: on when stderr is a terminal)."""
    global _ENABLED
    _ENABLED = enabled


def progress_enabled() -> bool:
    if _ENABLED is not None:
        return _ENABLED
    if os.environ.get("TUNEGATE_PROGRESS") == "0":
        return False
    return sys.stderr.isatty()


def make_progress() -> Progress:
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
