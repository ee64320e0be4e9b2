"""Engine construction: SQLite pragmas and write locking, PostgreSQL by URL."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from tunegate.errors import InputError

__all__ = ["BUSY_TIMEOUT_MS", "make_engine"]

BUSY_TIMEOUT_MS = 60_000
"""How long a SQLite writer waits for another writer's lock before failing (ms)."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with tunegate's settings.

    SQLite: WAL journal, ``synchronous=NORMAL`` (durable against process crashes; a power
    loss may drop the last commits, never corrupt), ``busy_timeout``, foreign keys on, and
    ``BEGIN IMMEDIATE`` for write transactions (connections opened with the execution option
    ``tunegate_write=True``) so that read-check-insert sequences serialize instead of failing.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InputError(
            f"store URL {url!r} is not a SQLAlchemy URL; expected e.g. sqlite:///tunegate.db "
            f"or postgresql+psycopg://user:pass@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 60}}
        if memory:
            kwargs["poolclass"] = StaticPool
        engine = sa.create_engine(parsed, json_serializer=_dumps, **kwargs)
        _sqlite_events(engine, wal=not memory)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        from tunegate._optional import require

        require("psycopg", purpose="a PostgreSQL store")
        return sa.create_engine(
            parsed, json_serializer=_dumps, pool_pre_ping=True, insertmanyvalues_page_size=2000
        )
    raise InputError(
        f"store URL {url!r} uses {backend!r}; tunegate supports sqlite:///PATH and "
        f"postgresql+psycopg://..."
    )


def _sqlite_events(engine: sa.Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if wal:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("tunegate_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
