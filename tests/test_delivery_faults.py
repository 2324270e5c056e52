"""A relay's own fault pauses the email channel instead of suppressing everyone it was sending to.

A real aiosmtpd server on loopback answers each code; the coordinator is told through the fake
Telegram Bot API (tests/fake_telegram.py) reached by the real client; admins act through the
``evalbot`` command line. Time moves by passing ``now``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.channels.base import Channel as ChannelProtocol
from bot.channels.base import ChannelError
from bot.channels.email import SmtpChannel, smtp_fault
from bot.channels.registry import build_channels
from bot.cli import app
from bot.dispatcher import deliver_due
from bot.pauses import channel_pauses, pause_channel, resume_channel
from bot.settings import Settings, load_settings
from surveys import db
from surveys.models import (
    AuditEntry,
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
)
from surveys.outbox import enqueue
from tests.conftest import World, utc
from tests.fake_telegram import FakeTelegram
from tests.smtp_servers import SmtpServer, running
from tests.test_email_channel import message

NOW = utc("2026-03-02 09:00")
ADMIN_CHAT = 7770001
runner = CliRunner()

ADDRESSES = [
    "alice.okafor@riverside.example",
    "bob.whitfield@riverside.example",
    "chloe.obrien@northgate.example",
    "dev.patel@northgate.example",
]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


@pytest.fixture
def bot_api() -> Iterator[FakeTelegram]:
    with FakeTelegram() as api:
        api.user(ADMIN_CHAT, "Priya")  # the coordinator, a Telegram admin
        yield api


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, engine: Engine, smtp: SmtpServer
) -> None:
    """The same settings for the commands an admin runs as for the dispatcher."""
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    monkeypatch.setenv("EVALBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EVALBOT_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("EVALBOT_SMTP_SECURITY", "none")
    monkeypatch.setenv("EVALBOT_MAIL_FROM", "Evalbot <evalbot@partnership.example>")


def make_settings(database_url: str, smtp: SmtpServer, bot_api: FakeTelegram) -> Settings:
    return load_settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_timeout=5.0,
        smtp_connections=1,
        mail_from="Evalbot <evalbot@partnership.example>",
        admin_email="coordinator@partnership.example",
        telegram_token=bot_api.token,
        telegram_api_url=bot_api.api_url,
        telegram_bot_username=bot_api.username,
        telegram_admins=[ADMIN_CHAT],
    )


def queue_everyone(session: Session, world: World) -> list[Person]:
    world.standard()
    people = list(session.exec(select(Person).where(col(Person.email).in_(ADDRESSES))).all())
    for index, person in enumerate(sorted(people, key=lambda p: ADDRESSES.index(p.email))):
        enqueue(
            session,
            key=f"notice:{index}",
            person=person,
            template="admin-test",
            context={"sent_by": "the test"},
            due_at=NOW,
            kind=MessageKind.NOTICE,
        )
    session.commit()
    return people


async def deliver(
    engine: Engine, settings: Settings, at: Any = NOW
) -> tuple[Any, dict[Channel, ChannelProtocol]]:
    channels = build_channels(settings)
    try:
        report = await deliver_due(engine, settings, channels, now=at)
    finally:
        for channel in channels.values():
            await channel.close()
    return report, channels


def email_rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(col(OutboxMessage.idempotency_key).startswith("notice:"))
                .order_by(col(OutboxMessage.id))
            ).all()
        )


def suppressed(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(
            session.exec(
                select(Person.email).where(Person.email_status == Deliverability.UNUSABLE)
            ).all()
        )


def admin_texts(bot_api: FakeTelegram) -> list[str]:
    return [call.text for call in bot_api.sent(ADMIN_CHAT)]


async def evalbot(*args: str) -> Any:
    """An admin's command, run beside the test's event loop (the commands run their own)."""
    return await asyncio.to_thread(runner.invoke, app, list(args))


@pytest.mark.parametrize(
    ("stage", "code", "text", "fault"),
    [
        ("data", 554, "5.2.252 SendAsDenied; not allowed to send as this sender", "channel"),
        ("data", 552, "Message size exceeds fixed maximum message size", "channel"),
        ("data", 550, "5.7.1 Message rejected as spam", "channel"),
        ("data", 554, "5.3.4 Message too big for system", "channel"),
        ("data", 550, "5.1.1 User unknown", "recipient"),
        ("rcpt", 550, "5.1.1 User unknown", "recipient"),
        ("rcpt", 551, "User not local", "recipient"),
        ("rcpt", 553, "Mailbox name not allowed", "recipient"),
        ("rcpt", 550, "5.7.1 Relaying denied", "channel"),
        ("rcpt", 554, "Transaction failed", "channel"),
        ("mail", 550, "5.7.60 Client does not have permissions to send as this sender", "channel"),
        ("auth", 535, "5.7.3 Authentication unsuccessful", "channel"),
        ("rcpt", 450, "4.2.1 Mailbox busy", "transient"),
        ("data", 451, "4.3.0 Try again later", "transient"),
    ],
)
def test_each_reply_is_classed_by_stage_and_enhanced_code(
    stage: str, code: int, text: str, fault: str
) -> None:
    assert smtp_fault(stage, code, text) == fault


async def test_send_as_denied_pauses_email_and_suppresses_nobody(
    engine: Engine,
    session: Session,
    world: World,
    smtp: SmtpServer,
    bot_api: FakeTelegram,
    database_url: str,
    env: None,
) -> None:
    queue_everyone(session, world)
    settings = make_settings(database_url, smtp, bot_api)
    smtp.always_fail("data", "554 5.2.252 SendAsDenied; evalbot@partnership.example not allowed")

    report, _ = await deliver(engine, settings)

    assert report.sent == 1  # the notice to the coordinator, by Telegram
    assert suppressed(engine) == set()
    assert smtp.received == []
    assert {row.state for row in email_rows(engine)} == {OutboxState.PENDING}
    assert all("paused" in (row.last_error or "") for row in email_rows(engine))
    assert all(row.attempts == 0 for row in email_rows(engine))
    [told] = admin_texts(bot_api)
    assert "paused sending by email" in told and "5.2.252 SendAsDenied" in told
    [pause] = channel_pauses(session)
    assert pause.channel == "email" and pause.since == NOW and "SendAsDenied" in pause.reason

    # Later passes leave the messages waiting and tell nobody again.
    report, _ = await deliver(engine, settings, NOW + timedelta(minutes=10))
    assert report.sent == 0 and report.paused == 4
    assert len(admin_texts(bot_api)) == 1
    assert smtp.recorder.rcpt_attempts == ["alice.okafor@riverside.example"]

    status = await evalbot("status")
    assert status.exit_code == 0, status.output
    assert "sending by email is PAUSED" in status.output and "SendAsDenied" in status.output
    assert "evalbot outbox resume email" in status.output
    overview = await evalbot("outbox")
    assert "PAUSED" in overview.output

    # A failing test message resumes nothing; once mended, one that gets through resumes.
    failing = await evalbot("outbox", "test-email", "coordinator@partnership.example")
    assert failing.exit_code == 1 and "was not sent" in failing.output
    assert channel_pauses(session) != []
    smtp.mend()
    mended = await evalbot("outbox", "test-email", "coordinator@partnership.example")
    assert mended.exit_code == 0, mended.output
    assert "resumes now" in mended.output
    assert channel_pauses(session) == []

    report, _ = await deliver(engine, settings, NOW + timedelta(minutes=20))
    assert report.sent == 4
    arrived = sorted(r.rcpt_tos[0] for r in smtp.received[1:])
    assert arrived == sorted(ADDRESSES)
    with Session(engine) as check:
        actions = check.exec(
            select(AuditEntry.action).where(col(AuditEntry.action).startswith("channel"))
        ).all()
    assert actions == ["channel paused", "channel resumed"]


async def test_552_after_data_pauses_and_an_admin_resumes(
    engine: Engine,
    session: Session,
    world: World,
    smtp: SmtpServer,
    bot_api: FakeTelegram,
    database_url: str,
    env: None,
) -> None:
    queue_everyone(session, world)
    settings = make_settings(database_url, smtp, bot_api)
    smtp.always_fail("data", "552 Message size exceeds fixed maximum message size")
    await deliver(engine, settings)
    assert suppressed(engine) == set()
    assert [p.channel for p in channel_pauses(session)] == ["email"]
    assert len(admin_texts(bot_api)) == 1 and "552" in admin_texts(bot_api)[0]

    smtp.mend()
    resumed = await evalbot("outbox", "resume", "email")
    assert resumed.exit_code == 0, resumed.output
    assert "resumes" in resumed.output and "552" in resumed.output
    again = await evalbot("outbox", "resume", "email")
    assert "not paused" in again.output
    report, _ = await deliver(engine, settings, NOW + timedelta(minutes=5))
    assert report.sent == 4 and len(smtp.received) == 4


async def test_an_unknown_recipient_is_suppressed_alone(
    engine: Engine,
    session: Session,
    world: World,
    smtp: SmtpServer,
    bot_api: FakeTelegram,
    database_url: str,
) -> None:
    queue_everyone(session, world)
    settings = make_settings(database_url, smtp, bot_api)
    smtp.refuse("chloe.obrien@northgate.example", "550 5.1.1 <chloe.obrien@northgate.example>")

    report, _ = await deliver(engine, settings)

    assert report.sent == 3 and report.dead == 1
    assert suppressed(engine) == {"chloe.obrien@northgate.example"}
    assert channel_pauses(session) == []
    assert admin_texts(bot_api) == []
    states = {row.recipient: row.state for row in email_rows(engine)}
    assert states["chloe.obrien@northgate.example"] == OutboxState.DEAD


async def test_the_same_refusal_for_different_recipients_in_a_row_pauses(
    engine: Engine,
    session: Session,
    world: World,
    smtp: SmtpServer,
    bot_api: FakeTelegram,
    database_url: str,
) -> None:
    """A relay answering "550 Requested action not taken" to everyone: after the third
    recipient, the fault is plainly the relay's; the first two are restored."""
    queue_everyone(session, world)
    settings = make_settings(database_url, smtp, bot_api)
    smtp.always_fail("rcpt", "550 Requested action not taken: mailbox unavailable")

    report, _ = await deliver(engine, settings)

    assert suppressed(engine) == set()
    assert {row.state for row in email_rows(engine)} == {OutboxState.PENDING}
    [pause] = channel_pauses(session)
    assert "the same refusal for 3 different recipients in a row" in pause.reason
    assert len(admin_texts(bot_api)) == 1
    with Session(engine) as check:
        restored = check.exec(
            select(AuditEntry.action).where(AuditEntry.action == "email restored")
        ).all()
    assert len(restored) == 2

    smtp.mend()
    assert resume_email(engine) is not None
    report, _ = await deliver(engine, settings, NOW + timedelta(minutes=5))
    assert report.sent == 4 and suppressed(engine) == set()


