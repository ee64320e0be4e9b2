"""The store's tables (SQLAlchemy 2 Core) and the timezone-aware UTC timestamp type.

The Alembic revisions in ``tunegate/migrations/versions`` create exactly these tables;
``tests/test_store.py`` checks that the migrated database and this metadata agree.

Every record table carries ``record_hash``: SHA-256 over the record's identity fields (see
:mod:`tunegate.store._hashing`), which is how an add tells "already there" from "same id,
different content".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "TABLES",
    "UTCDateTime",
    "aliases",
    "attempts",
    "audit",
    "decisions",
    "documents",
    "eval_runs",
    "examples",
    "kb_chunks",
    "kb_embeddings",
    "kb_versions",
    "llm_responses",
    "metadata",
    "model_versions",
    "overrides",
    "queue_claims",
    "suites",
    "tickets",
]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC in and out, on SQLite and PostgreSQL alike.

    Naive values are taken to be UTC. SQLite stores naive UTC text (which sorts correctly);
    PostgreSQL stores ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if stamp.tzinfo is None:
            return stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_ID = sa.String(128)
_HASH = sa.String(64)

tickets = sa.Table(
    "tickets",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("record_hash", _HASH, nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("ticket_id", _ID, nullable=False, index=True),
    sa.Column("model_version", _ID, nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("probabilities", sa.JSON, nullable=False),
    sa.Column("h_norm", sa.Float, nullable=False),
    sa.Column("route", sa.String(16), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("rule_hits", sa.JSON, nullable=False),
    sa.Column("shadow", sa.Boolean, nullable=False),
    sa.Column("record_hash", _HASH, nullable=False),
)

overrides = sa.Table(
    "overrides",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("ticket_id", _ID, nullable=False, index=True),
    sa.Column("decision_id", _ID, nullable=True),
    sa.Column("model_label", sa.String(200), nullable=True),
    sa.Column("final_label", sa.String(200), nullable=False),
    sa.Column("reason_code", sa.String(8), nullable=False, index=True),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("analyst", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
    sa.Column("review_status", sa.String(16), nullable=False, index=True),
    sa.Column("reviewer", sa.String(200), nullable=True),
    sa.Column("record_hash", _HASH, nullable=False),
)

queue_claims = sa.Table(
    "queue_claims",
    metadata,
    sa.Column("decision_id", _ID, primary_key=True),
    sa.Column("analyst", sa.String(200), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)
"""Review-queue leases (:mod:`tunegate.store._claims`): a waiting decision is handed to the
analyst of its row until ``expires_at``; a row past it is free to be claimed again."""

examples = sa.Table(
    "examples",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("label", sa.String(200), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False, index=True),
    sa.Column("reviewer", sa.String(200), nullable=True),
    sa.Column("review_status", sa.String(16), nullable=False, index=True),
    sa.Column("slice_tags", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("ticket_id", _ID, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("text_hash", _HASH, nullable=False, index=True),
    sa.Column("record_hash", _HASH, nullable=False),
)

suites = sa.Table(
    "suites",
    metadata,
    sa.Column("hash", _HASH, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("n_examples", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("parent", _ID, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("record_hash", _HASH, nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("alias", sa.String(100), nullable=False, index=True),
    sa.Column("version_id", _ID, sa.ForeignKey("model_versions.id"), nullable=False),
    sa.Column("previous", _ID, nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
)

eval_runs = sa.Table(
    "eval_runs",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("model_version", _ID, nullable=False, index=True),
    sa.Column("suite_hash", _HASH, nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("record_hash", _HASH, nullable=False),
)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("kind", sa.String(100), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("action", sa.String(100), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

llm_responses = sa.Table(
    "llm_responses",
    metadata,
    sa.Column("key", _HASH, primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("prompt_hash", _HASH, nullable=False, index=True),
    sa.Column("text_hash", _HASH, nullable=False, index=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
"""The LLM response cache (:mod:`tunegate.store._llm_cache`): one row per request, keyed by
a hash of (model, prompt hash, text hash, request parameters)."""

kb_versions = sa.Table(
    "kb_versions",
    metadata,
    sa.Column("doc_id", _ID, primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("effective_from", UTCDateTime, nullable=False, index=True),
    sa.Column("effective_to", UTCDateTime, nullable=True),
    sa.Column("superseded_at", UTCDateTime, nullable=True),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("content_hash", _HASH, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at", UTCDateTime, nullable=False),
)
"""Knowledge-base document versions (:mod:`tunegate.store._kb`): ``effective_to`` is the end
the source gave (a withdrawal), ``superseded_at`` the start of the next version (computed)."""

kb_chunks = sa.Table(
    "kb_chunks",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("doc_id", _ID, nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("chunking", sa.String(64), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("heading", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(
        ["doc_id", "version"],
        ["kb_versions.doc_id", "kb_versions.version"],
        name="fk_kb_chunks_doc_id_kb_versions",
    ),
    sa.UniqueConstraint("doc_id", "version", "chunking", "position"),
)
"""The chunks of each version under one chunking (``words:SIZE:OVERLAP``)."""

kb_embeddings = sa.Table(
    "kb_embeddings",
    metadata,
    sa.Column("chunk_id", sa.Integer, sa.ForeignKey("kb_chunks.id"), primary_key=True),
    sa.Column("encoder", sa.String(200), primary_key=True),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)
"""One embedding per chunk and encoder: ``dim`` little-endian float32 values, unit norm."""

TABLES: dict[str, sa.Table] = {t.name: t for t in metadata.sorted_tables}
