"""The outbox dispatcher on SQLite, sending to a real aiosmtpd server on loopback.

Time is moved by passing ``now``: nothing here waits on the clock. Telegram is a fake channel
object (the real one belongs to the Telegram area); everything else is real.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.channels.base import ChannelError, Delivered, Outgoing
from bot.channels.email import MailFolderChannel, SmtpChannel
from bot.channels.registry import build_channels
from bot.dispatcher import Dispatcher, deliver_due
from bot.settings import Settings, load_settings
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
from tests.fake_telegram import FakeTelegram as FakeBotApi
from tests.smtp_servers import SmtpServer, running

NOW = utc("2026-03-02 09:00")


class FakeTelegram:
    """Stands in for the Telegram channel: keeps what it was given."""

    name = "telegram"
    concurrency = 2

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def send(self, message: Outgoing) -> Delivered:
        self.sent.append(message)
        return Delivered(server_reply=f"message {len(self.sent)}")

    async def close(self) -> None:
        return None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


def make_settings(database_url: str, port: int, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout": 5.0,
        "mail_from": "Evalbot <evalbot@partnership.example>",
        "public_url": "https://evalbot.partnership.example",
        **extra,
    }
    return load_settings(**values)


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    return make_settings(database_url, smtp.port)


@pytest.fixture
def people(world: World) -> dict[str, Any]:
    return world.standard()


def queue(
    session: Session,
    person: Person,
    key: str,
    *,
    kind: MessageKind = MessageKind.NOTICE,
    due: datetime = NOW,
    template: str = "admin-test",
    channel: Channel | None = None,
) -> OutboxMessage:
    row = enqueue(
        session,
        key=key,
        person=person,
        template=template,
        context={"sent_by": "the test"},
        due_at=due,
        kind=kind,
        channel=channel,
    )
    assert row is not None
    session.commit()
    return row


def rows(engine: Engine) -> dict[str, OutboxMessage]:
    with Session(engine) as session:
        return {r.idempotency_key: r for r in session.exec(select(OutboxMessage)).all()}


def person(engine: Engine, email_address: str) -> Person:
    with Session(engine) as session:
        return session.exec(select(Person).where(Person.email == email_address)).one()


async def dispatch(
    engine: Engine, settings: Settings, now: datetime, telegram: FakeTelegram | None = None
) -> Any:
    channels: dict[Channel, Any] = {Channel.EMAIL: SmtpChannel(settings)}
    if telegram is not None:
        channels[Channel.TELEGRAM] = telegram
    try:
        return await deliver_due(engine, settings, channels, now=now)
    finally:
        await channels[Channel.EMAIL].close()


async def test_due_messages_are_sent_once_and_recorded(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    queue(session, people["alice"], "n1")
    queue(session, people["chloe"], "n2")
    queue(session, people["bob"], "later", due=NOW + timedelta(hours=1))

    report = await dispatch(engine, settings, NOW)
    again = await dispatch(engine, settings, NOW + timedelta(minutes=1))

    assert (report.sent, again.sent) == (2, 0)
    found = rows(engine)
    for key in ("n1", "n2"):
        assert found[key].state == OutboxState.SENT
        assert found[key].sent_at == NOW
        assert found[key].attempts == 1
        assert (found[key].server_reply or "").startswith("250 2.0.0 Ok")
    assert found["later"].state == OutboxState.PENDING
    arrived = {r.message["Message-ID"]: r.rcpt_tos[0] for r in smtp.received}
    assert arrived == {
        found["n1"].message_id: "alice.okafor@riverside.example",
        found["n2"].message_id: "chloe.obrien@northgate.example",
    }


async def test_a_transient_failure_backs_off_and_keeps_its_message_id(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    queue(session, people["alice"], "n1")
    smtp.fail_next("mail", "421 4.3.2 Try again later")

    first = await dispatch(engine, settings, NOW)
    failed = rows(engine)["n1"]
    assert first.retrying == 1
    assert failed.state == OutboxState.FAILED
    assert "421 4.3.2" in (failed.last_error or "")
    # Backoff of one minute at the first try, with jitter: between half of it and all of it.
    assert NOW + timedelta(seconds=30) <= failed.available_at <= NOW + timedelta(seconds=60)

    assert (await dispatch(engine, settings, NOW + timedelta(seconds=29))).sent == 0
    assert (await dispatch(engine, settings, NOW + timedelta(seconds=61))).sent == 1
    sent = rows(engine)["n1"]
    assert sent.state == OutboxState.SENT and sent.attempts == 2
    assert sent.message_id == failed.message_id
    assert smtp.received[0].message["Message-ID"] == failed.message_id


async def test_backoff_doubles_and_the_row_dies_after_the_limit(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    settings = make_settings(database_url, smtp.port, outbox_max_attempts=4)
    queue(session, people["alice"], "n1")
    now = NOW
    waits = []
    for _ in range(3):
        smtp.fail_next("data", "451 4.3.0 Mailbox temporarily unavailable")
        await dispatch(engine, settings, now)
        row = rows(engine)["n1"]
        assert row.state == OutboxState.FAILED
        waits.append(row.available_at - now)
        now = row.available_at
    # 1, 2 and 4 minutes, each between half and all of it.
    for n, wait in enumerate(waits):
        assert timedelta(seconds=30 * 2**n) <= wait <= timedelta(seconds=60 * 2**n)

    smtp.fail_next("data", "451 4.3.0 Mailbox temporarily unavailable")
    report = await dispatch(engine, settings, now)
    dead = rows(engine)["n1"]
    assert report.dead == 1
    assert dead.state == OutboxState.DEAD
    assert dead.last_error is not None
    assert dead.last_error.startswith("gave up after 4 attempts")
    assert "451 4.3.0" in dead.last_error
    assert smtp.received == []
    # Dead is dead: a later pass does not touch it.
    assert (await dispatch(engine, settings, now + timedelta(days=1))).sent == 0


async def test_a_refused_address_falls_back_to_a_linked_telegram_chat(
    engine: Engine,
    database_url: str,
    session: Session,
    smtp: SmtpServer,
    people: dict[str, Any],
) -> None:
    """The real Telegram channel, through python-telegram-bot to the fake Bot API."""
    alice = people["alice"]
    alice.telegram_chat_id = 5550101
    session.add(alice)
    session.commit()
    smtp.refuse("alice.okafor@riverside.example", "550 5.1.1 No such mailbox")
    queue(session, alice, "n1")
    with FakeBotApi() as bot_api:
        bot_api.user(5550101, "Alice")
        settings = make_settings(
            database_url,
            smtp.port,
            telegram_token=bot_api.token,
            telegram_api_url=bot_api.api_url,
            telegram_bot_username=bot_api.username,
        )
        channels = build_channels(settings)
        channels[Channel.EMAIL] = SmtpChannel(settings)
        try:
            report = await deliver_due(engine, settings, channels, now=NOW)
            assert report.sent == 1 and report.switched == 1
            row = rows(engine)["n1"]
            assert row.state == OutboxState.SENT
            assert row.channel == Channel.TELEGRAM and row.recipient == "5550101"
            assert "550 5.1.1 No such mailbox" in (row.last_error or "")
            [delivered] = bot_api.sent(5550101)
            assert "Evalbot test message" in delivered.text
            marked = person(engine, "alice.okafor@riverside.example")
            assert marked.email_status == Deliverability.UNUSABLE
            assert "550 5.1.1 No such mailbox" in (marked.email_status_reason or "")
            with Session(engine) as check:
                entry = check.exec(select(AuditEntry).where(AuditEntry.entity_id == alice.id)).one()
            assert entry.action == "email undeliverable"

            # A later email to Alice goes straight to Telegram: the address is not tried again.
            queue(session, alice, "n2", channel=Channel.EMAIL)
            later = NOW + timedelta(minutes=5)
            assert (await deliver_due(engine, settings, channels, now=later)).sent == 1
            assert rows(engine)["n2"].channel == Channel.TELEGRAM
            assert len(bot_api.sent(5550101)) == 2
            assert smtp.recorder.rcpt_attempts.count("alice.okafor@riverside.example") == 1
            assert smtp.received == []
        finally:
            for channel in channels.values():
                await channel.close()


async def test_a_refused_address_without_telegram_is_dead_and_not_tried_again(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    chloe = people["chloe"]
    smtp.refuse("chloe.obrien@northgate.example", "550 5.1.1 No such mailbox")
    queue(session, chloe, "n1")
    report = await dispatch(engine, settings, NOW)
    dead = rows(engine)["n1"]
    assert report.dead == 1
    assert dead.state == OutboxState.DEAD
    assert "550 5.1.1 No such mailbox" in (dead.last_error or "")
    assert "evalbot outbox clear-address chloe.obrien@northgate.example" in (dead.last_error or "")

    queue(session, chloe, "n2")
    await dispatch(engine, settings, NOW + timedelta(minutes=5))
    later = rows(engine)["n2"]
    assert later.state == OutboxState.DEAD
    assert later.attempts == 0  # not attempted at all
    assert "marked undeliverable" in (later.last_error or "")
    assert smtp.recorder.rcpt_attempts == ["chloe.obrien@northgate.example"]


async def test_reminders_to_someone_who_opted_out_are_withdrawn_but_notices_go(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    alice = people["alice"]
    alice.email_opt_out = True
    session.add(alice)
    session.commit()
    queue(session, alice, "reminder", kind=MessageKind.REMINDER)
    queue(session, alice, "campaign", kind=MessageKind.CAMPAIGN)
    queue(session, alice, "notice", kind=MessageKind.NOTICE)
    queue(session, people["chloe"], "chloe-reminder", kind=MessageKind.REMINDER)

    report = await dispatch(engine, settings, NOW)

    found = rows(engine)
    assert (report.sent, report.withdrawn) == (2, 2)
    for key in ("reminder", "campaign"):
        assert found[key].state == OutboxState.WITHDRAWN
        assert "opted out" in (found[key].last_error or "")
        assert found[key].attempts == 0
    assert found["notice"].state == OutboxState.SENT
    to_chloe = next(r for r in smtp.received if r.rcpt_tos == ["chloe.obrien@northgate.example"])
    assert "/unsubscribe/" in to_chloe.message["List-Unsubscribe"]


async def test_a_per_second_limit_holds_messages_back_without_failing_them(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    settings = make_settings(database_url, smtp.port, email_per_second=2)
    for n in range(5):
        queue(session, people["alice"], f"n{n}")
    dispatcher = Dispatcher(
        engine, settings, {Channel.EMAIL: SmtpChannel(settings)}, clock=lambda: NOW
    )

    first = await dispatcher.run_once(NOW)
    assert (first.sent, first.held_back) == (2, 3)
    waiting = [r for r in rows(engine).values() if r.state == OutboxState.PENDING]
    assert len(waiting) == 3
    assert all(r.attempts == 0 and r.last_error is None for r in waiting)

    assert (await dispatcher.run_once(NOW)).sent == 0  # no time has passed
    assert (await dispatcher.run_once(NOW + timedelta(seconds=1))).sent == 2
    assert (await dispatcher.run_once(NOW + timedelta(seconds=2))).sent == 1
    assert len(smtp.received) == 5


async def test_a_daily_limit_counts_what_any_process_sent_in_the_last_24_hours(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    settings = make_settings(database_url, smtp.port, email_per_day=3)
    # Two sent 23 hours ago, as another worker would have recorded them.
    for n in range(2):
        row = queue(session, people["bob"], f"earlier{n}", due=NOW - timedelta(hours=23))
        row.state, row.sent_at = OutboxState.SENT, NOW - timedelta(hours=23)
        session.add(row)
    session.commit()
    for n in range(4):
        queue(session, people["alice"], f"n{n}")

    first = await dispatch(engine, settings, NOW)
    assert (first.sent, first.held_back) == (1, 3)
    assert (await dispatch(engine, settings, NOW + timedelta(minutes=30))).sent == 0
    # An hour later the two early ones have left the window.
    assert (await dispatch(engine, settings, NOW + timedelta(hours=1, seconds=1))).sent == 2
    pending = [r for r in rows(engine).values() if r.state == OutboxState.PENDING]
    assert len(pending) == 1 and pending[0].attempts == 0


async def test_rows_of_a_crashed_worker_are_taken_again_when_the_lease_runs_out(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    expired = queue(session, people["alice"], "expired")
    held = queue(session, people["chloe"], "held")
    for row, lease in ((expired, NOW - timedelta(seconds=1)), (held, NOW + timedelta(minutes=4))):
        row.state, row.claimed_by, row.lease_until, row.attempts = (
            OutboxState.CLAIMED,
            "crashed-worker",
            lease,
            1,
        )
        session.add(row)
    session.commit()

    report = await dispatch(engine, settings, NOW)

    found = rows(engine)
    assert report.sent == 1
    assert found["expired"].state == OutboxState.SENT and found["expired"].attempts == 2
    assert found["held"].state == OutboxState.CLAIMED  # its worker may still be sending it
    assert (await dispatch(engine, settings, NOW + timedelta(minutes=5))).sent == 1


async def test_two_dispatchers_on_one_database_never_send_a_row_twice(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, world: World
) -> None:
    settings = make_settings(database_url, smtp.port, outbox_batch_size=7)
    people = [world.person(f"Delegate {n}", f"delegate{n}@agency.example") for n in range(80)]
    for n, someone in enumerate(people):
        queue(session, someone, f"n{n}")

    async def worker() -> Any:
        channel = SmtpChannel(settings)
        try:
            return await deliver_due(engine, settings, {Channel.EMAIL: channel}, now=NOW)
        finally:
            await channel.close()

    reports = await asyncio.gather(worker(), worker())

    assert sum(r.sent for r in reports) == 80
    assert all(r.sent > 0 for r in reports)  # both took part
    ids = [r.message["Message-ID"] for r in smtp.received]
    assert len(ids) == len(set(ids)) == 80


async def test_stop_finishes_the_messages_in_hand_then_returns(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    settings = make_settings(database_url, smtp.port, outbox_batch_size=5, smtp_connections=1)
    for n in range(30):
        queue(session, people["alice"], f"n{n}")
    smtp.fail_next("data", "stall")  # the first message waits at the relay
    channel = SmtpChannel(settings)
    dispatcher = Dispatcher(engine, settings, {Channel.EMAIL: channel}, clock=lambda: NOW)
    running_task = asyncio.create_task(dispatcher.run())
    await asyncio.get_running_loop().run_in_executor(None, smtp.recorder.data_started.wait, 5)

    dispatcher.stop()  # as SIGTERM does
    smtp.recorder.release.set()  # the relay answers (451) and carries on
    report = await asyncio.wait_for(running_task, 10)
    await channel.close()

    found = rows(engine).values()
    untouched = [r for r in found if r.state == OutboxState.PENDING and r.attempts == 0]
    taken = 30 - len(untouched)
    # What was in hand (at most two batches) was finished; nothing more was taken.
    assert 0 < taken <= 10
    assert (report.sent, report.retrying) == (taken - 1, 1)
    assert not [r for r in found if r.state == OutboxState.CLAIMED]
    assert len(smtp.received) == taken - 1


async def test_rows_queued_while_the_worker_waits_go_as_soon_as_it_is_woken(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    """A worker that found nothing due waits a poll interval (a minute here), unless the tick
    that queued new rows wakes it, as ``evalbot run`` does."""
    settings = make_settings(database_url, smtp.port, outbox_poll_seconds=60)
    alice = people["alice"]
    alice.telegram_chat_id = 5550101
    session.add(alice)
    session.commit()
    arrived = asyncio.Event()

    class Telegram(FakeTelegram):
        async def send(self, message: Outgoing) -> Delivered:
            delivered = await super().send(message)
            arrived.set()
            return delivered

    telegram = Telegram()
    email_channel = SmtpChannel(settings)
    clock = [NOW]
    dispatcher = Dispatcher(
        engine,
        settings,
        {Channel.EMAIL: email_channel, Channel.TELEGRAM: telegram},
        clock=lambda: clock[0],
        database_thread=False,
    )
    queue(session, people["chloe"], "first")
    worker = asyncio.create_task(dispatcher.run())
    try:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, smtp.recorder.message_arrived.wait, 5)
        assert len(smtp.received) == 1  # the queue is empty now: the worker waits
        clock[0] = NOW + timedelta(seconds=1)
        queue(session, alice, "later", channel=Channel.TELEGRAM, due=clock[0])
        dispatcher.wake()
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        dispatcher.stop()
        await asyncio.wait_for(worker, 5)
        await email_channel.close()
    assert [m.recipient for m in telegram.sent] == ["5550101"]
    assert rows(engine)["later"].state == OutboxState.SENT


async def test_a_missing_template_kills_the_row_and_names_the_file(
    engine: Engine, session: Session, settings: Settings, people: dict[str, Any]
) -> None:
    queue(session, people["alice"], "n1", template="no-such-message")
    report = await dispatch(engine, settings, NOW)
    row = rows(engine)["n1"]
    assert report.dead == 1 and row.state == OutboxState.DEAD
    assert "email/no-such-message-subject.txt does not exist" in (row.last_error or "")


async def test_telegram_rows_go_by_email_when_no_telegram_bot_is_set_up(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    alice = people["alice"]
    alice.telegram_chat_id = 5550101
    session.add(alice)
    session.commit()
    queue(session, alice, "n1", channel=Channel.TELEGRAM)
    report = await dispatch(engine, settings, NOW)
    row = rows(engine)["n1"]
    assert report.sent == 1 and row.channel == Channel.EMAIL
    assert "no telegram channel is set up" in (row.last_error or "")
    assert smtp.received[0].rcpt_tos == ["alice.okafor@riverside.example"]


async def test_a_telegram_refusal_marks_the_chat_and_falls_back_to_email(
    engine: Engine, session: Session, settings: Settings, smtp: SmtpServer, people: dict[str, Any]
) -> None:
    class BlockedTelegram(FakeTelegram):
        async def send(self, message: Outgoing) -> Delivered:
            raise ChannelError("Forbidden: bot was blocked by the user", permanent=True)

    alice = people["alice"]
    alice.telegram_chat_id = 5550101
    session.add(alice)
    session.commit()
    queue(session, alice, "n1", channel=Channel.TELEGRAM)
    report = await dispatch(engine, settings, NOW, BlockedTelegram())
    assert report.sent == 1 and report.switched == 1
    assert rows(engine)["n1"].channel == Channel.EMAIL
    marked = person(engine, "alice.okafor@riverside.example")
    assert marked.telegram_status == Deliverability.UNUSABLE
    assert "blocked" in (marked.telegram_status_reason or "")


async def test_without_a_relay_mail_goes_to_the_mail_folder(
    engine: Engine, database_url: str, tmp_path: Path, session: Session, people: dict[str, Any]
) -> None:
    settings = load_settings(database_url=database_url, mail_dir=tmp_path / "outgoing")
    channels = build_channels(settings)
    assert isinstance(channels[Channel.EMAIL], MailFolderChannel)
    queue(session, people["chloe"], "n1", kind=MessageKind.REMINDER)

    report = await deliver_due(engine, settings, channels, now=NOW)

    [written] = (tmp_path / "outgoing").glob("*.eml")
    row = rows(engine)["n1"]
    assert report.sent == 1
    assert row.server_reply == f"written to {written}"
    mail = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert mail["Message-ID"] == row.message_id
    assert mail["To"].addresses[0].addr_spec == "chloe.obrien@northgate.example"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
