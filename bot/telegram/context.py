"""What every Telegram handler shares: settings, the database, the clock and who is asking.

The handlers keep no state of their own: each update opens a database transaction, reads what
it needs, writes what changed and commits, so a restarted bot (or another worker behind a
webhook) carries on exactly where the chat was.

Updates that arrive together hand their database work to the worker thread together
(``Services.run``): one hop for the batch, run in the order the handlers asked, each update's
writes its own (on PostgreSQL one transaction for the batch, each update behind a savepoint of
its own; on SQLite a transaction for each), so one update's error is its own and a chat's
updates stay in turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
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
# a transaction waiting for the worker thread, and the future its handler awaits
Queued = tuple[Callable[[Session], Any], "asyncio.Future[Any]"]


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
    # Transactions waiting for the worker thread, and the task handing them over in batches:
    # one at a time, which also keeps SQLite's transactions in turn (SQLite refuses, rather than
    # waits for, a transaction that read before another's write).
    _queued: list[Queued] = field(init=False, default_factory=list)
    _drainer: asyncio.Task[None] | None = field(init=False, default=None)
    _taken: list[asyncio.Future[None]] = field(init=False, default_factory=list)  # caught_up
    batches: int = field(init=False, default=0)  # hand-overs to the worker thread, for the bench

    def __post_init__(self) -> None:
        self.policy = load_policy(self.settings.policy)

    def now(self) -> datetime:
        return self.clock()

    @property
    def directory(self) -> Path | None:
        """Where the partnership keeps its own survey definitions, if anywhere."""
        return self.settings.survey_definitions_dir

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction: committed when it returns, rolled back if it raises.

        On the worker thread, work asked for while a batch is there waits and goes with the
        next batch, whose pieces run in the order they were asked for (``_batch``).
        """
        if not self.in_thread:
            return self._transaction(work)  # no await: nothing else runs meanwhile
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queued.append((work, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain(), name="telegram-database")
        return await future

    async def caught_up(self) -> None:
        """Wait until no database work waits for the worker thread (some may be running there).

        The poller waits for this before asking for more updates: those that arrive while a
        batch is on the thread then come in one ``getUpdates`` and go to the thread together,
        and the thread never waits for a poll to come back.
        """
        while self._queued and self._drainer is not None:
            taken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._taken.append(taken)
            await taken

    async def _drain(self) -> None:
        batch: list[Queued] = []
        try:
            while self._queued:
                # Let the handlers of updates that arrived together ask for their work too.
                await asyncio.sleep(0)
                # (a handler cancelled while it waited has no use for its work)
                batch = [queued for queued in self._queued if not queued[1].cancelled()]
                self._queued = []
                self._wake_pollers()
                if not batch:
                    continue
                self.batches += 1
                outcomes = await asyncio.to_thread(self._batch, [work for work, _ in batch])
                for (_, future), (value, error) in zip(batch, outcomes, strict=True):
                    if future.cancelled():
                        continue
                    if error is None:
                        future.set_result(value)
                    else:
                        future.set_exception(error)
                batch = []
        except BaseException:
            for _, future in batch + self._queued:
                future.cancel()
            self._queued = []
            raise
        finally:
            self._drainer = None
            self._wake_pollers()

    def _wake_pollers(self) -> None:
        for taken in self._taken:
            if not taken.done():
                taken.set_result(None)
        self._taken = []

    def _batch(
        self, works: list[Callable[[Session], Any]]
    ) -> list[tuple[Any, BaseException | None]]:
        """Run the pieces of work in turn; one's failure rolls back its own writes only.

        On PostgreSQL the batch is one transaction, each piece behind a savepoint of its own,
        committed once: a commit waits for the write-ahead log to reach the disk, a savepoint
        does not (the answering benchmark's database work, measured once: 13% less CPU and 40%
        less time). If that commit fails, nothing of the batch is stored and every piece fails
        with its error. On SQLite each piece is a transaction of its own: its commit costs
        little, and a batch's transaction would hold the database's one write lock (which the
        web app and the dispatcher wait for) while every piece of the batch ran."""
        if len(works) == 1 or self.engine.dialect.name == "sqlite":
            return [self._alone(work) for work in works]
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            with self.engine.connect() as connection, connection.begin():
                for work in works:
                    outcomes.append(_piece(connection, work))
        except Exception as exc:
            return [(None, exc)] * len(works)
        return outcomes

    def _alone(self, work: Callable[[Session], Any]) -> tuple[Any, BaseException | None]:
        try:
            return self._transaction(work), None
        except Exception as exc:
            return None, exc

    def _transaction(self, work: Callable[[Session], T]) -> T:
        with session_scope(self.engine) as session:
            return work(session)

    def is_admin(self, chat_id: int) -> bool:
        return chat_id in self.settings.telegram_admins

    def is_trainer(self, chat_id: int) -> bool:
        return chat_id in self.settings.telegram_trainers or self.is_admin(chat_id)


def _piece(connection: Connection, work: Callable[[Session], Any]) -> tuple[Any, Exception | None]:
    """One piece of a batch, in its own session behind a savepoint of the batch's transaction.

    The savepoint is the connection's, which the session joins without owning: neither its
    flush nor its closing ends the batch, and when a flush fails the session rolls back this
    savepoint only. (A session making savepoints of its own, ``create_savepoint``, measured
    slower than a transaction an update.)"""
    savepoint = connection.begin_nested()
    try:
        with Session(
            connection, join_transaction_mode="rollback_only", expire_on_commit=False
        ) as session:
            value = work(session)
            session.flush()
    except Exception as exc:
        if savepoint.is_active:
            savepoint.rollback()
        return None, exc
    savepoint.commit()
    return value, None


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
