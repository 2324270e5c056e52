"""channel pauses: a delivery channel stopped by a fault of its own, seen by every worker

Revision ID: 0003_delivery
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from surveys.models import UTCDateTime

revision = "0003_delivery"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_pause",
        sa.Column("channel", sa.String(length=20), primary_key=True),
        sa.Column("paused_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("resumed_at", UTCDateTime(), nullable=True),
        sa.Column("resumed_by", sa.String(length=200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("channel_pause")
