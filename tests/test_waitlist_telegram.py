"""A place offer in Telegram: the message and its Accept button, through the fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.channels.registry import build_channels
from bot.dispatcher import deliver_due
from bot.web.security import form_token
from schedules.cancellation import cancel_booking
from schedules.offers import find_offer
from schedules.policy import load_policy
from schedules.tick import tick
from surveys.models import Booking, BookingStatus, Channel
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import telegram_settings
from tests.test_cancellation import client_at

WEN_CHAT = 5_000_077
IN_TIME = utc("2026-03-12 12:00")
POLICY = load_policy({})


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        server.user(WEN_CHAT, "Wen")
        yield server


def test_wen_is_offered_the_place_in_telegram_and_accepts_with_its_button(
    world, session: Session, engine, database_url, fake: FakeTelegram, tmp_path
):
    settings = telegram_settings(
        database_url,
        fake,
        mail_dir=tmp_path / "mail",
        public_url="http://testserver",
        admin_email="training@partnership.example",
    )
    people = world.standard()
    wen = world.person("Wen Li", "wen@riverside.example", people["riverside"])
    wen.telegram_chat_id = WEN_CHAT
    wen.preferred_channel = Channel.TELEGRAM
    world.booking(people["session"], wen, people["bob"], "BK-W1", status=BookingStatus.WAITING)
    session.commit()
    cancel_booking(
        session,
        session.get(Booking, people["alice_booking"].id),  # type: ignore[arg-type]
        now=IN_TIME,
        policy=POLICY,
        zone=settings.zone,
        secret=settings.secret,
        actor="test",
    )
    session.commit()
    tick(engine, now=IN_TIME, policy=POLICY, zone=settings.zone, secret=settings.secret)

    async def deliver() -> None:
        channels = build_channels(settings)
        try:
            # Two messages to one chat: Telegram's one a second to a chat spaces them.
            for second in range(3):
                await deliver_due(
                    engine, settings, channels, now=IN_TIME + timedelta(seconds=second)
                )
        finally:
            for channel in channels.values():
                await channel.close()

    asyncio.run(deliver())
    sent = fake.sent(WEN_CHAT)
    texts = [message.text for message in sent]
    assert any(text.startswith("Waiting list: Working Together") for text in texts), texts
    [offer] = [m for m in sent if m.text.startswith("A place for you")]
    assert "Accept it by 11:59 on Friday 13 March 2026" in offer.text
    [(label, url)] = offer.buttons
    assert label == "Accept the place" and url.startswith("http://testserver/offer/")

    path = url.removeprefix("http://testserver")
    client = client_at(settings, engine, IN_TIME + timedelta(minutes=10))
    page = client.get(path)
    assert page.status_code == 200 and "Accept the place" in page.text
    found = find_offer(session, path.removeprefix("/offer/"))
    assert found is not None
    accepted = client.post(
        path,
        data={"csrf": form_token(settings.secret, f"offer:{found.offer.id}")},
        headers={"Origin": "http://testserver"},
    )
    assert accepted.status_code == 200 and "The place is yours" in accepted.text
    session.expire_all()
    booking = session.exec(select(Booking).where(Booking.ref == "BK-W1")).one()
    assert booking.status == BookingStatus.BOOKED
