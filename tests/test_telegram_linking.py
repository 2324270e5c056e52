"""Linking a Telegram chat to a person: deep links, /start, /prefer, /stop."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlmodel import select

from bot.links import render_links, telegram_subject
from surveys import outbox
from surveys.models import (
    AuditEntry,
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    Person,
)
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import Clock, Phone, deep_link_token, running_bot, telegram_settings

NOW = utc("2026-03-02 10:00")
CHLOE_CHAT = 5_000_001
STRANGER_CHAT = 5_000_099


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def tg(database_url, fake):
    return telegram_settings(database_url, fake)


async def test_deep_link_links_the_chat_and_greets_by_name(world, session, engine, fake, tg):
    people = world.standard()
    chloe: Person = people["chloe"]
    token = deep_link_token(session, tg, chloe)
    phone = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(NOW)):
        [greeting] = await phone.send(f"/start {token}")

    assert greeting.text.startswith("Hello Chloé O'Brien <Health & Care>! This chat is now linked")
    assert "Riverside & District <Safeguarding> Partnership" in greeting.text
    assert "pre-course questionnaire" in greeting.text
    assert [label for label, _ in greeting.buttons] == ["Send them here", "Keep email"]
    session.refresh(chloe)
    assert chloe.telegram_chat_id == CHLOE_CHAT
    assert chloe.telegram_link_generation == 1
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "telegram.linked")).one()


async def test_a_deep_link_works_once(world, session, engine, fake, tg):
    people = world.standard()
    token = deep_link_token(session, tg, people["chloe"])
    chloe, stranger = Phone(fake, CHLOE_CHAT, "Chloé"), Phone(fake, STRANGER_CHAT, "Mallory")
    async with running_bot(tg, engine, Clock(NOW)):
        await chloe.send(f"/start {token}")
        [refused] = await stranger.send(f"/start {token}")
        [again] = await chloe.send(f"/start {token}")
        [forged] = await stranger.send("/start AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")

    assert "already been used" in refused.text
    assert "already linked to you" in again.text
    assert "already been used" in forged.text
    session.refresh(people["chloe"])
    assert people["chloe"].telegram_chat_id == CHLOE_CHAT


async def test_prefer_telegram_then_stop_moves_waiting_messages_to_email(
    world, session, engine, fake, tg
):
    people = world.standard()
    chloe: Person = people["chloe"]
    token = deep_link_token(session, tg, chloe)
    phone = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(NOW)):
        await phone.send(f"/start {token}")
        tapped = await phone.tap("Send them here")
        assert tapped.toast == "Saved."
        assert "from now on your surveys, reminders and notices come to this chat" in tapped.text
        session.refresh(chloe)
        assert chloe.preferred_channel == Channel.TELEGRAM
        queued = outbox.enqueue(
            session,
            key="test:notice:1",
            person=chloe,
            template="place-free",
            context={},
            due_at=NOW,
            kind=MessageKind.NOTICE,
        )
        session.commit()
        assert queued is not None and queued.channel == Channel.TELEGRAM

        [stopped] = await phone.send("/stop")

    assert "no longer linked" in stopped.text
    assert "chloe.obrien@northgate.example" in stopped.text
    session.expire_all()
    chloe = session.get(Person, chloe.id)
    assert chloe.telegram_chat_id is None and chloe.preferred_channel == Channel.EMAIL
    moved = session.get(OutboxMessage, queued.id)
    assert moved.channel == Channel.EMAIL and moved.recipient == "chloe.obrien@northgate.example"


async def test_start_without_a_link_and_unknown_chat(world, engine, fake, tg):
    world.standard()
    stranger = Phone(fake, STRANGER_CHAT, "Mallory")
    async with running_bot(tg, engine, Clock(NOW)):
        [hello] = await stranger.send("/start")
        [surveys] = await stranger.send("/surveys")
        [unknown] = await stranger.send("/frobnicate")
    assert "open the Telegram link in one of your emails" in hello.text
    assert "not linked to anyone yet" in surveys.text
    assert "do not know that command" in unknown.text


async def test_commands_are_registered_at_start(engine, fake, database_url):
    tg = telegram_settings(database_url, fake, telegram_admins="7001", telegram_trainers="7002")
    fake.user(7001, "Admin")
    fake.user(7002, "Trainer")
    async with running_bot(tg, engine, Clock(NOW)):
        pass
    everyone = [c["command"] for c in fake.commands]
    assert everyone == ["surveys", "bookings", "prefer", "help", "stop"]
    scoped = {
        c.params["scope"]["chat_id"]: [x["command"] for x in c.params["commands"]]
        for c in fake.requests("setMyCommands")
        if "scope" in c.params
    }
    assert "register" in scoped[7002] and "stats" not in scoped[7002]
    assert {"register", "stats", "remind"} <= set(scoped[7001])


def test_emails_carry_a_single_use_deep_link(world, session, fake, tg):
    people = world.standard()
    chloe: Person = people["chloe"]
    subject = telegram_subject(chloe.id, chloe.telegram_link_generation)
    links = render_links(
        tg, {"telegram": ["telegram", subject], "other": ["survey", "invitation:1"]}
    )
    match = re.fullmatch(
        r"https://t\.me/evalbot_test_bot\?start=([A-Za-z0-9_-]+)", links["telegram"]
    )
    assert match is not None and len(match.group(1)) <= 64
    assert links["other"].startswith(tg.public_url + "/s/")


async def test_restarting_after_a_block_makes_the_chat_usable_again(
    world, session, engine, fake, tg
):
    chloe: Person = world.standard()["chloe"]
    chloe.telegram_chat_id = CHLOE_CHAT
    chloe.telegram_status = Deliverability.UNUSABLE
    chloe.telegram_status_reason = "Telegram: Forbidden: bot was blocked by the user"
    session.add(chloe)
    session.commit()
    phone = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(NOW)):
        [hello] = await phone.send("/start")
    assert "Your messages can come to this chat again." in hello.text
    session.refresh(chloe)
    assert chloe.telegram_status == Deliverability.OK and chloe.telegram_status_reason is None
