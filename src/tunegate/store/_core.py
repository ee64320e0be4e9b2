"""The store's plumbing: the engine, read and write transactions, retries, the dialect's INSERT.

:class:`StoreCore` is the base of every part of :class:`~tunegate.store.Store`; each part (records,
model versions, suites and runs, documents, audit) is a mixin over it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa

from tunegate.errors import StoreError
from tunegate.store._engine import make_engine
from tunegate.store.migrate import upgrade

__all__ = ["StoreCore"]

_CHUNK = 900  # ids per IN (...) list: well under SQLite's bound-parameter limit
_RETRIES = 5


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _show(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    more = len(ids) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


class StoreCore:
    """The connection to one database, migrated to the newest schema on open."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        try:
            self.revision = upgrade(self.engine)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open store {self._safe_url}: {exc.orig}") from exc
        except Exception:
            self.engine.dispose()
            raise

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite store (``None`` for PostgreSQL or in-memory)."""
        if self.dialect != "sqlite" or self.engine.url.database in (None, "", ":memory:"):
            return None
        return Path(str(self.engine.url.database))

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._safe_url!r})"

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"reading from {self._safe_url} failed: {exc.orig}") from exc

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction: commits on success, rolls back on any exception."""
        try:
            with (
                self.engine.connect().execution_options(tunegate_write=True) as conn,
                conn.begin(),
            ):
                yield conn
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"writing to {self._safe_url} failed: {exc.orig}") from exc

    def _retrying(self, fn: Any) -> Any:
        """Run ``fn`` (one whole transaction), retrying transient lock/deadlock failures."""
        for attempt in range(_RETRIES):
            try:
                return fn()
            except StoreError as exc:
                cause = exc.__cause__
                transient = isinstance(cause, sa.exc.OperationalError) and any(
                    word in str(cause).lower() for word in ("locked", "deadlock", "serializ")
                )
                if not transient or attempt == _RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
