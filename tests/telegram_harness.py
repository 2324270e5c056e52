"""What the Telegram tests share: a clock to move, the bot running against the fake Bot API,
deep links, open invitations, and a ``Phone``: one person's Telegram client.

The bot is the real one (``bot.telegram.runtime.TelegramService``) built on the real
python-telegram-bot client, which reaches ``tests.fake_telegram.FakeTelegram`` on loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.links import telegram_subject
from bot.settings import Settings, load_settings
from bot.telegram.runtime import TelegramService
from surveys import tokens
from surveys.models import (
    Booking,
    InvitationStatus,
    LinkPurpose,
    Person,
    Stage,
    SurveyInvitation,
)
from tests.fake_telegram import Call, FakeTelegram


class Clock:
    """The bot's idea of now; tests move it instead of sleeping."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def telegram_settings(database_url: str, fake: FakeTelegram, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "telegram_token": fake.token,
        "telegram_api_url": fake.api_url,
        "telegram_bot_username": fake.username,
        "partnership_name": "Riverside & District <Safeguarding> Partnership",
        **extra,
    }
    return load_settings(**values)


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, engine: Engine, clock: Clock, **extra: Any
) -> AsyncIterator[TelegramService]:
    """The bot as ``evalbot run`` starts it (polling unless the settings say webhook)."""
    service = TelegramService(settings, engine, clock=clock, **extra)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def deep_link_token(session: Session, settings: Settings, person: Person) -> str:
    """The ``start`` token of the person's current deep link, recorded as planning does."""
    assert person.id is not None
    token = tokens.issue(
        session,
        settings.secret,
        LinkPurpose.TELEGRAM,
        subject=telegram_subject(person.id, person.telegram_link_generation),
        person_id=person.id,
    )
    session.commit()
    return token


def open_invitation(
    session: Session,
    booking: Booking,
    stage: Stage,
    now: datetime,
    *,
    person: Person | None = None,
    days: int = 14,
) -> SurveyInvitation:
    """An invitation that opened an hour before ``now``, as the tick leaves it."""
    invitation = SurveyInvitation(
        booking_id=booking.id,  # type: ignore[arg-type]
        person_id=person.id if person else booking.delegate_id,  # type: ignore[arg-type]
        stage=stage,
        opens_at=now - timedelta(hours=1),
        closes_at=now + timedelta(days=days),
        status=InvitationStatus.OPEN,
    )
    session.add(invitation)
    session.commit()
    return invitation


@dataclass
class Phone:
    """One person's Telegram client talking to the bot through the fake server."""

    fake: FakeTelegram
    chat_id: int
    first_name: str

    def __post_init__(self) -> None:
        self.fake.user(self.chat_id, self.first_name)

    async def send(self, text: str, *, replies: int = 1) -> list[Call]:
        """Type ``text`` and wait for the bot's ``replies`` messages."""
        mark = self.fake.mark()
        self.fake.say(self.chat_id, text)
        return await self.wait_messages(mark, replies)

    async def wait_messages(self, mark: int, count: int) -> list[Call]:
        def found() -> list[Call] | None:
            calls = [
                c
                for c in self.fake.since(mark)
                if c.method in ("sendMessage", "editMessageText") and c.chat_id == self.chat_id
            ]
            return calls if len(calls) >= count else None

        result: list[Call] = await self.fake.wait_for(found)
        return result

    async def tap(self, label: str, *, message_id: int | None = None) -> Tapped:
        """Tap a button and wait until the bot has answered the tap (it answers last)."""
        mark = self.fake.mark()
        query = self.fake.tap(self.chat_id, label, message_id=message_id)
        answer = await self.fake.answered(query)
        shown = [
            c
            for c in self.fake.since(mark)
            if c.method in ("sendMessage", "editMessageText") and c.chat_id == self.chat_id
        ]
        return Tapped(answer, shown)

    def screen(self) -> tuple[int, str, list[str]]:
        """The bot's newest message: id, text, and button labels."""
        message_id, text, buttons = self.fake.last_message(self.chat_id)
        return message_id, text, [label for label, _ in buttons]


@dataclass
class Tapped:
    answer: Call  # the answerCallbackQuery
    shown: list[Call]  # messages sent or edited because of the tap

    @property
    def toast(self) -> str:
        return str(self.answer.params.get("text") or "")

    @property
    def text(self) -> str:
        return self.shown[-1].text if self.shown else ""
