"""the trainer's report: an invitation may belong to a session rather than a booking

Revision ID: 0004_trainer_stage
Revises: 0003_survey_variants
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_trainer_stage"
down_revision = "0003_survey_variants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("survey_invitation", schema=None) as batch_op:
        batch_op.alter_column("booking_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("session_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_survey_invitation_session_id", "course_session", ["session_id"], ["id"]
        )
        batch_op.create_index("ix_survey_invitation_session_id", ["session_id"], unique=False)
        batch_op.create_unique_constraint(
            "uq_survey_invitation_session_id_stage", ["session_id", "stage"]
        )
        batch_op.create_check_constraint(
            "ck_invitation_booking_or_session", "(booking_id IS NULL) <> (session_id IS NULL)"
        )


def downgrade() -> None:
    # The trainers' reports have no booking: they cannot be kept in the older schema.
    op.execute(
        "DELETE FROM answer WHERE invitation_id IN "
        "(SELECT id FROM survey_invitation WHERE session_id IS NOT NULL)"
    )
    for table in ("outbox", "link"):
        op.execute(
            f"UPDATE {table} SET invitation_id = NULL WHERE invitation_id IN "
            "(SELECT id FROM survey_invitation WHERE session_id IS NOT NULL)"
        )
    op.execute(
        "UPDATE telegram_chat SET invitation_id = NULL, question_key = NULL "
        "WHERE invitation_id IN (SELECT id FROM survey_invitation WHERE session_id IS NOT NULL)"
    )
    op.execute("DELETE FROM survey_invitation WHERE session_id IS NOT NULL")
    with op.batch_alter_table("survey_invitation", schema=None) as batch_op:
        batch_op.drop_constraint("ck_invitation_booking_or_session", type_="check")
        batch_op.drop_constraint("uq_survey_invitation_session_id_stage", type_="unique")
        batch_op.drop_index("ix_survey_invitation_session_id")
        batch_op.drop_constraint("fk_survey_invitation_session_id", type_="foreignkey")
        batch_op.drop_column("session_id")
        batch_op.alter_column("booking_id", existing_type=sa.Integer(), nullable=False)
