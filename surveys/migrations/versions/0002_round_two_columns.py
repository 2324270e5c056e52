"""columns the export's optional fields fill: mobile numbers, course type, joining link

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mobile", sa.String(length=20), nullable=True))
    with op.batch_alter_table("course", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "course_type",
                sa.String(length=20),
                nullable=False,
                server_default="face to face",
            )
        )
    with op.batch_alter_table("course_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("joining_link", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("course_session", schema=None) as batch_op:
        batch_op.drop_column("joining_link")
    with op.batch_alter_table("course", schema=None) as batch_op:
        batch_op.drop_column("course_type")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_column("mobile")
