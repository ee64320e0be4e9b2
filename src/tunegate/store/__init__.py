"""tunegate's store: SQLAlchemy 2 tables, Alembic migrations, transactional idempotent writes.

A SQLite file is the zero-set-up default; PostgreSQL is used by URL. See docs/store.md.
"""

from __future__ import annotations

from tunegate.store._documents import Documents
from tunegate.store._hashing import record_hash
from tunegate.store._store import AddResult, AliasEvent, QueueClaim, Store

__all__ = ["AddResult", "AliasEvent", "Documents", "QueueClaim", "Store", "record_hash"]
