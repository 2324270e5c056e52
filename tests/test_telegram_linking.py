"""Linking a Telegram chat to a person: deep links, /start, /prefer, /stop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.links import render_links, telegram_subject
from surveys import outbox
from surveys.models import (
    AuditEntry,
    Booking,
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


def _mails(folder) -> dict[str, list[str]]:
    """Each recipient's emails in ``folder``, as their plain-text bodies."""
    import email
    from email import policy

    found: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        found.setdefault(str(message["To"]), []).append(f"{message['Subject']}\n{text}")
    return found


LINK = re.compile(r"https://t\.me/evalbot_test_bot\?start=([A-Za-z0-9_-]{1,64})(?![\w-])")


async def _emails_of_a_booking(world, session, engine, tg, tmp_path) -> dict[str, list[str]]:
    """Chloé's booking as it runs: the confirmation and the pre-course invitation, then a late
    cancellation that asks her manager Dev to nominate someone. Every email, by recipient."""
    from bot.channels.registry import build_channels
    from bot.dispatcher import deliver_due
    from schedules.cancellation import cancel_booking
    from schedules.policy import default_policy
    from schedules.tick import tick

    people = world.standard()
    opens = utc("2026-03-09 09:30")  # the pre-course questionnaire opens
    channels = build_channels(tg)
    try:
        for now in (opens, opens + timedelta(minutes=1)):
            tick(engine, now=now, policy=default_policy(), zone=tg.zone, secret=tg.secret)
            await deliver_due(engine, tg, channels, now=now)
        late = utc("2026-03-13 10:00")  # after the cut-off
        cancel_booking(
            session,
            session.get(Booking, people["chloe_booking"].id),
            now=late,
            policy=default_policy(),
            zone=tg.zone,
            secret=tg.secret,
            actor="test",
            reason="ill",
        )
        session.commit()
        await deliver_due(engine, tg, channels, now=late)
    finally:
        for channel in channels.values():
            await channel.close()
    return _mails(tmp_path / "mail")


async def test_real_emails_carry_a_deep_link_that_links_the_chat(
    world, session, engine, fake, database_url, tmp_path
):
    tg = telegram_settings(database_url, fake, mail_dir=tmp_path / "mail")
    mails = await _emails_of_a_booking(world, session, engine, tg, tmp_path)
    chloe_mails = next(v for k, v in mails.items() if "chloe.obrien@" in k)
    confirmation = [m for m in chloe_mails if "Your place on" in m]
    invitation = [m for m in chloe_mails if "Before Working Together" in m]
    assert confirmation and invitation
    for mail in [*confirmation, *invitation]:
        assert LINK.search(mail), mail[:300]

    # The link in her invitation links her chat, greets her by name, and works once.
    token = LINK.findall(invitation[-1])[-1]
    phone = Phone(fake, CHLOE_CHAT, "Chloé")
    async with running_bot(tg, engine, Clock(utc("2026-03-13 11:00"))):
        [hello] = await phone.send(f"/start {token}")
        assert hello.text.startswith("Hello Chloé O'Brien <Health & Care>!")
        [again] = await Phone(fake, STRANGER_CHAT, "Mallory").send(f"/start {token}")
        assert "already been used" in again.text
    session.expire_all()
    chloe = session.exec(select(Person).where(Person.email == "chloe.obrien@northgate.example"))
    assert chloe.one().telegram_chat_id == CHLOE_CHAT


async def test_manager_notices_carry_a_deep_link(
    world, session, engine, fake, database_url, tmp_path
):
    tg = telegram_settings(database_url, fake, mail_dir=tmp_path / "mail")
    mails = await _emails_of_a_booking(world, session, engine, tg, tmp_path)
    [nominate] = next(v for k, v in mails.items() if "dev.patel@" in k)
    assert "nominate a colleague" in nominate
    assert "You can also get notices like this one in Telegram" in nominate

    # Dev, her line manager, follows it: his chat is linked, so later notices can go there.
    token = LINK.findall(nominate)[-1]
    async with running_bot(tg, engine, Clock(utc("2026-03-13 11:00"))):
        [hello] = await Phone(fake, STRANGER_CHAT, "Dev").send(f"/start {token}")
        assert hello.text.startswith("Hello Dev Patel")
    session.expire_all()
    dev = session.exec(select(Person).where(Person.email == "dev.patel@northgate.example"))
    assert dev.one().telegram_chat_id == STRANGER_CHAT
