"""Alembic migrations run programmatically: no alembic.ini at run time.

``Store(url)`` calls :func:`upgrade` on open. For development, a new revision is generated
against :data:`tunegate.store._schema.metadata` with::

    python -m tunegate.store.migrate revision "add column x" --url sqlite:///dev.db

(the database at ``--url`` must be at head first; the new file lands in
``src/tunegate/migrations/versions``).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from tunegate.errors import StoreError

__all__ = ["current_revision", "head_revision", "main", "upgrade"]

_PG_LOCK = int.from_bytes(hashlib.sha256(b"tunegate-migrations").digest()[:7], "big")


def _script_location() -> Path:
    return Path(str(resources.files("tunegate").joinpath("migrations")))


def _config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this tunegate version ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StoreError("tunegate ships no migrations; the installation is broken, reinstall it")
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine) -> str:
    """Bring the database to head under a lock; return the revision it is now at.

    SQLite takes the write lock up front (``BEGIN IMMEDIATE``); PostgreSQL takes a
    transaction-scoped advisory lock, so concurrent openers migrate exactly once.
    """
    head = head_revision()
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    with engine.connect() as conn:
        at = current_revision(conn)
        conn.rollback()
        if at == head:
            return head
    with engine.connect().execution_options(tunegate_write=True) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        at = current_revision(conn)
        if at is not None and at not in known:
            raise StoreError(
                f"database {engine.url.render_as_string(hide_password=True)} is at schema "
                f"revision {at!r}, which this tunegate version does not know (it knows up to "
                f"{head!r}); upgrade tunegate (pip install -U tunegate) or use another store"
            )
        if at != head:
            try:
                command.upgrade(_config(conn), "head")
            except CommandError as exc:  # pragma: no cover - guarded above
                raise StoreError(f"migrating the store failed: {exc}") from exc
    return head


def main(argv: Sequence[str] | None = None) -> int:
    """Development helper: ``revision MESSAGE --url URL`` autogenerates a migration."""
    parser = argparse.ArgumentParser(prog="python -m tunegate.store.migrate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="autogenerate a revision from the schema")
    rev.add_argument("message")
    rev.add_argument("--url", required=True)
    up = sub.add_parser("upgrade", help="upgrade a database to head")
    up.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    from tunegate.store._engine import make_engine

    engine = make_engine(args.url)
    try:
        if args.cmd == "upgrade":
            print(upgrade(engine))
        else:
            with engine.begin() as conn:
                command.revision(_config(conn), message=args.message, autogenerate=True)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
