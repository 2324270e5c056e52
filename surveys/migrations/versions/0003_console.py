"""the staff console: staff members, their sign-in links and sessions; bookings by status

Revision ID: 0003_console
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import surveys.models

revision = "0003_console"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", surveys.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_member_email"), ["email"], unique=True)

    op.create_table(
        "staff_sign_in",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", surveys.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", surveys.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", surveys.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("staff_sign_in", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_sign_in_staff_id"), ["staff_id"], unique=False)

    op.create_table(
        "staff_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", surveys.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", surveys.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", surveys.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_member.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("staff_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_session_staff_id"), ["staff_id"], unique=False)


    # The console counts each session's bookings by status from this index alone.
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.create_index("ix_booking_session_status", ["session_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_session_status")
    op.drop_table("staff_session")
    op.drop_table("staff_sign_in")
    op.drop_table("staff_member")