def resume_email(engine: Engine) -> Any:
    """As an admin resuming it once the relay is mended."""
    with Session(engine) as session:
        view = resume_channel(session, "email", now=NOW, actor="test", why="mended")
        session.commit()
    return view


def test_pausing_twice_tells_once_on_postgres(postgres_engine: Engine) -> None:
    with Session(postgres_engine) as first:
        assert pause_channel(first, "email", reason="554 5.2.252", now=NOW)
        first.commit()
    with Session(postgres_engine) as second:
        assert not pause_channel(second, "email", reason="554 5.2.252", now=NOW)
        second.commit()
        assert [p.channel for p in channel_pauses(second)] == ["email"]


def test_the_migration_makes_the_pause_table(tmp_path: Any) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    db.upgrade(engine)
    with Session(engine) as session:
        assert channel_pauses(session) == []
    engine.dispose()


async def test_smtp_channel_reports_send_as_denied_as_the_channels_fault(
    smtp: SmtpServer, bot_api: FakeTelegram, database_url: str
) -> None:
    settings = make_settings(database_url, smtp, bot_api)
    smtp.fail_next("data", "554 5.2.252 SendAsDenied")
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert failed.value.channel_fault and not failed.value.permanent
    assert "EVALBOT_MAIL_FROM" in str(failed.value)


