"""Bulk record writes: tickets, decisions, overrides, examples, and the SQLite fast path.

Writes are transactional (a batch lands whole or not at all) and idempotent by id: adding a
record whose id is already stored with the same identity hash counts it as ``existing``; the
same id with different content is an :class:`~tunegate.errors.InputError` naming the id (or,
with ``on_conflict="skip"``, is left out and reported in :attr:`AddResult.conflicts`, which is
how ingestion quarantines it). Inserts use ``INSERT ... ON CONFLICT DO NOTHING``, so concurrent
writers adding the same id never duplicate it and never lose a row. On SQLite the rows go
through the DB-API's ``executemany`` with parameters converted exactly as SQLAlchemy would bind
them (the fast path of ingestion).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from tunegate.errors import ConflictError, InputError
from tunegate.records import STORED, Decision, Example, Override, ReviewStatus, Ticket, utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore, _chunks, _show
from tunegate.store._hashing import RECORD_TYPES, RecordKind, json_encoder, record_hash

__all__ = ["AddResult", "BulkWritesMixin"]


@dataclass(frozen=True)
class AddResult:
    """What an add did: rows inserted, rows already stored with the same content."""

    added: int
    existing: int
    conflicts: tuple[str, ...] = field(default=())
    """Ids left out because the store (or the batch) holds different content under them;
    only non-empty with ``on_conflict="skip"``."""


def _override_from_row(row: sa.RowMapping) -> Override:
    fields = [c.name for c in s.overrides.columns if c.name not in ("record_hash", "reviewer")]
    return Override.model_validate({name: row[name] for name in fields}, context=STORED)


def _to_row(kind: str, rec: Any, digest: str) -> dict[str, Any]:
    if kind == "tickets":
        return {
            "id": rec.id,
            "text": rec.text,
            "created_at": rec.created_at,
            "metadata": rec.metadata,
            "record_hash": digest,
        }
    if kind == "decisions":
        return {
            "id": rec.id,
            "ticket_id": rec.ticket_id,
            "model_version": rec.model_version,
            "label": rec.label,
            "probabilities": rec.probabilities,
            "h_norm": rec.h_norm,
            "route": rec.route.value,
            "latency_ms": rec.latency_ms,
            "created_at": rec.created_at,
            "rule_hits": [h.model_dump(mode="json") for h in rec.rule_hits],
            "shadow": rec.shadow,
            "record_hash": digest,
        }
    if kind == "overrides":
        return {
            "id": rec.id,
            "ticket_id": rec.ticket_id,
            "decision_id": rec.decision_id,
            "model_label": rec.model_label,
            "final_label": rec.final_label,
            "reason_code": rec.reason_code.value,
            "note": rec.note,
            "analyst": rec.analyst,
            "created_at": rec.created_at,
            "review_status": rec.review_status.value,
            "reviewer": None,
            "record_hash": digest,
        }
    return {
        "id": rec.id,
        "text": rec.text,
        "label": rec.label,
        "source": rec.source.value,
        "reviewer": rec.reviewer,
        "review_status": rec.review_status.value,
        "slice_tags": rec.slice_tags,
        "metadata": rec.metadata,
        "ticket_id": rec.ticket_id,
        "created_at": rec.created_at,
        "text_hash": rec.text_hash,
        "record_hash": digest,
    }


def _sqlite_converter(column: sa.Column[Any]) -> Any:
    """Python value -> what SQLAlchemy's own bind processing would store in SQLite."""
    if isinstance(column.type, s.UTCDateTime):
        return _sqlite_datetime
    if isinstance(column.type, sa.JSON):
        return _json_text
    if isinstance(column.type, sa.Boolean):
        return lambda v: None if v is None else int(bool(v))
    return lambda v: v


def _sqlite_datetime(value: datetime) -> str:
    """Exactly SQLAlchemy's SQLite DATETIME storage format (UTC, naive, microseconds), so
    comparisons and ordering agree: ``2024-05-01 08:00:00.000000``."""
    if value.tzinfo is not None and value.utcoffset():  # a zero offset needs no conversion
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


_json_text = json_encoder(sort_keys=False)
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, the engine's serializer."""

_Entry = tuple[str, str, Any]
"""``(id, record_hash, record)`` of one record to insert."""


def _sqlite_params_generic(
    kind: str, table: sa.Table, entries: list[_Entry]
) -> list[tuple[Any, ...]]:
    columns = [c.name for c in table.columns]
    convert = [_sqlite_converter(c) for c in table.columns]
    out: list[tuple[Any, ...]] = []
    for _rid, digest, rec in entries:
        row = _to_row(kind, rec, digest)
        out.append(tuple(f(row[c]) for c, f in zip(columns, convert, strict=True)))
    return out


