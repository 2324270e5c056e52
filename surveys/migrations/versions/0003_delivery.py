"""delivery: channel pauses seen by every worker; the provider's id of a sent message;
text messages: a person's number refused or their choice of email only

Revision ID: 0003_delivery
Revises: 0003_waitlist
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from surveys.models import UTCDateTime

revision = "0003_delivery"
down_revision = "0003_waitlist"
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
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_id", sa.String(length=100), nullable=True))
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sms_status", sa.String(length=20), nullable=False, server_default="ok")
        )
        batch_op.add_column(sa.Column("sms_status_reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("sms_opt_out", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_column("sms_opt_out")
        batch_op.drop_column("sms_status_reason")
        batch_op.drop_column("sms_status")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("provider_id")
    op.drop_table("channel_pause")