async def test_a_refused_bot_token_pauses_telegram_and_emails_the_coordinator(
    engine: Engine,
    session: Session,
    world: World,
    smtp: SmtpServer,
    bot_api: FakeTelegram,
    database_url: str,
) -> None:
    people = world.standard()
    alice: Person = people["alice"]
    alice.telegram_chat_id = 5550101
    alice.preferred_channel = Channel.TELEGRAM
    session.add(alice)
    session.commit()
    enqueue(
        session,
        key="chat:1",
        person=alice,
        template="admin-test",
        context={"sent_by": "the test"},
        due_at=NOW,
        kind=MessageKind.NOTICE,
    )
    session.commit()
    settings = make_settings(database_url, smtp, bot_api).model_copy(
        update={"telegram_token": SecretStr("123456789:revoked-by-botfather")}
    )

    await deliver(engine, settings)

    [pause] = channel_pauses(session)
    assert pause.channel == "telegram" and "EVALBOT_TELEGRAM_TOKEN" in pause.reason
    [row] = [r for r in all_rows(engine) if r.idempotency_key == "chat:1"]
    assert row.state == OutboxState.PENDING and row.channel == Channel.TELEGRAM
    with Session(engine) as check:
        alice_now = check.get(Person, alice.id)
        assert alice_now is not None and alice_now.telegram_status == Deliverability.OK
    [told] = smtp.received
    assert told.rcpt_tos == ["coordinator@partnership.example"]
    assert told.message["Subject"] == "Evalbot has paused sending by telegram"
    assert "EVALBOT_TELEGRAM_TOKEN" in told.message.get_body(("plain",)).get_content()


def all_rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage)).all())
