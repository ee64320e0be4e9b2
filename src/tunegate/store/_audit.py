"""The audit log: who promoted, rolled back, reviewed, confirmed, and when."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tunegate.records import utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore

__all__ = ["AuditMixin"]


class AuditMixin(StoreCore):
    """Append-only audit entries."""

    def audit(self, action: str, actor: str, details: dict[str, Any]) -> None:
        """Append an audit entry (promotions, rollbacks, reviews, ...)."""
        with self._write() as conn:
            conn.execute(
                sa.insert(s.audit).values(action=action, actor=actor, details=details, at=utcnow())
            )

    def audit_log(self, action: str | None = None) -> list[dict[str, Any]]:
        """Audit entries, oldest first: dicts with seq, action, actor, details, at."""
        t = s.audit
        query = sa.select(t).order_by(t.c.seq)
        if action is not None:
            query = query.where(t.c.action == action)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
