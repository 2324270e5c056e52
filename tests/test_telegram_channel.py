"""The Telegram channel of the outbox: delivery, 403 fallback to email, 429, 5xx, long texts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.channels.base import ChannelError, Outgoing
from bot.channels.registry import build_channels
from bot.dispatcher import deliver_due
from bot.telegram.channel import TelegramChannel
from surveys import outbox
from surveys.models import (
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
)
from tests.conftest import utc
from tests.fake_telegram import FakeTelegram
from tests.telegram_harness import telegram_settings

NOW = utc("2026-03-16 10:00")
CHLOE_CHAT = 5_000_001


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        server.user(CHLOE_CHAT, "Chloé")
        yield server


@pytest.fixture
def tg(database_url, fake, tmp_path):
    return telegram_settings(database_url, fake, mail_dir=tmp_path / "mail")


@pytest.fixture
def chloe(world, session) -> Person:
    person: Person = world.standard()["chloe"]
    person.telegram_chat_id = CHLOE_CHAT
    person.preferred_channel = Channel.TELEGRAM
    session.add(person)
    session.commit()
    return person


def queue_test_message(
    session, person: Person, key: str = "test:1", channel: Channel = Channel.TELEGRAM
) -> OutboxMessage:
    row = outbox.enqueue(
        session,
        key=key,
        person=person,
        template="admin-test",
        context={"sent_by": "cli:tester"},
        due_at=NOW,
        kind=MessageKind.NOTICE,
    )
    session.commit()
    assert row is not None and row.channel == channel
    return row


async def deliver(engine, settings, now=NOW):
    channels = build_channels(settings)
    try:
        return await deliver_due(engine, settings, channels, now=now)
    finally:
        for channel in channels.values():
            await channel.close()


async def test_a_queued_message_arrives_in_the_chat(session, engine, fake, tg, chloe):
    row = queue_test_message(session, chloe)
    report = await deliver(engine, tg)
    assert report.sent == 1
    [sent] = fake.sent(CHLOE_CHAT)
    assert sent.params["parse_mode"] == "HTML"
    assert sent.text.startswith("Evalbot test message for Riverside & District <Safeguarding>")
    session.refresh(row)
    assert row.state == OutboxState.SENT and row.recipient == str(CHLOE_CHAT)
    assert f"in chat {CHLOE_CHAT}" in (row.server_reply or "")


async def test_blocked_bot_falls_back_to_email(session, engine, fake, tg, chloe, tmp_path):
    fake.block(CHLOE_CHAT)
    row = queue_test_message(session, chloe)
    report = await deliver(engine, tg)

    [refused] = fake.requests("sendMessage", CHLOE_CHAT)
    assert refused.status == 403
    session.expire_all()
    person = session.get(Person, chloe.id)
    assert person.telegram_status == Deliverability.UNUSABLE
    assert "blocked" in (person.telegram_status_reason or "")
    row = session.get(OutboxMessage, row.id)
    assert row.state == OutboxState.SENT and row.channel == Channel.EMAIL
    assert row.recipient == "chloe.obrien@northgate.example"
    assert report.sent == 1 and report.switched == 1
    [mail] = (tmp_path / "mail").glob("*.eml")
    assert "chloe.obrien@northgate.example" in mail.read_text()

    # Later messages go straight to email, without trying Telegram again.
    queue_test_message(session, person, key="test:2", channel=Channel.EMAIL)
    await deliver(engine, tg)
    assert len(fake.requests("sendMessage", CHLOE_CHAT)) == 1


async def test_flood_control_waits_for_retry_after(session, engine, fake, tg, chloe):
    fake.fail(429, retry_after=7, method="sendMessage")
    row = queue_test_message(session, chloe)
    report = await deliver(engine, tg)
    assert report.retrying == 1
    session.refresh(row)
    assert row.state == OutboxState.FAILED
    assert row.available_at == NOW + timedelta(seconds=7)
    assert "Retry in 7 seconds" in (row.last_error or "")

    await deliver(engine, tg, now=NOW + timedelta(seconds=6))
    session.refresh(row)
    assert row.state == OutboxState.FAILED  # not yet
    await deliver(engine, tg, now=NOW + timedelta(seconds=7))
    session.refresh(row)
    assert row.state == OutboxState.SENT and row.channel == Channel.TELEGRAM
    assert session.get(Person, chloe.id).telegram_status == Deliverability.OK


async def test_server_errors_are_retried_with_backoff(session, engine, fake, tg, chloe):
    fake.fail(500, times=2, method="sendMessage")
    row = queue_test_message(session, chloe)
    await deliver(engine, tg)
    session.refresh(row)
    assert row.state == OutboxState.FAILED and row.attempts == 1
    assert row.available_at > NOW
    await deliver(engine, tg, now=row.available_at)
    session.refresh(row)
    assert row.state == OutboxState.FAILED and row.attempts == 2
    await deliver(engine, tg, now=row.available_at)
    session.refresh(row)
    assert row.state == OutboxState.SENT and row.channel == Channel.TELEGRAM
    assert session.get(Person, chloe.id).telegram_status == Deliverability.OK


@pytest.fixture
def unpaced(database_url, fake):
    """Settings without the per-chat pacing, for tests that send several parts to one chat."""
    return telegram_settings(
        database_url, fake, telegram_per_second=0, telegram_per_chat_per_second=0
    )


async def test_long_messages_are_split_and_every_part_parses(fake, unpaced):
    channel = TelegramChannel.from_settings(unpaced)
    name = "Chloé O'Brien &lt;Health &amp; Care&gt;"
    paragraph = f"<b>{name}</b> attended. " + "Notes &amp; actions follow. " * 20
    html = "\n".join([paragraph] * 30)  # about 20,000 characters
    try:
        delivered = await channel.send(
            Outgoing(
                outbox_id=1,
                recipient=str(CHLOE_CHAT),
                subject="",
                text=html,
                html=html,
                message_id="<1@x>",
                buttons=[[("Open the survey", "https://evalbot.example/s/abc")]],
            )
        )
    finally:
        await channel.close()
    parts = fake.sent(CHLOE_CHAT)
    assert len(parts) == 5 and all(p.status == 200 for p in parts)
    assert all(p.text.rstrip().endswith("follow.") for p in parts)  # cut at line ends
    assert all(len(p.text) <= 4096 for p in parts)
    assert "".join(p.text for p in parts).count("Chloé O'Brien <Health & Care> attended.") == 30
    assert parts[-1].buttons == [("Open the survey", "https://evalbot.example/s/abc")]
    assert all(not p.buttons for p in parts[:-1])
    assert delivered.server_reply.startswith("telegram message ")


async def test_channel_errors_say_whether_to_retry(fake, unpaced):
    channel = TelegramChannel.from_settings(unpaced)
    message = Outgoing(
        outbox_id=1, recipient="", subject="", text="hi", html="hi", message_id="<1@x>"
    )
    try:
        fake.fail(429, retry_after=3, method="sendMessage")
        with pytest.raises(ChannelError) as flood:
            await channel.send(_to(message, CHLOE_CHAT))
        assert flood.value.retry_after == 3 and not flood.value.permanent
        fake.fail(502, method="sendMessage")
        with pytest.raises(ChannelError) as gateway:
            await channel.send(_to(message, CHLOE_CHAT))
        assert not gateway.value.permanent and gateway.value.retry_after is None
        with pytest.raises(ChannelError) as unknown_chat:
            await channel.send(_to(message, 999))
        assert unknown_chat.value.permanent and "chat not found" in str(unknown_chat.value).lower()
    finally:
        await channel.close()
    statuses = [c.status for c in fake.requests("sendMessage")]
    assert statuses == [429, 502, 400]


def _to(message: Outgoing, chat: int) -> Outgoing:
    from dataclasses import replace

    return replace(message, recipient=str(chat))


def test_the_channel_is_built_only_with_a_token(settings, tg):
    assert Channel.TELEGRAM not in build_channels(settings)
    assert isinstance(build_channels(tg)[Channel.TELEGRAM], TelegramChannel)


def test_a_split_keeps_every_part_valid_html():
    from bot.telegram.html import split
    from tests.fake_telegram import parse_html

    body = "\n".join(f"Line {n}: <i>O&#x27;Brien &amp; co</i> &lt;ok&gt;" for n in range(400))
    html = f"<b>Register</b>\n<blockquote>{body}</blockquote>\n<a href='https://x.example/'>end</a>"
    parts = split(html, limit=1000)
    assert len(parts) > 5
    plain = [parse_html(part) for part in parts]  # raises if a part does not parse
    assert all(len(text) <= 1000 for text in plain)
    assert plain[0].startswith("Register\nLine 0: O'Brien & co <ok>")
    assert "".join(plain).count("O'Brien & co <ok>") == 400
    assert parts[1].startswith("<blockquote>")


async def test_the_pacer_keeps_within_telegrams_limits(database_url):
    """With Telegram's limits scaled up tenfold so the test is quick: paced, never a 429."""
    with FakeTelegram(rate_limits=True, per_second=300, per_chat_per_second=10) as strict:
        for chat in range(1, 41):
            strict.user(chat, f"Delegate {chat}")
        paced = telegram_settings(
            database_url, strict, telegram_per_second=300, telegram_per_chat_per_second=10
        )
        unpaced = telegram_settings(
            database_url, strict, telegram_per_second=0, telegram_per_chat_per_second=0
        )
        for settings in (paced, unpaced):
            channel = TelegramChannel.from_settings(settings)
            message = Outgoing(
                outbox_id=1, recipient="", subject="", text="hi", html="hi", message_id="<1@x>"
            )
            # Three messages to chat 1 for every one to each of 39 others, all at once.
            targets = [1, 1, 1, *range(2, 41)] * 3
            try:
                results = await asyncio.gather(
                    *(channel.send(_to(message, chat)) for chat in targets),
                    return_exceptions=True,
                )
            finally:
                await channel.close()
            refused = [r for r in results if isinstance(r, ChannelError)]
            if settings is paced:
                assert refused == [] and strict.rate_limited == 0
            else:
                assert refused and all(r.retry_after for r in refused)
                assert strict.rate_limited_by.get("chat")


