"""The LLM response cache: one row per Chat Completions request, with its tokens, cost and
latency (docs/models.md#llms).

Revision ID: 0002_llm_responses
Revises: 0001_initial
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tunegate.store._schema import UTCDateTime

revision = "0002_llm_responses"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "llm_responses",
        sa.Column("key", _HASH, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_hash", _HASH, nullable=False),
        sa.Column("text_hash", _HASH, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_llm_responses"),
    )
    op.create_index("ix_llm_responses_prompt_hash", "llm_responses", ["prompt_hash"])
    op.create_index("ix_llm_responses_text_hash", "llm_responses", ["text_hash"])


def downgrade() -> None:
    op.drop_index("ix_llm_responses_text_hash", table_name="llm_responses")
    op.drop_index("ix_llm_responses_prompt_hash", table_name="llm_responses")
    op.drop_table("llm_responses")
