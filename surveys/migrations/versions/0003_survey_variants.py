"""the kind of course a stored survey definition's variant is for

Revision ID: 0003_survey_variants
Revises: 0003_delivery
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_survey_variants"
down_revision = "0003_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("survey_definition_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("course_type", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("survey_definition_version", schema=None) as batch_op:
        batch_op.drop_column("course_type")