async def test_a_message_telegram_refuses_as_malformed_fails_but_the_chat_stays_usable(
    session, engine, fake, database_url, chloe, tmp_path
):
    tg = telegram_settings(database_url, fake, mail_dir=tmp_path / "mail", outbox_max_attempts=2)
    refusal = 'Bad Request: can\'t parse entities: Unsupported start tag "p" at byte offset 12'
    fake.fail(400, times=2, method="sendMessage", description=refusal)
    row = queue_test_message(session, chloe)
    report = await deliver(engine, tg)

    assert report.retrying == 1 and report.switched == 0
    session.expire_all()
    row = session.get(OutboxMessage, row.id)
    assert row.state == OutboxState.FAILED and row.channel == Channel.TELEGRAM
    assert "can't parse entities" in (row.last_error or "").lower()
    assert "not the person's chat" in (row.last_error or "")
    person = session.get(Person, chloe.id)
    assert person.telegram_status == Deliverability.OK and person.telegram_status_reason is None
    assert not (tmp_path / "mail").exists() or not list((tmp_path / "mail").glob("*.eml"))

    await deliver(engine, tg, now=row.available_at)
    session.expire_all()
    row = session.get(OutboxMessage, row.id)
    assert row.state == OutboxState.DEAD  # what `evalbot outbox` lists for admins
    assert "gave up after 2 attempts" in (row.last_error or "")
    assert "can't parse entities" in (row.last_error or "").lower()
    assert session.get(Person, chloe.id).telegram_status == Deliverability.OK

    # The delegate is not punished: the next message still reaches the chat.
    queue_test_message(session, chloe, key="test:2")
    report = await deliver(engine, tg, now=row.available_at)
    assert report.sent == 1
    assert [c.status for c in fake.requests("sendMessage", CHLOE_CHAT)] == [400, 400, 200]


