"""Record queries: tickets, decisions, overrides and examples by time, id and filters; review
status updates. Writes are in :mod:`tunegate.store._bulk`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError

from tunegate.errors import InputError, NotFoundError, StoreError
from tunegate.records import STORED, Decision, Example, Override, ReviewStatus, Ticket
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore, _chunks
from tunegate.store._hashing import RECORD_TYPES

__all__ = ["RecordsMixin"]

_FIELDS: dict[str, tuple[str, ...]] = {
    "tickets": ("id", "text", "created_at", "metadata"),
    "decisions": (
        "id",
        "ticket_id",
        "model_version",
        "label",
        "probabilities",
        "h_norm",
        "route",
        "latency_ms",
        "created_at",
        "rule_hits",
        "shadow",
    ),
    "overrides": (
        "id",
        "ticket_id",
        "decision_id",
        "model_label",
        "final_label",
        "reason_code",
        "note",
        "analyst",
        "created_at",
        "review_status",
    ),
    "examples": (
        "id",
        "text",
        "label",
        "source",
        "reviewer",
        "review_status",
        "slice_tags",
        "metadata",
        "ticket_id",
        "created_at",
    ),
}


def _from_row(kind: str, row: sa.RowMapping) -> Any:
    model = RECORD_TYPES[kind]
    return model.model_validate({name: row[name] for name in _FIELDS[kind]}, context=STORED)


class RecordsMixin(StoreCore):
    """Queries over the four record tables, and their review status."""

    def count(self, kind: str) -> int:
        """Rows in table ``kind`` (any table name of the schema)."""
        table = s.TABLES.get(kind)
        if table is None:
            raise InputError(f"unknown table {kind!r}; expected one of {sorted(s.TABLES)}")
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def _select(self, kind: str, query: sa.Select[Any]) -> list[Any]:
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        try:
            return [_from_row(kind, row) for row in rows]
        except ValidationError as exc:
            raise StoreError(f"{kind}: a stored row no longer validates: {exc}") from exc

    def _select_ids(self, kind: str, query: sa.Select[Any], ids: Sequence[str]) -> list[Any]:
        table = s.TABLES[kind]
        out: list[Any] = []
        for chunk in _chunks(list(dict.fromkeys(ids))):
            out.extend(self._select(kind, query.where(table.c.id.in_(chunk))))
        return out

    def tickets(
        self,
        *,
        ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Ticket]:
        """Tickets ordered by ``created_at`` (then id); ``since`` inclusive, ``until`` exclusive."""
        t = s.tickets
        query = sa.select(t).order_by(t.c.created_at, t.c.id)
        if since is not None:
            query = query.where(t.c.created_at >= since)
        if until is not None:
            query = query.where(t.c.created_at < until)
        if ids is None:
            return self._select("tickets", query)
        found = self._select_ids("tickets", query, ids)
        return sorted(found, key=lambda x: (x.created_at, x.id))

    def get_ticket(self, ticket_id: str) -> Ticket:
        """One ticket; :class:`NotFoundError` when absent."""
        found = self._select("tickets", sa.select(s.tickets).where(s.tickets.c.id == ticket_id))
        if not found:
            raise NotFoundError(f"no ticket with id {ticket_id!r} in {self._safe_url}")
        ticket: Ticket = found[0]
        return ticket

    def decisions(
        self,
        *,
        model_version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        shadow: bool | None = False,
        ticket_ids: Sequence[str] | None = None,
        routes: Sequence[str] | None = None,
    ) -> list[Decision]:
        """Decisions ordered by ``created_at``; ``shadow=False`` (default) gives routed decisions
        only, ``True`` shadow ones only, ``None`` both; ``routes`` keeps only those routes
        (filtered in SQL, e.g. the review queue's ``clarify``/``escalate``)."""
        d = s.decisions
        query = sa.select(d).order_by(d.c.created_at, d.c.id)
        if routes is not None:
            query = query.where(d.c.route.in_([str(getattr(r, "value", r)) for r in routes]))
        if model_version is not None:
            query = query.where(d.c.model_version == model_version)
        if since is not None:
            query = query.where(d.c.created_at >= since)
        if until is not None:
            query = query.where(d.c.created_at < until)
        if shadow is not None:
            query = query.where(d.c.shadow == shadow)
        if ticket_ids is None:
            return self._select("decisions", query)
        out: list[Decision] = []
        for chunk in _chunks(list(dict.fromkeys(ticket_ids))):
            out.extend(self._select("decisions", query.where(d.c.ticket_id.in_(chunk))))
        return sorted(out, key=lambda x: (x.created_at, x.id))

    def latest_activity(self) -> datetime | None:
        """The newest ``created_at`` of any decision (routed or shadow) or override; ``None``
        when there is none."""
        with self._read() as conn:
            found = [
                conn.execute(sa.select(sa.func.max(t.c.created_at))).scalar_one()
                for t in (s.decisions, s.overrides)
            ]
        stamps: list[datetime] = [x for x in found if x is not None]
        return max(stamps) if stamps else None

    def overrides(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        reason_code: str | None = None,
    ) -> list[Override]:
        """Overrides ordered by ``created_at``."""
        o = s.overrides
        query = sa.select(o).order_by(o.c.created_at, o.c.id)
        if since is not None:
            query = query.where(o.c.created_at >= since)
        if until is not None:
            query = query.where(o.c.created_at < until)
        if reason_code is not None:
            query = query.where(o.c.reason_code == str(reason_code))
        return self._select("overrides", query)

    def examples(
        self,
        *,
        review_status: str | None = None,
        source: str | None = None,
        label: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Example]:
        """Examples ordered by ``created_at`` (then id); ``ids`` keeps only those ids."""
        e = s.examples
        query = sa.select(e).order_by(e.c.created_at, e.c.id)
        if review_status is not None:
            query = query.where(e.c.review_status == str(review_status))
        if source is not None:
            query = query.where(e.c.source == str(source))
        if label is not None:
            query = query.where(e.c.label == label)
        if ids is None:
            return self._select("examples", query)
        found = self._select_ids("examples", query, ids)
        return sorted(found, key=lambda x: (x.created_at, x.id))

    def set_review_status(
        self,
        kind: Literal["example", "override"],
        ids: Iterable[str],
        status: ReviewStatus | str,
        reviewer: str | None = None,
    ) -> int:
        """Set the review status (and reviewer) of examples or overrides; returns rows changed."""
        table = {
            "example": s.examples,
            "examples": s.examples,
            "override": s.overrides,
            "overrides": s.overrides,
        }.get(kind)
        if table is None:
            raise InputError(
                f"set_review_status: kind must be 'example' or 'override', got {kind!r}"
            )
        try:
            value = ReviewStatus(status).value
        except ValueError:
            allowed = [v.value for v in ReviewStatus]
            raise InputError(f"review status {status!r} is not one of {allowed}") from None
        changes: dict[str, Any] = {"review_status": value}
        if reviewer is not None:
            changes["reviewer"] = reviewer
        id_list = sorted(set(ids))
        changed = 0
        with self._write() as conn:
            for chunk in _chunks(id_list):
                res = conn.execute(sa.update(table).where(table.c.id.in_(chunk)).values(**changes))
                changed += res.rowcount
        return changed
