"""the waiting list: freed places, their offers, and the under-filled check

Revision ID: 0003_waitlist
Revises: 0003_console
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from surveys.models import UTCDateTime

revision = "0003_waitlist"
down_revision = "0003_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("course_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("places_checked_at", UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "vacancy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("freed_booking_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("opens_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("filled_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["course_session.id"]),
        sa.ForeignKeyConstraint(["freed_booking_id"], ["booking.id"]),
        sa.ForeignKeyConstraint(["filled_by_id"], ["booking.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("freed_booking_id"),
    )
    op.create_index("ix_vacancy_session_id", "vacancy", ["session_id"])
    op.create_index("ix_vacancy_state", "vacancy", ["state"])
    op.create_table(
        "place_offer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vacancy_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("offered_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["vacancy_id"], ["vacancy.id"]),
        sa.ForeignKeyConstraint(["booking_id"], ["booking.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("vacancy_id", "booking_id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_place_offer_vacancy_id", "place_offer", ["vacancy_id"])
    op.create_index("ix_place_offer_booking_id", "place_offer", ["booking_id"])
    op.create_index("ix_place_offer_state_expires", "place_offer", ["state", "expires_at"])


def downgrade() -> None:
    op.drop_table("place_offer")
    op.drop_table("vacancy")
    with op.batch_alter_table("course_session", schema=None) as batch_op:
        batch_op.drop_column("places_checked_at")
