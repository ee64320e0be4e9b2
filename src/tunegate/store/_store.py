"""The :class:`Store`: every record tunegate keeps, in SQLite or PostgreSQL.

Writes are transactional (a batch lands whole or not at all) and idempotent by id: adding a
record whose id is already stored with the same identity hash counts it as ``existing``; the
same id with different content is an :class:`~tunegate.errors.InputError` naming the id (or,
with ``on_conflict="skip"``, is left out and reported in :attr:`AddResult.conflicts`, which is
how ingestion quarantines it). Inserts use ``INSERT ... ON CONFLICT DO NOTHING``, so concurrent
writers adding the same id never duplicate it and never lose a row.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError

from tunegate.errors import InputError, NotFoundError, StoreError
from tunegate.records import (
    STORED,
    Attempt,
    Decision,
    EvalRun,
    EvalSuite,
    Example,
    ModelStatus,
    ModelVersion,
    Override,
    ReviewStatus,
    Ticket,
    utcnow,
)
from tunegate.store import _schema as s
from tunegate.store._engine import make_engine
from tunegate.store._hashing import RECORD_TYPES, RecordKind, json_encoder, record_hash
from tunegate.store.migrate import upgrade

__all__ = ["AddResult", "AliasEvent", "Store"]

R = TypeVar("R", bound=BaseModel)

_CHUNK = 900  # ids per IN (...) list: well under SQLite's bound-parameter limit
_RETRIES = 5


@dataclass(frozen=True)
class AddResult:
    """What an add did: rows inserted, rows already stored with the same content."""

    added: int
    existing: int
    conflicts: tuple[str, ...] = field(default=())
    """Ids left out because the store (or the batch) holds different content under them;
    only non-empty with ``on_conflict="skip"``."""


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias (e.g. ``champion``): the history rollback reads."""

    alias: str
    version_id: str
    previous: str | None
    actor: str
    reason: str
    at: datetime


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _payload_hash(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


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


def _from_row(kind: str, row: sa.RowMapping) -> Any:
    model = RECORD_TYPES[kind]
    return model.model_validate({name: row[name] for name in _FIELDS[kind]}, context=STORED)


class Store:
    """tunegate's database: ``Store("sqlite:///tunegate.db")`` or a PostgreSQL URL.

    Opening a store migrates it to the newest schema (Alembic ``upgrade head``); a database
    at a revision this version does not know raises :class:`~tunegate.errors.StoreError`.
    A store is safe to share between threads; processes each open their own.
    """

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._safe_url!r})"

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

    # -- records: tickets, decisions, overrides, examples ---------------------------------------

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

    def add_examples(self, examples: Iterable[Example]) -> AddResult:
        """Add examples (idempotent by id, one transaction)."""
        return self.add("examples", examples)

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
    ) -> list[Example]:
        """Examples ordered by ``created_at`` (then id)."""
        e = s.examples
        query = sa.select(e).order_by(e.c.created_at, e.c.id)
        if review_status is not None:
            query = query.where(e.c.review_status == str(review_status))
        if source is not None:
            query = query.where(e.c.source == str(source))
        if label is not None:
            query = query.where(e.c.label == label)
        return self._select("examples", query)

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

    # -- suites --------------------------------------------------------------------------------

    def save_suite(self, suite: EvalSuite) -> None:
        """Store a suite, frozen (hashed) if it is not yet; saving it again is a no-op."""
        frozen = suite if suite.hash else suite.frozen()
        row = {
            "hash": frozen.hash,
            "name": frozen.name,
            "created_at": frozen.created_at,
            "n_examples": len(frozen.examples),
            "payload": frozen.model_dump_json(),
        }
        with self._write() as conn:
            conn.execute(
                self._insert(s.suites).on_conflict_do_nothing(index_elements=["hash"]), row
            )

    def get_suite(self, name_or_hash: str) -> EvalSuite:
        """A suite by full hash, by a unique hash prefix (>= 8 chars), or the newest by name."""
        t = s.suites
        with self._read() as conn:
            payload = conn.execute(sa.select(t.c.payload).where(t.c.hash == name_or_hash)).scalar()
            if payload is None:
                payload = conn.execute(
                    sa.select(t.c.payload)
                    .where(t.c.name == name_or_hash)
                    .order_by(t.c.created_at.desc())
                    .limit(1)
                ).scalar()
            if payload is None and len(name_or_hash) >= 8:
                found = (
                    conn.execute(
                        sa.select(t.c.payload).where(t.c.hash.startswith(name_or_hash)).limit(2)
                    )
                    .scalars()
                    .all()
                )
                if len(found) == 1:
                    payload = found[0]
            names = sorted(set(conn.execute(sa.select(t.c.name)).scalars()))
        if payload is None:
            raise NotFoundError(
                f"no evaluation suite named or hashed {name_or_hash!r}; stored suites: {names}"
            )
        return EvalSuite.model_validate_json(payload)

    def suites(self) -> list[EvalSuite]:
        """Every stored suite, oldest first."""
        t = s.suites
        with self._read() as conn:
            payloads = conn.execute(sa.select(t.c.payload).order_by(t.c.created_at)).scalars().all()
        return [EvalSuite.model_validate_json(p) for p in payloads]

    # -- model versions and aliases ------------------------------------------------------------

    def save_model_version(self, mv: ModelVersion) -> None:
        """Register a model version; saving the same version again is a no-op (a different
        status is applied), different content under the same id is an :class:`InputError`."""
        payload = mv.model_dump(mode="json")
        digest = _payload_hash({k: v for k, v in payload.items() if k != "status"})
        row = {
            "id": mv.id,
            "kind": mv.kind.value,
            "status": mv.status.value,
            "parent": mv.parent,
            "created_at": mv.created_at,
            "payload": payload,
            "record_hash": digest,
        }
        t = s.model_versions
        with self._write() as conn:
            stmt = self._insert(t).on_conflict_do_nothing(index_elements=["id"]).returning(t.c.id)
            if conn.execute(stmt, row).first() is not None:
                return
            stored = conn.execute(
                sa.select(t.c.record_hash, t.c.status).where(t.c.id == mv.id)
            ).one()
            if stored.record_hash != digest:
                raise InputError(
                    f"model version {mv.id!r} is already registered with different content; "
                    f"register the new model under a new id"
                )
            if stored.status != mv.status.value:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == mv.id)
                    .values(status=mv.status.value, payload=payload)
                )

    def get_model_version(self, version_id: str) -> ModelVersion:
        """One model version; :class:`NotFoundError` when absent."""
        t = s.model_versions
        with self._read() as conn:
            payload = conn.execute(sa.select(t.c.payload).where(t.c.id == version_id)).scalar()
        if payload is None:
            raise NotFoundError(f"no model version {version_id!r}; see `tunegate models list`")
        return ModelVersion.model_validate(payload)

    def model_versions(self) -> list[ModelVersion]:
        """Every model version, oldest first."""
        t = s.model_versions
        with self._read() as conn:
            rows = conn.execute(sa.select(t.c.payload).order_by(t.c.created_at, t.c.id)).scalars()
            return [ModelVersion.model_validate(p) for p in rows]

    def update_model_status(self, version_id: str, status: ModelStatus | str) -> None:
        """Set a model version's status (candidate / champion / retired)."""
        try:
            value = ModelStatus(status)
        except ValueError:
            allowed = [v.value for v in ModelStatus]
            raise InputError(f"model status {status!r} is not one of {allowed}") from None
        mv = self.get_model_version(version_id).model_copy(update={"status": value})
        t = s.model_versions
        with self._write() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.id == version_id)
                .values(status=value.value, payload=mv.model_dump(mode="json"))
            )

    def set_alias(self, alias: str, version_id: str, *, actor: str, reason: str = "") -> None:
        """Point ``alias`` (e.g. ``champion``) at a registered version, recording history."""
        t = s.aliases
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                key = int.from_bytes(hashlib.sha256(f"alias:{alias}".encode()).digest()[:7], "big")
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            exists = conn.execute(
                sa.select(s.model_versions.c.id).where(s.model_versions.c.id == version_id)
            ).first()
            if exists is None:
                raise NotFoundError(
                    f"cannot point alias {alias!r} at {version_id!r}: no such model version; "
                    f"register it first (Store.save_model_version / Registry.register)"
                )
            previous = conn.execute(
                sa.select(t.c.version_id)
                .where(t.c.alias == alias)
                .order_by(t.c.seq.desc())
                .limit(1)
            ).scalar()
            conn.execute(
                sa.insert(t).values(
                    alias=alias,
                    version_id=version_id,
                    previous=previous,
                    actor=actor,
                    reason=reason,
                    at=utcnow(),
                )
            )

    def get_alias(self, alias: str) -> str | None:
        """The version an alias points at now (``None`` when never set)."""
        t = s.aliases
        with self._read() as conn:
            value: str | None = conn.execute(
                sa.select(t.c.version_id)
                .where(t.c.alias == alias)
                .order_by(t.c.seq.desc())
                .limit(1)
            ).scalar()
        return value

    def alias_history(self, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes, oldest first (all aliases, or one)."""
        t = s.aliases
        query = sa.select(t).order_by(t.c.seq)
        if alias is not None:
            query = query.where(t.c.alias == alias)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AliasEvent(
                alias=r["alias"],
                version_id=r["version_id"],
                previous=r["previous"],
                actor=r["actor"],
                reason=r["reason"],
                at=r["at"],
            )
            for r in rows
        ]

    # -- attempts and evaluation runs ------------------------------------------------------------

    def save_attempt(self, attempt: Attempt) -> None:
        """Store an attempt; saving the same id again replaces it (e.g. once its verdict is in)."""
        t = s.attempts
        row = {
            "id": attempt.id,
            "kind": attempt.kind.value,
            "created_at": attempt.created_at,
            "payload": attempt.model_dump(mode="json"),
        }
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "kind": stmt.excluded.kind,
                "created_at": stmt.excluded.created_at,
                "payload": stmt.excluded.payload,
            },
        )
        with self._write() as conn:
            conn.execute(stmt, row)

    def attempts(self, kind: str | None = None) -> list[Attempt]:
        """Attempts, oldest first (optionally of one kind)."""
        t = s.attempts
        query = sa.select(t.c.payload).order_by(t.c.created_at, t.c.id)
        if kind is not None:
            query = query.where(t.c.kind == str(kind))
        with self._read() as conn:
            return [Attempt.model_validate(p) for p in conn.execute(query).scalars()]

    def save_eval_run(self, run: EvalRun) -> None:
        """Store an evaluation run (immutable: the same id with other content is an error)."""
        payload = run.model_dump_json()
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        t = s.eval_runs
        row = {
            "id": run.id,
            "model_version": run.model_version,
            "suite_hash": run.suite_hash,
            "created_at": run.created_at,
            "payload": payload,
            "record_hash": digest,
        }
        with self._write() as conn:
            stmt = self._insert(t).on_conflict_do_nothing(index_elements=["id"]).returning(t.c.id)
            if conn.execute(stmt, row).first() is not None:
                return
            stored = conn.execute(sa.select(t.c.record_hash).where(t.c.id == run.id)).scalar()
            if stored != digest:
                raise InputError(
                    f"evaluation run {run.id!r} is already stored with different "
                    f"content; runs are immutable, save the new one under a new id"
                )

    def get_eval_run(self, run_id: str) -> EvalRun:
        """One evaluation run; :class:`NotFoundError` when absent."""
        t = s.eval_runs
        with self._read() as conn:
            payload = conn.execute(sa.select(t.c.payload).where(t.c.id == run_id)).scalar()
        if payload is None:
            raise NotFoundError(f"no evaluation run {run_id!r}")
        return EvalRun.model_validate_json(payload)

    def eval_runs(
        self, model_version: str | None = None, suite_hash: str | None = None
    ) -> list[EvalRun]:
        """Evaluation runs, oldest first, optionally filtered."""
        t = s.eval_runs
        query = sa.select(t.c.payload).order_by(t.c.created_at, t.c.id)
        if model_version is not None:
            query = query.where(t.c.model_version == model_version)
        if suite_hash is not None:
            query = query.where(t.c.suite_hash == suite_hash)
        with self._read() as conn:
            return [EvalRun.model_validate_json(p) for p in conn.execute(query).scalars()]

    # -- generic documents and audit ---------------------------------------------------------------

    def put(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        """Upsert a JSON document under ``(kind, key)``."""
        if not isinstance(payload, dict):
            raise InputError(
                f"put({kind!r}, {key!r}): payload must be a dict, got {type(payload).__name__}"
            )
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"put({kind!r}, {key!r}): payload is not JSON-serializable: {exc}"
            ) from exc
        t = s.documents
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={"payload": stmt.excluded.payload, "updated_at": stmt.excluded.updated_at},
        )
        with self._write() as conn:
            conn.execute(
                stmt, {"kind": kind, "key": key, "payload": payload, "updated_at": utcnow()}
            )

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The document under ``(kind, key)``, or ``None``."""
        t = s.documents
        with self._read() as conn:
            value: dict[str, Any] | None = conn.execute(
                sa.select(t.c.payload).where(t.c.kind == kind, t.c.key == key)
            ).scalar()
        return value

    def list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Every ``(key, payload)`` of one kind, ordered by key."""
        t = s.documents
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.c.key, t.c.payload).where(t.c.kind == kind).order_by(t.c.key)
            ).all()
        return [(r.key, r.payload) for r in rows]

    def delete(self, kind: str, key: str) -> bool:
        """Delete a document; ``True`` when one was deleted."""
        t = s.documents
        with self._write() as conn:
            res = conn.execute(sa.delete(t).where(t.c.kind == kind, t.c.key == key))
        return bool(res.rowcount)

    def audit(self, action: str, actor: str, details: dict[str, Any]) -> None:
        """Append an audit entry (promotions, rollbacks, reviews, ...)."""
        with self._write() as conn:
            conn.execute(
                sa.insert(s.audit).values(action=action, actor=actor, details=details, at=utcnow())
            )

    def audit_log(self, action: str | None = None) -> builtins.list[dict[str, Any]]:
        """Audit entries, oldest first: dicts with seq, action, actor, details, at."""
        t = s.audit
        query = sa.select(t).order_by(t.c.seq)
        if action is not None:
            query = query.where(t.c.action == action)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def _show(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    more = len(ids) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")