async def test_html_telegram_would_refuse_is_never_sent_half(fake, unpaced):
    channel = TelegramChannel.from_settings(unpaced)
    good = "<b>O'Brien &lt;Health &amp; Care&gt;</b> attended.\n" * 200
    html = good + "<p>A paragraph tag Telegram does not know.</p>\n" + good
    try:
        with pytest.raises(ChannelError) as refused:
            await channel.send(
                Outgoing(
                    outbox_id=7,
                    recipient=str(CHLOE_CHAT),
                    subject="",
                    text=html,
                    html=html,
                    message_id="<7@x>",
                )
            )
    finally:
        await channel.close()
    assert not refused.value.permanent
    assert "unsupported tag <p>" in str(refused.value)
    assert "(part 2 of " in str(refused.value)
    assert fake.requests("sendMessage") == []


@pytest.mark.parametrize(
    "markup",
    [
        "<b>Chloé O'Brien &lt;Health &amp; Care&gt;</b>",
        '<a href="https://evalbot.example/s/abc?x=1&amp;y=2">Open</a> &#39;quoted&#39;',
        '<pre><code class="language-text">x</code></pre> <span class="tg-spoiler">s</span>',
        "<blockquote expandable>long</blockquote> <tg-spoiler>s</tg-spoiler>",
    ],
)
def test_html_telegram_takes_passes_the_check(markup, fake):
    from bot.telegram.html import problem
    from tests.fake_telegram import parse_html

    assert problem(markup) is None
    parse_html(markup)  # the strict stand-in agrees


@pytest.mark.parametrize(
    "markup",
    ["<p>x</p>", "O'Brien <Health & Care>", "<b>open", "<b><i>x</b></i>", "&nbsp;", "a > b"],
)
def test_html_telegram_refuses_fails_the_check(markup):
    from bot.telegram.html import problem
    from tests.fake_telegram import ApiError, parse_html

    assert problem(markup) is not None
    with pytest.raises(ApiError):
        parse_html(markup)
