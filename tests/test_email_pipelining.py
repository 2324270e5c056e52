"""Pipelined sending (RFC 2920, 3030) against a real aiosmtpd server on loopback: where the relay
offers PIPELINING and CHUNKING, a message's MAIL, RCPT, BDAT and the message go in one write;
with PIPELINING alone, MAIL, RCPT and DATA. Every refusal among the replies ends as it would
have one command at a time: a refused recipient fails that message alone, a 4xx is tried again,
a refused DATA pauses the channel, a lost connection is tried again with the same Message-ID.
(``tests/test_email_channel.py`` runs the relay's other misbehaviours all three ways.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.channels.base import ChannelError
from bot.channels.email import SmtpChannel
from surveys.models import OutboxState
from tests.conftest import World
from tests.smtp_servers import SmtpServer, running
from tests.test_dispatch import NOW, dispatch, make_settings, queue, rows
from tests.test_email_channel import message, smtp_settings

ALICE = "alice.okafor@riverside.example"
CHLOE = "chloe.obrien@northgate.example"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A relay offering PIPELINING but not CHUNKING: MAIL, RCPT and DATA, then the message."""
    with running(chunking=False) as server:
        yield server


def commands_together(server: SmtpServer) -> list[bytes]:
    """What came in the reads from the network that carried a MAIL command."""
    return [chunk for chunk in server.recorder.chunks if chunk.startswith(b"MAIL FROM:")]


async def test_a_message_goes_in_one_write_where_the_relay_offers_chunking() -> None:
    with running() as server:
        settings = smtp_settings(server.port, smtp_connections=1)
        channel = SmtpChannel(settings)
        for n in range(3):
            outgoing = message(settings, to=f"delegate{n}@riverside.example", outbox_id=n)
            await channel.send(outgoing)
        await channel.close()
        assert len(server.received) == 3
        for n, (chunk, received) in enumerate(
            zip(commands_together(server), server.received, strict=True)
        ):
            assert chunk == (
                f"MAIL FROM:<training@riverside.example>\r\n"
                f"RCPT TO:<delegate{n}@riverside.example>\r\n"
                f"BDAT {len(received.data)} LAST\r\n".encode()
                + received.data
            )
            assert received.message["To"].addresses[0].addr_spec == f"delegate{n}@riverside.example"


async def test_a_message_s_commands_go_in_one_write_where_the_relay_offers_pipelining(
    smtp: SmtpServer,
) -> None:
    settings = smtp_settings(smtp.port, smtp_connections=1)
    channel = SmtpChannel(settings)
    for n in range(3):
        await channel.send(message(settings, to=f"delegate{n}@riverside.example", outbox_id=n))
    await channel.close()
    assert [r.rcpt_tos for r in smtp.received] == [
        [f"delegate{n}@riverside.example"] for n in range(3)
    ]
    assert commands_together(smtp) == [
        f"MAIL FROM:<training@riverside.example>\r\nRCPT TO:<delegate{n}@riverside.example>\r\n"
        "DATA\r\n".encode()
        for n in range(3)
    ]


async def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    with running(pipelining=False) as server:  # CHUNKING alone is not used either
        settings = smtp_settings(server.port, smtp_connections=1)
        channel = SmtpChannel(settings)
        await channel.send(message(settings, outbox_id=1))
        await channel.send(message(settings, outbox_id=2))
        await channel.close()
        assert len(server.received) == 2
        assert commands_together(server) == [b"MAIL FROM:<training@riverside.example>\r\n"] * 2


async def test_a_recipient_refused_after_the_sender_was_accepted_fails_that_message_alone(
    smtp: SmtpServer,
) -> None:
    smtp.refuse(CHLOE, f"550 5.1.1 <{CHLOE}>: Recipient address rejected")
    settings = smtp_settings(smtp.port, smtp_connections=1)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings, to=CHLOE, outbox_id=1))
    assert failed.value.permanent and not failed.value.channel_fault
    assert "refused the recipient" in str(failed.value) and "550 5.1.1" in str(failed.value)
    # The relay's answer to the DATA that followed the refused RCPT was read and set aside: the
    # next message on the same connection gets its own replies.
    await channel.send(message(settings, to=ALICE, outbox_id=2))
    await channel.close()
    assert [r.rcpt_tos for r in smtp.received] == [[ALICE]]
    assert smtp.recorder.connections == 1


async def test_data_refused_after_the_recipient_was_accepted_is_the_relays_fault(
    smtp: SmtpServer,
) -> None:
    smtp.fail_next("data-command", "554 5.7.0 Message refused by policy")
    settings = smtp_settings(smtp.port, smtp_connections=1)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings, outbox_id=1))
    assert failed.value.channel_fault and not failed.value.permanent
    assert "refused the message: 554 5.7.0" in str(failed.value)
    await channel.send(message(settings, outbox_id=2))
    await channel.close()
    assert len(smtp.received) == 1 and smtp.recorder.connections == 1


async def test_a_relay_that_takes_data_after_refusing_the_recipient_is_left_for_a_fresh_one(
    smtp: SmtpServer,
) -> None:
    smtp.refuse(CHLOE, "550 5.1.1 User unknown")
    smtp.fail_next("data-command", "accept")  # 354, waiting for a message that never comes
    settings = smtp_settings(smtp.port, smtp_connections=1)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings, to=CHLOE, outbox_id=1))
    assert failed.value.permanent
    await channel.send(message(settings, to=ALICE, outbox_id=2))
    await channel.close()
    assert [r.rcpt_tos for r in smtp.received] == [[ALICE]]
    assert smtp.recorder.connections == 2
    # Nothing more was written on the first connection: an RSET there would have been taken
    # as the start of the message.
    assert b"RSET\r\n" not in smtp.recorder.chunks


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "pipelined-data"])
async def test_pipelined_refusals_end_in_the_outbox_as_they_did_one_command_at_a_time(
    engine: Engine, database_url: str, session: Session, world: World, chunking: bool
) -> None:
    with running(chunking=chunking) as smtp:
        await _refusals_in_the_outbox(engine, database_url, session, smtp, world)


async def _refusals_in_the_outbox(
    engine: Engine, database_url: str, session: Session, smtp: SmtpServer, world: World
) -> None:
    people: dict[str, Any] = world.standard()
    settings = make_settings(database_url, smtp.port, smtp_connections=1)
    queue(session, people["alice"], "to-retry")
    queue(session, people["chloe"], "refused")
    smtp.fail_next("rcpt", "451 4.7.1 Greylisted, try again later")
    smtp.refuse(CHLOE, "550 5.1.1 User unknown")

    report = await dispatch(engine, settings, NOW)

    found = rows(engine)
    assert (report.sent, report.retrying) == (0, 1)
    assert found["to-retry"].state == OutboxState.FAILED
    assert "451 4.7.1" in (found["to-retry"].last_error or "")
    assert found["refused"].state == OutboxState.DEAD  # Chloe has no Telegram to fall back on
    assert "550 5.1.1" in (found["refused"].last_error or "")

    later = await dispatch(engine, settings, found["to-retry"].available_at)
    sent = rows(engine)["to-retry"]
    assert later.sent == 1 and sent.state == OutboxState.SENT and sent.attempts == 2
    assert smtp.received[0].message["Message-ID"] == found["to-retry"].message_id