def _sqlite_params(kind: str, table: sa.Table, entries: list[_Entry]) -> list[tuple[Any, ...]]:
    """SQLite parameter tuples in ``table``'s column order, as SQLAlchemy would bind them."""
    if kind == "tickets":  # the hot path of ingestion; equal to the generic form (tested)
        dt, js = _sqlite_datetime, _json_text
        return [
            (rec.id, rec.text, dt(rec.created_at), js(rec.metadata), digest)
            for _, digest, rec in entries
        ]
    return _sqlite_params_generic(kind, table, entries)


def _entry_id(entry: _Entry) -> str:
    return entry[0]


class BulkWritesMixin(StoreCore):
    """:meth:`add` and its per-table shorthands: one transaction per batch, idempotent by id."""

    def add(
        self,
        kind: RecordKind,
        records: Iterable[BaseModel],
        *,
        on_conflict: Literal["raise", "skip"] = "raise",
        hashes: Sequence[str] | None = None,
    ) -> AddResult:
        """Add records of table ``kind`` in one transaction (all land or none do).

        A record whose id is stored with the same content counts as ``existing``. The same id
        with different content raises :class:`InputError` naming the ids (nothing is written),
        or with ``on_conflict="skip"`` is left out and listed in ``AddResult.conflicts``.
        ``hashes`` are the records' :func:`~tunegate.store.record_hash` values when the caller
        has them already (ingestion does), saving the work.
        """
        model = RECORD_TYPES.get(kind)
        if model is None:
            raise InputError(
                f"unknown record kind {kind!r}; expected one of {sorted(RECORD_TYPES)}"
            )
        items = list(records)
        if hashes is not None and len(hashes) != len(items):
            raise InputError(f"add({kind!r}): {len(items)} records but {len(hashes)} hashes")
        first: dict[str, str] = {}
        entries: list[_Entry] = []
        duplicates = 0
        batch_conflicts: list[str] = []
        for n, rec in enumerate(items):
            if not isinstance(rec, model):
                raise InputError(
                    f"add({kind!r}) expects {model.__name__} records, got "
                    f"{type(rec).__name__}; build them with {model.__name__}.model_validate(...)"
                )
            rid: str = rec.id  # type: ignore[attr-defined]
            digest = hashes[n] if hashes is not None else record_hash(kind, rec)
            seen = first.get(rid)
            if seen is None:
                first[rid] = digest
                entries.append((rid, digest, rec))
            elif seen == digest:
                duplicates += 1
            else:
                batch_conflicts.append(rid)
        if batch_conflicts and on_conflict == "raise":
            raise InputError(
                f"{kind}: id(s) {_show(batch_conflicts)} appear twice in the batch with different "
                f"content; give each record its own id or drop the stale copy"
            )
        entries.sort(key=_entry_id)  # one lock order for every writer: no deadlocks
        result: AddResult = self._retrying(
            lambda: self._add_rows(kind, entries, on_conflict, duplicates, batch_conflicts)
        )
        return result

    def _insert_new(
        self, conn: sa.Connection, kind: str, table: sa.Table, entries: list[_Entry]
    ) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; returns how many rows were inserted."""
        if not entries:
            return 0
        if self.dialect == "sqlite":
            # The DB-API's executemany in C: several times faster than per-row bind processing.
            columns = [c.name for c in table.columns]
            sql = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                f"({', '.join('?' for _ in columns)}) ON CONFLICT (id) DO NOTHING"
            )
            params = _sqlite_params(kind, table, entries)
            return int(conn.exec_driver_sql(sql, params).rowcount)
        stmt = (
            self._insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
        )
        rows = [_to_row(kind, rec, digest) for _, digest, rec in entries]
        inserted = 0
        for chunk in _chunks(rows, 5000):
            inserted += len(conn.execute(stmt, list(chunk)).all())
        return inserted

    def _stored_hashes(
        self, conn: sa.Connection, table: sa.Table, ids: list[str]
    ) -> Iterator[tuple[str, str]]:
        """``(id, record_hash)`` of the stored rows among ``ids`` (one query per 900 ids)."""
        for chunk in _chunks(ids):
            if self.dialect == "sqlite":  # plain driver SQL: no per-chunk compile, C fetchall
                sql = (
                    f"SELECT id, record_hash FROM {table.name} "
                    f"WHERE id IN ({', '.join('?' for _ in chunk)})"
                )
                yield from conn.exec_driver_sql(sql, tuple(chunk)).cursor.fetchall()  # type: ignore[union-attr]
            else:
                query = sa.select(table.c.id, table.c.record_hash).where(table.c.id.in_(chunk))
                yield from conn.execute(query).tuples()

    def _add_rows(
        self,
        kind: str,
        entries: list[_Entry],
        on_conflict: str,
        duplicates: int,
        batch_conflicts: list[str],
    ) -> AddResult:
        table = s.TABLES[kind]
        conflicts: list[str] = []
        with self._write() as conn:
            added = self._insert_new(conn, kind, table, entries)
            if added < len(entries):  # some ids were there already: same content or not?
                mine = {rid: digest for rid, digest, _ in entries}
                ids = list(mine)
                for rid, stored in self._stored_hashes(conn, table, ids):
                    if stored != mine[rid]:
                        conflicts.append(rid)
            if conflicts and on_conflict == "raise":
                raise InputError(
                    f"{kind}: id(s) {_show(conflicts)} are already stored with different content; "
                    f"nothing from this batch was written. Give changed records new ids, or "
                    f"ingest with quarantine to set them aside"
                )
        return AddResult(
            added=added,
            existing=duplicates + len(entries) - added - len(conflicts),
            conflicts=tuple(batch_conflicts) + tuple(sorted(conflicts)),
        )

    def add_tickets(self, tickets: Iterable[Ticket]) -> AddResult:
        """Add tickets (idempotent by id, one transaction)."""
        return self.add("tickets", tickets)

    def add_decisions(self, decisions: Iterable[Decision]) -> AddResult:
        """Add decisions (idempotent by id, one transaction)."""
        return self.add("decisions", decisions)

    def add_overrides(self, overrides: Iterable[Override]) -> AddResult:
        """Add overrides (idempotent by id, one transaction)."""
        return self.add("overrides", overrides)

    def add_override_audited(
        self,
        override: Override,
        *,
        audit: dict[str, Any],
        supersedes: str | None = None,
    ) -> tuple[Override, bool]:
        """Store ``override`` and its ``override`` audit row (actor: the analyst, ``audit``:
        the details) in ONE transaction; returns ``(stored override, created)``.

        Idempotent by id: when ``override.id`` is stored already, nothing is written and the
        stored override comes back with ``created=False`` (the caller compares it with its
        request). A decision (the ticket, when the override names no decision) has at most one
        open override: another pending or reviewed one raises
        :class:`~tunegate.errors.ConflictError` naming it, unless ``supersedes`` is its id,
        which marks it ``superseded``. Overrides of one ticket are serialised by a row lock on
        the ticket, so two concurrent writers cannot both pass the check.
        """
        if override.review_status != ReviewStatus.PENDING:
            raise InputError("add_override_audited takes a new (pending) override")
        digest = record_hash("overrides", override)
        o = s.overrides

        def run() -> tuple[Override, bool]:
            with self._write() as conn:
                # a no-op write: locks the ticket's row (PostgreSQL) or the database (SQLite)
                conn.execute(
                    sa.update(s.tickets)
                    .where(s.tickets.c.id == override.ticket_id)
                    .values(id=s.tickets.c.id)
                )
                stored = conn.execute(sa.select(o).where(o.c.id == override.id)).mappings().all()
                if stored:
                    return _override_from_row(stored[0]), False
                same = (
                    o.c.decision_id == override.decision_id
                    if override.decision_id is not None
                    else o.c.decision_id.is_(None)
                )
                open_ids = [
                    str(row[0])
                    for row in conn.execute(
                        sa.select(o.c.id)
                        .where(o.c.ticket_id == override.ticket_id, same)
                        .where(o.c.review_status != ReviewStatus.SUPERSEDED.value)
                        .where(o.c.review_status != ReviewStatus.REJECTED.value)
                        .order_by(o.c.created_at, o.c.id)
                    )
                ]
                if supersedes is not None and supersedes not in open_ids:
                    raise ConflictError(
                        f"supersedes {supersedes!r} is not an open override of this decision; "
                        f"open: {open_ids or 'none'}"
                    )
                if open_ids and supersedes is None:
                    raise ConflictError(
                        f"decision {override.decision_id or override.ticket_id!r} already has "
                        f"an open override {open_ids[-1]!r}; to replace it send "
                        f'"supersedes": "{open_ids[-1]}"'
                    )
                if supersedes is not None:
                    conn.execute(
                        sa.update(o)
                        .where(o.c.id == supersedes)
                        .values(review_status=ReviewStatus.SUPERSEDED.value)
                    )
                self._insert_new(conn, "overrides", o, [(override.id, digest, override)])
                conn.execute(
                    sa.insert(s.audit).values(
                        action="override", actor=override.analyst, details=audit, at=utcnow()
                    )
                )
            return override, True

        result: tuple[Override, bool] = self._retrying(run)
        return result

    def add_examples(self, examples: Iterable[Example]) -> AddResult:
        """Add examples (idempotent by id, one transaction)."""
        return self.add("examples", examples)
