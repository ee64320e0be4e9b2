"""Initial schema: every table of tunegate's store.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tunegate.store._schema import UTCDateTime

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(128)
_HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", _ID, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("record_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])

    op.create_table(
        "decisions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("model_version", _ID, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("h_norm", sa.Float, nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("rule_hits", sa.JSON, nullable=False),
        sa.Column("shadow", sa.Boolean, nullable=False),
        sa.Column("record_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_ticket_id", "decisions", ["ticket_id"])
    op.create_index("ix_decisions_model_version", "decisions", ["model_version"])
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])

    op.create_table(
        "overrides",
        sa.Column("id", _ID, nullable=False),
        sa.Column("ticket_id", _ID, nullable=False),
        sa.Column("decision_id", _ID, nullable=True),
        sa.Column("model_label", sa.String(200), nullable=True),
        sa.Column("final_label", sa.String(200), nullable=False),
        sa.Column("reason_code", sa.String(8), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("analyst", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("review_status", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("record_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_overrides"),
    )
    op.create_index("ix_overrides_ticket_id", "overrides", ["ticket_id"])
    op.create_index("ix_overrides_reason_code", "overrides", ["reason_code"])
    op.create_index("ix_overrides_created_at", "overrides", ["created_at"])
    op.create_index("ix_overrides_review_status", "overrides", ["review_status"])

    op.create_table(
        "examples",
        sa.Column("id", _ID, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("review_status", sa.String(16), nullable=False),
        sa.Column("slice_tags", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("ticket_id", _ID, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("text_hash", _HASH, nullable=False),
        sa.Column("record_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_examples"),
    )
    op.create_index("ix_examples_label", "examples", ["label"])
    op.create_index("ix_examples_source", "examples", ["source"])
    op.create_index("ix_examples_review_status", "examples", ["review_status"])
    op.create_index("ix_examples_text_hash", "examples", ["text_hash"])

    op.create_table(
        "suites",
        sa.Column("hash", _HASH, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("n_examples", sa.Integer, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_suites"),
    )
    op.create_index("ix_suites_name", "suites", ["name"])

    op.create_table(
        "model_versions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent", _ID, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("record_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
    )
    op.create_index("ix_model_versions_status", "model_versions", ["status"])

    op.create_table(
        "aliases",
        sa.Column("seq", sa.Integer, sa.Identity(), nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version_id", _ID, nullable=False),
        sa.Column("previous", _ID, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_aliases_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_aliases"),
    )
    op.create_index("ix_aliases_alias", "aliases", ["alias"])

    op.create_table(
        "attempts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
    )
    op.create_index("ix_attempts_kind", "attempts", ["kind"])

    op.create_table(
        "eval_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("model_version", _ID, nullable=False),
        sa.Column("suite_hash", _HASH, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("record_hash", _HASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_eval_runs"),
    )
    op.create_index("ix_eval_runs_model_version", "eval_runs", ["model_version"])
    op.create_index("ix_eval_runs_suite_hash", "eval_runs", ["suite_hash"])

    op.create_table(
        "documents",
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_documents"),
    )

    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer, sa.Identity(), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit"),
    )
    op.create_index("ix_audit_action", "audit", ["action"])


def downgrade() -> None:
    for table in (
        "audit",
        "documents",
        "eval_runs",
        "attempts",
        "aliases",
        "model_versions",
        "suites",
        "examples",
        "overrides",
        "decisions",
        "tickets",
    ):
        op.drop_table(table)
