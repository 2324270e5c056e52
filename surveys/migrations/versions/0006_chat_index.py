"""a person's Telegram chat is unique among those who have one

The table-wide constraint kept an entry for every person without a chat, written with each new
person; the partial index holds only those who have one, and refuses a chat given twice as the
constraint did.

Revision ID: 0006_chat_index
Revises: 0005_booking_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_chat_index"
down_revision = "0005_booking_indexes"
branch_labels = None
depends_on = None

# SQLite names the table's unnamed unique constraint by this convention while rebuilding it.
_UNIQUE = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_HAS_CHAT = sa.text("telegram_chat_id IS NOT NULL")


def upgrade() -> None:
    unique = _chat_constraint()
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("person", recreate="always", naming_convention=_UNIQUE) as batch:
            batch.drop_constraint(unique, type_="unique")
    else:
        op.drop_constraint(unique, "person", type_="unique")
    op.create_index(
        "ix_person_telegram_chat_id",
        "person",
        ["telegram_chat_id"],
        unique=True,
        sqlite_where=_HAS_CHAT,
        postgresql_where=_HAS_CHAT,
    )


def _chat_constraint() -> str:
    """The unique constraint on the chat, by its name (a downgrade gives it one)."""
    for found in sa.inspect(op.get_bind()).get_unique_constraints("person"):
        if found["column_names"] == ["telegram_chat_id"]:
            return found["name"] or "uq_person_telegram_chat_id"  # named by _UNIQUE
    raise RuntimeError("person.telegram_chat_id has no unique constraint to replace")


def downgrade() -> None:
    op.drop_index("ix_person_telegram_chat_id", table_name="person")
    with op.batch_alter_table("person") as batch:
        batch.create_unique_constraint("person_telegram_chat_id_key", ["telegram_chat_id"])
