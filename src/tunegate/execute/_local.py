"""The local executor: batch work in this process, with the classifier it is given."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["LocalExecutor"]

B = TypeVar("B")
R = TypeVar("R")
T = TypeVar("T")


class LocalExecutor:
    """Runs every batch and task in this process, one after the other (the default)."""

    name = "local"
    workers = 1

    def map_batches(
        self, model: Any, fn: Callable[[Any, B], R], batches: Sequence[B]
    ) -> Iterator[R]:
        for batch in batches:
            yield fn(model, batch)

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def close(self) -> None:
        return None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
