"""The one piece of chat state: which question of which invitation is on screen in a chat (a row
of ``telegram_chat``), so that a typed reply answers it and its buttons stay live. Written with
one statement each, not an ORM load and flush, and mirrored into an object already loaded."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import bindparam
from sqlalchemy import update as sa_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session, col

from surveys.models import SurveyInvitation, TelegramChat


def remember(
    session: Session,
    chat: int,
    invitation: SurveyInvitation,
    key: str | None,
    message_id: int | None,
    now: datetime,
) -> None:
    """Note the question on screen, so a typed reply answers it and its buttons stay live.

    One INSERT ... ON CONFLICT statement (SQLite and PostgreSQL alike), not an ORM flush."""
    values = {
        "chat_id": chat,
        "invitation_id": invitation.id,
        "question_key": key,
        "message_id": message_id,
        "updated_at": now,
    }
    connection = session.connection()
    connection.execute(_remember_statement(connection.dialect.name), values)
    loaded = session.identity_map.get(identity_key(TelegramChat, chat))
    if loaded is not None:
        for name, value in values.items():
            set_committed_value(loaded, name, value)


@cache
def _remember_statement(dialect: str) -> Insert:
    table = TelegramChat.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    changed = ("invitation_id", "question_key", "message_id", "updated_at")
    return statement.on_conflict_do_update(
        index_elements=["chat_id"], set_={name: statement.excluded[name] for name in changed}
    )


def forget(session: Session, chat: int) -> None:
    """Nothing on screen to answer any more (one UPDATE statement, not an ORM load and flush)."""
    session.connection().execute(_FORGET, {"chat": chat})
    loaded = session.identity_map.get(identity_key(TelegramChat, chat))
    if loaded is not None:
        for name in ("invitation_id", "question_key", "message_id"):
            set_committed_value(loaded, name, None)


_FORGET = (
    sa_update(TelegramChat)
    .where(col(TelegramChat.chat_id) == bindparam("chat"))
    .values(invitation_id=None, question_key=None, message_id=None)
)
