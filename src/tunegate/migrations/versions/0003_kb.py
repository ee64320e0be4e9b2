"""The knowledge base: document versions with effective dates, their chunks and the chunks'
embeddings (docs/knowledge-base.md).

Revision ID: 0003_kb
Revises: 0002_llm_responses
Create Date: 2025-06-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tunegate.store._schema import UTCDateTime

revision = "0003_kb"
down_revision = "0002_llm_responses"
branch_labels = None
depends_on = None

_ID = sa.String(128)
_HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "kb_versions",
        sa.Column("doc_id", _ID, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("effective_from", UTCDateTime, nullable=False),
        sa.Column("effective_to", UTCDateTime, nullable=True),
        sa.Column("superseded_at", UTCDateTime, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("content_hash", _HASH, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ingested_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("doc_id", "version", name="pk_kb_versions"),
    )
    op.create_index("ix_kb_versions_effective_from", "kb_versions", ["effective_from"])
    op.create_table(
        "kb_chunks",
        sa.Column("id", sa.Integer, sa.Identity(), nullable=False),
        sa.Column("doc_id", _ID, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("chunking", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("heading", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_chunks"),
        sa.ForeignKeyConstraint(
            ["doc_id", "version"],
            ["kb_versions.doc_id", "kb_versions.version"],
            name="fk_kb_chunks_doc_id_kb_versions",
        ),
        sa.UniqueConstraint(
            "doc_id", "version", "chunking", "position", name="uq_kb_chunks_doc_id"
        ),
    )
    op.create_index("ix_kb_chunks_chunking", "kb_chunks", ["chunking"])
    op.create_table(
        "kb_embeddings",
        sa.Column("chunk_id", sa.Integer, nullable=False),
        sa.Column("encoder", sa.String(200), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("chunk_id", "encoder", name="pk_kb_embeddings"),
        sa.ForeignKeyConstraint(
            ["chunk_id"], ["kb_chunks.id"], name="fk_kb_embeddings_chunk_id_kb_chunks"
        ),
    )


def downgrade() -> None:
    op.drop_table("kb_embeddings")
    op.drop_index("ix_kb_chunks_chunking", table_name="kb_chunks")
    op.drop_table("kb_chunks")
    op.drop_index("ix_kb_versions_effective_from", table_name="kb_versions")
    op.drop_table("kb_versions")
