"""Alembic environment for tunegate.

tunegate runs migrations programmatically (``Store(url)`` upgrades to head), handing the
connection in through ``config.attributes["connection"]``; no alembic.ini is needed. For
development, ``python -m tunegate.store.migrate revision "message" --url sqlite:///x.db``
autogenerates a new revision against :data:`tunegate.store._schema.metadata`.
"""

from __future__ import annotations

from alembic import context

from tunegate.store._schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only used from the alembic command line
    raise RuntimeError("tunegate migrations need a connection in config.attributes['connection']")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
