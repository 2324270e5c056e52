"""What every Telegram handler shares: settings, the database, the clock and who is asking.

The handlers keep no state of their own: each update opens a database transaction, reads what
it needs, writes what changed and commits, so a restarted bot (or another worker behind a
webhook) carries on exactly where the chat was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from telegram import Update
from telegram.ext import ContextTypes

from bot.settings import Settings
from schedules.policy import Policy, load_policy
from surveys.db import session_scope
from surveys.models import Person

log = logging.getLogger("evalbot.telegram")
T = TypeVar("T")
KEY = "evalbot"


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Settings, database and clock for the handlers, kept in ``application.bot_data``."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = system_clock
    # Database work runs in a worker thread, so a slow query never stalls the web app and the
    # tick that share the event loop; the answering benchmark turns it off to measure the rest.
    in_thread: bool = True
    policy: Policy = field(init=False)
    # SQLite takes one writer at a time and refuses (rather than waits for) a transaction that
    # read before another's write: its transactions on worker threads take turns.
    _turns: asyncio.Lock | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.policy = load_policy(self.settings.policy)
        if self.engine.dialect.name == "sqlite":
            self._turns = asyncio.Lock()

    def now(self) -> datetime:
        return self.clock()

    @property
    def directory(self) -> Path | None:
        """Where the partnership keeps its own survey definitions, if anywhere."""
        return self.settings.survey_definitions_dir

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction: committed when it returns, rolled back if it raises."""
        if not self.in_thread:
            return self._transaction(work)  # no await: nothing else runs meanwhile
        if self._turns is None:
            return await asyncio.to_thread(self._transaction, work)
        async with self._turns:
            return await asyncio.to_thread(self._transaction, work)

    def _transaction(self, work: Callable[[Session], T]) -> T:
        with session_scope(self.engine) as session:
            return work(session)

    def is_admin(self, chat_id: int) -> bool:
        return chat_id in self.settings.telegram_admins

    def is_trainer(self, chat_id: int) -> bool:
        return chat_id in self.settings.telegram_trainers or self.is_admin(chat_id)


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    found: Services = context.bot_data[KEY]
    return found


def chat_id(update: Update) -> int:
    """The private chat the update came from (every handler is limited to private chats)."""
    chat = update.effective_chat
    assert chat is not None
    return chat.id


def actor(update: Update) -> str:
    """Who did it, for the audit log."""
    return f"telegram:{chat_id(update)}"


def person_for_chat(session: Session, chat: int) -> Person | None:
    """The person this chat is linked to, if any (erased people are nobody)."""
    return session.exec(
        select(Person).where(Person.telegram_chat_id == chat, col(Person.erased_at).is_(None))
    ).first()
