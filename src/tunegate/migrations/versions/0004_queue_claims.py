"""Review-queue leases: one row per waiting decision handed to an analyst, with its expiry
(docs/service.md, "The review queue with several workers").

Revision ID: 0004_queue_claims
Revises: 0003_kb
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tunegate.store._schema import UTCDateTime

revision = "0004_queue_claims"
down_revision = "0003_kb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_claims",
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("analyst", sa.String(200), nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name="pk_queue_claims"),
    )
    op.create_index("ix_queue_claims_expires_at", "queue_claims", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_queue_claims_expires_at", table_name="queue_claims")
    op.drop_table("queue_claims")
