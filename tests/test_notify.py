"""GOV.UK Notify as the email channel, through the outbox, against a fake Notify API on loopback
that checks the JWT and the payloads and answers each documented error. Time moves by ``now``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.channels.registry import build_channels
from bot.dispatcher import deliver_due
from bot.pauses import channel_pauses
from bot.ratelimit import channel_limits
from bot.rendering import render_email
from bot.settings import Settings, SettingsError, load_settings
from surveys.models import (
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
)
from surveys.outbox import enqueue
from tests.conftest import World, utc
from tests.fake_notify import API_KEY, EMAIL_TEMPLATE, SMS_TEMPLATE, FakeNotify

NOW = utc("2026-03-02 09:00")


@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    with FakeNotify() as fake:
        yield fake


def notify_settings(database_url: str, notify: FakeNotify, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "notify_api_key": API_KEY,
        "notify_email_template_id": EMAIL_TEMPLATE,
        "notify_sms_template_id": SMS_TEMPLATE,
        "notify_base_url": notify.url,
        "public_url": "https://evalbot.partnership.example",
        # A relay is set too: with Notify set, email goes by Notify all the same.
        "smtp_host": "127.0.0.1",
        "smtp_port": 9,
        **extra,
    }
    return load_settings(**values)


def queue(
    session: Session, people: list[Person], *, kind: MessageKind = MessageKind.NOTICE
) -> None:
    for person in people:
        enqueue(
            session,
            key=f"notice:{person.email}",
            person=person,
            template="admin-test",
            context={"sent_by": "the test"},
            due_at=NOW,
            kind=kind,
        )
    session.commit()


async def deliver(engine: Engine, settings: Settings, at: Any = NOW) -> Any:
    channels = build_channels(settings)
    try:
        return await deliver_due(engine, settings, channels, now=at)
    finally:
        for channel in channels.values():
            await channel.close()


def rows(engine: Engine) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


async def test_email_goes_by_notify_with_our_wording_reference_and_id_kept(
    engine: Engine, session: Session, world: World, notify: FakeNotify, database_url: str
) -> None:
    people = world.standard()
    queue(session, [people["alice"]], kind=MessageKind.REMINDER)
    settings = notify_settings(database_url, notify)

    report = await deliver(engine, settings)

    assert report.sent == 1 and notify.refusals == []
    [sent] = notify.sent
    [row] = rows(engine)
    assert sent.kind == "email" and sent.to == "alice.okafor@riverside.example"
    assert sent.template_id == EMAIL_TEMPLATE
    assert sent.reference == row.idempotency_key == "notice:alice.okafor@riverside.example"
    # The wording is Evalbot's own, rendered as for SMTP.
    expected = render_email(
        settings, row, recipient=row.recipient, recipient_name="Alice Okafor", now=NOW
    )
    assert sent.personalisation == {"subject": expected.subject, "body": expected.text}
    assert "Evalbot test message" in sent.personalisation["subject"]
    assert sent.unsubscribe_url is not None and "/unsubscribe/" in sent.unsubscribe_url
    assert row.state == OutboxState.SENT and row.provider_id == sent.id
    assert sent.id in (row.server_reply or "")


@pytest.mark.parametrize(
    ("status", "error", "message", "retry_in"),
    [
        (
            429,
            "RateLimitError",
            "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
            10,
        ),
        (429, "TooManyRequestsError", "Exceeded send limits (250000) for today", 3600),
        (500, "Exception", "Internal server error", None),
    ],
)
async def test_limits_and_server_errors_are_tried_again(
    engine: Engine,
    session: Session,
    world: World,
    notify: FakeNotify,
    database_url: str,
    status: int,
    error: str,
    message: str,
    retry_in: int | None,
) -> None:
    people = world.standard()
    queue(session, [people["alice"]])
    settings = notify_settings(database_url, notify)
    notify.fail_next(status, error, message)

    report = await deliver(engine, settings)

    assert report.retrying == 1 and notify.sent == []
    [row] = rows(engine)
    assert row.state == OutboxState.FAILED and message in (row.last_error or "")
    if retry_in is not None:
        assert row.available_at == NOW + timedelta(seconds=retry_in)
    assert channel_pauses(session) == []
    report = await deliver(engine, settings, row.available_at)
    assert report.sent == 1 and len(notify.sent) == 1


@pytest.mark.parametrize(
    ("status", "error", "message", "hint"),
    [
        (400, "BadRequestError", "Template not found", "EVALBOT_NOTIFY_EMAIL_TEMPLATE_ID"),
        (400, "BadRequestError", "Missing personalisation: body", "((body))"),
        (
            400,
            "BadRequestError",
            "Can't send to this recipient using a team-only API key",
            "kind of API key",
        ),
        (
            400,
            "BadRequestError",
            "Can't send to this recipient when service is in trial mode - see https://www.notifications.service.gov.uk/trial-mode",
            "kind of API key",
        ),
        (403, "AuthError", "Invalid token: API key not found", "EVALBOT_NOTIFY_API_KEY"),
    ],
)
async def test_a_fault_of_the_service_pauses_email_and_blames_nobody(
    engine: Engine,
    session: Session,
    world: World,
    notify: FakeNotify,
    database_url: str,
    status: int,
    error: str,
    message: str,
    hint: str,
) -> None:
    people = world.standard()
    queue(session, [people["alice"], people["bob"], people["chloe"]])
    settings = notify_settings(database_url, notify)
    notify.fail_next(status, error, message, times=10)

    report = await deliver(engine, settings)

    assert report.sent == 0 and report.dead == 0
    assert {row.state for row in rows(engine)} == {OutboxState.PENDING}
    [pause] = channel_pauses(session)
    assert pause.channel == "email" and message in pause.reason and hint in pause.reason
    with Session(engine) as check:
        assert (
            check.exec(select(Person).where(Person.email_status != Deliverability.OK)).all() == []
        )


async def test_a_key_for_another_service_is_refused_and_pauses(
    engine: Engine, session: Session, world: World, notify: FakeNotify, database_url: str
) -> None:
    people = world.standard()
    queue(session, [people["alice"]])
    other = "evalbot_live-11111111-2222-4333-8444-555555555555-3d844edf-8d35-48ac-975b-e847b4f122b0"
    settings = notify_settings(database_url, notify, notify_api_key=other)

    await deliver(engine, settings)

    assert notify.refusals == [(403, "AuthError: Invalid token: service not found")]
    [pause] = channel_pauses(session)
    assert "service not found" in pause.reason and "EVALBOT_NOTIFY_API_KEY" in pause.reason
    assert "3d844edf" not in pause.reason  # the key's secret is never repeated


async def test_a_wrong_secret_fails_the_signature(
    engine: Engine, session: Session, world: World, notify: FakeNotify, database_url: str
) -> None:
    people = world.standard()
    queue(session, [people["alice"]])
    wrong = API_KEY[:-36] + "00000000-0000-4000-8000-000000000000"
    await deliver(engine, notify_settings(database_url, notify, notify_api_key=wrong))
    assert notify.refusals == [(403, "AuthError: Invalid token: API key not found")]
    assert [p.channel for p in channel_pauses(session)] == ["email"]


async def test_an_address_notify_refuses_is_marked_and_the_others_go(
    engine: Engine, session: Session, world: World, notify: FakeNotify, database_url: str
) -> None:
    people = world.standard()
    broken = world.person("Eve Broken", "eve@invalid")  # no dot in the domain: Notify refuses
    session.commit()
    queue(session, [people["alice"], broken])
    settings = notify_settings(database_url, notify)

    report = await deliver(engine, settings)

    assert report.sent == 1 and report.dead == 1
    assert channel_pauses(session) == []
    by_person = {row.recipient: row for row in rows(engine)}
    assert "email_address Not a valid email address" in (by_person["eve@invalid"].last_error or "")
    with Session(engine) as check:
        eve = check.exec(select(Person).where(Person.email == "eve@invalid")).one()
    assert eve.email_status == Deliverability.UNUSABLE


async def test_notifys_rate_and_daily_limits_hold_messages_back(
    engine: Engine, session: Session, world: World, notify: FakeNotify, database_url: str
) -> None:
    for index in range(70):
        person = world.person(f"Delegate {index}", f"delegate{index}@riverside.example")
        enqueue(
            session,
            key=f"bulk:{index}",
            person=person,
            template="admin-test",
            context={},
            due_at=NOW,
            kind=MessageKind.NOTICE,
        )
    session.commit()
    settings = notify_settings(database_url, notify, notify_email_per_day=60)

    first = await deliver(engine, settings)
    assert first.sent == 50 and first.held_back == 20  # 50 a second: Notify's 3,000 a minute
    second = await deliver(engine, settings, NOW + timedelta(seconds=1))
    assert second.sent == 10  # the daily limit of 60 reached
    third = await deliver(engine, settings, NOW + timedelta(hours=2))
    assert third.sent == 0
    assert notify.refusals == []  # never a 429: the limits were kept on our side
    later = await deliver(engine, settings, NOW + timedelta(hours=24, seconds=1))
    assert later.sent == 10


def test_no_60_seconds_take_more_than_notifys_3000_though_the_pace_stays_near_50_a_second(
    notify: FakeNotify, database_url: str
) -> None:
    # A bucket of 50 a second alone lets 3,050 through in a minute: a full bucket, then a
    # minute's refill. Claims every tenth of a second for two and a half minutes:
    limiter = channel_limits(notify_settings(database_url, notify))[Channel.EMAIL].per_second
    grants: list[tuple[float, int]] = []
    for tenth in range(1500):
        granted = limiter.take(100, NOW + timedelta(seconds=tenth / 10))
        if granted:
            grants.append((tenth / 10, granted))
    busiest = max(
        sum(count for at, count in grants if start <= at < start + 60) for start, _ in grants
    )
    assert busiest <= 2900  # two seconds' worth under Notify's 3,000, for requests that bunch up
    assert sum(count for _, count in grants) >= 48 * 150  # yet close to 50 a second throughout


def test_a_notify_key_that_is_not_one_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALBOT_NOTIFY_API_KEY", "not-a-real-key-secret-value")
    with pytest.raises(SettingsError) as failed:
        load_settings()
    assert "EVALBOT_NOTIFY_API_KEY" in str(failed.value)
    assert "not-a-real-key-secret-value" not in str(failed.value)


def test_a_template_id_must_be_a_uuid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALBOT_NOTIFY_EMAIL_TEMPLATE_ID", "survey-reminder")
    with pytest.raises(SettingsError) as failed:
        load_settings()
    assert "EVALBOT_NOTIFY_EMAIL_TEMPLATE_ID" in str(failed.value)


def test_the_key_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "notify-key"
    key.write_text(API_KEY + "\n")
    monkeypatch.setenv("EVALBOT_NOTIFY_API_KEY_FILE", str(key))
    monkeypatch.setenv("EVALBOT_NOTIFY_EMAIL_TEMPLATE_ID", EMAIL_TEMPLATE)
    settings = load_settings()
    assert settings.notify_email and not settings.notify_sms
    assert Channel.EMAIL in build_channels(settings)
    assert type(build_channels(settings)[Channel.EMAIL]).__name__ == "NotifyChannel"


async def test_a_message_notify_finds_too_long_is_dead_with_the_reason_and_blames_nobody(
    engine: Engine, session: Session, world: World, notify: FakeNotify, database_url: str
) -> None:
    people = world.standard()
    queue(session, [people["alice"], people["bob"]])
    settings = notify_settings(database_url, notify)
    too_long = "Text messages cannot be longer than 918 characters. Your message is 1200 characters"
    notify.fail_next(400, "BadRequestError", too_long)

    report = await deliver(engine, settings)

    assert report.sent == 1 and report.dead == 1
    [dead] = [row for row in rows(engine) if row.state == OutboxState.DEAD]
    assert too_long in (dead.last_error or "")
    assert channel_pauses(session) == []
    with Session(engine) as check:
        assert (
            check.exec(select(Person).where(Person.email_status != Deliverability.OK)).all() == []
        )
