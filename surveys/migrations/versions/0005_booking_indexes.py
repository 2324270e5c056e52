"""two booking indexes no query uses: every write of a booking kept them up to date

ix_booking_session_id repeats the first column of ix_booking_session_status, which answers
every lookup by session; planned_version is only ever compared with ``!=``, which no index
serves.

Revision ID: 0005_booking_indexes
Revises: 0004_trainer_stage
"""

from __future__ import annotations

from alembic import op

revision = "0005_booking_indexes"
down_revision = "0004_trainer_stage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_booking_session_id", table_name="booking")
    op.drop_index("ix_booking_planned_version", table_name="booking")


def downgrade() -> None:
    op.create_index("ix_booking_planned_version", "booking", ["planned_version"])
    op.create_index("ix_booking_session_id", "booking", ["session_id"])
