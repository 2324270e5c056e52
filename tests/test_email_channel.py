"""The email channel against a real aiosmtpd server on loopback: what arrives, and how each
misbehaviour of a relay is classed (transient: try again later; permanent: the address is bad).

Each test that uses the ``smtp`` fixture runs three times: against a relay offering PIPELINING
and CHUNKING (the channel writes MAIL, RCPT, BDAT and the message at once), PIPELINING alone
(MAIL, RCPT and DATA at once, then the message) and neither (one command at a time)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.channels.base import ChannelError, Outgoing
from bot.channels.email import MailFolderChannel, SmtpChannel, build_message
from bot.rendering import render_email
from bot.settings import Settings, load_settings
from surveys.models import Channel, MessageKind, OutboxMessage
from tests.conftest import utc
from tests.loopback import make_certificate, server_context
from tests.smtp_servers import SmtpServer, running

NOW = utc("2026-03-02 09:00")
CHLOE = "Chloé O'Brien <Health & Care>"


@pytest.fixture(
    params=[(True, True), (True, False), (False, False)],
    ids=["bdat", "pipelined-data", "one-command-at-a-time"],
)
def smtp(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    pipelining, chunking = request.param
    with running(pipelining=pipelining, chunking=chunking) as server:
        yield server


def smtp_settings(port: int, **extra: object) -> Settings:
    values: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout": 5.0,
        "mail_from": "Riverside Partnership <training@riverside.example>",
        "reply_to": "Training Team <training-team@riverside.example>",
        "partnership_name": "Riverside Safeguarding Children Partnership",
        "public_url": "https://evalbot.riverside.example",
        **extra,
    }
    return load_settings(**values)


def message(
    settings: Settings,
    *,
    to: str = "chloe.obrien@northgate.example",
    name: str = CHLOE,
    kind: MessageKind = MessageKind.NOTICE,
    outbox_id: int = 7,
) -> Outgoing:
    row = OutboxMessage(
        id=outbox_id,
        idempotency_key=f"test:{outbox_id}",
        person_id=3,
        channel=Channel.EMAIL,
        recipient=to,
        template="admin-test",
        context={"sent_by": "cli:admin"},
        kind=kind,
        due_at=NOW,
        available_at=NOW,
    )
    return render_email(settings, row, recipient=to, recipient_name=name, now=NOW)


async def test_a_notice_arrives_as_text_and_html_with_its_headers(smtp: SmtpServer) -> None:
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    outgoing = message(settings)
    delivered = await channel.send(outgoing)
    await channel.close()

    assert delivered.server_reply.startswith("250 2.0.0 Ok: queued as")
    [got] = smtp.received
    assert got.mail_from == "training@riverside.example"
    assert got.rcpt_tos == ["chloe.obrien@northgate.example"]
    mail = got.message
    assert mail["From"].addresses[0].display_name == "Riverside Partnership"
    assert mail["To"].addresses[0].display_name == CHLOE
    assert mail["To"].addresses[0].addr_spec == "chloe.obrien@northgate.example"
    assert mail["Reply-To"].addresses[0].addr_spec == "training-team@riverside.example"
    assert mail["Subject"] == "Evalbot test message for Riverside Safeguarding Children Partnership"
    assert mail["Message-ID"] == outgoing.message_id
    assert outgoing.message_id.endswith("@riverside.example>")
    assert mail["Date"].datetime == NOW
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    assert "List-Unsubscribe" not in mail
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert f"Dear {CHLOE}," in text
    assert "Dear Chloé O&#39;Brien &lt;Health &amp; Care&gt;," in html
    # A notice says why it is not subject to opt-out, in both parts.
    assert "sent even if you have unsubscribed" in text
    assert "sent even if you have unsubscribed" in html
    # Readable without images and in Outlook: no image, a table layout with inline styles.
    assert "<img" not in html
    assert 'role="presentation"' in html


@pytest.mark.parametrize("kind", [MessageKind.REMINDER, MessageKind.CAMPAIGN])
async def test_reminders_and_campaign_messages_offer_one_click_unsubscribe(
    smtp: SmtpServer, kind: MessageKind
) -> None:
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    await channel.send(message(settings, kind=kind))
    await channel.close()

    mail = smtp.received[0].message
    [url] = [part.strip("<>") for part in mail["List-Unsubscribe"].split(",")]
    assert url.startswith("https://evalbot.riverside.example/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in mail.get_body(("plain",)).get_content()
    assert url in mail.get_body(("html",)).get_content()


async def test_connections_are_kept_and_reused(smtp: SmtpServer) -> None:
    settings = smtp_settings(smtp.port, smtp_connections=2)
    channel = SmtpChannel(settings)
    for n in range(12):
        await channel.send(message(settings, to=f"delegate{n}@riverside.example", outbox_id=n))
    await channel.close()
    assert len(smtp.received) == 12
    assert smtp.recorder.connections == 2  # the pool's two connections carried all twelve


async def test_a_relay_that_drops_idle_connections_is_reconnected(smtp: SmtpServer) -> None:
    smtp.behaviour.drop_idle = True
    settings = smtp_settings(smtp.port, smtp_connections=1)
    channel = SmtpChannel(settings)
    for n in range(3):
        await channel.send(message(settings, outbox_id=n))
    await channel.close()
    assert len(smtp.received) == 3
    assert smtp.recorder.connections == 3


async def test_421_is_transient_and_the_next_message_goes(smtp: SmtpServer) -> None:
    smtp.fail_next("mail", "421 4.3.2 Service shutting down, try later")
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings, outbox_id=1))
    assert not failed.value.permanent
    assert "421" in str(failed.value)
    await channel.send(message(settings, outbox_id=2))
    await channel.close()
    assert len(smtp.received) == 1


async def test_454_for_a_recipient_is_transient(smtp: SmtpServer) -> None:
    smtp.fail_next("rcpt", "454 4.7.1 Relay access temporarily denied")
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert not failed.value.permanent
    assert "454 4.7.1" in str(failed.value)


async def test_550_for_one_recipient_is_permanent_and_others_still_go(smtp: SmtpServer) -> None:
    smtp.refuse(
        "chloe.obrien@northgate.example", "550 5.1.1 <chloe.obrien@northgate.example>: no such user"
    )
    settings = smtp_settings(smtp.port, smtp_connections=1)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    assert failed.value.permanent
    assert "550 5.1.1" in str(failed.value) and "chloe.obrien@northgate.example" in str(
        failed.value
    )
    await channel.send(message(settings, to="alice.okafor@riverside.example", name="Alice Okafor"))
    await channel.close()
    assert [r.rcpt_tos for r in smtp.received] == [["alice.okafor@riverside.example"]]
    assert smtp.recorder.connections == 1  # the refusal did not cost the connection


async def test_a_5xx_to_the_message_is_the_relays_fault_not_the_recipients(
    smtp: SmtpServer,
) -> None:
    smtp.fail_next("data", "554 5.7.1 Message rejected")
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert not failed.value.permanent
    assert failed.value.channel_fault


async def test_a_refused_sender_is_the_relays_setting_not_the_persons_address(
    smtp: SmtpServer,
) -> None:
    smtp.fail_next("mail", "550 5.7.1 Sender not allowed")
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert not failed.value.permanent
    assert failed.value.channel_fault
    assert "EVALBOT_MAIL_FROM" in str(failed.value)


async def test_a_disconnect_in_the_middle_of_a_message_is_transient(smtp: SmtpServer) -> None:
    smtp.fail_next("data", "disconnect")
    settings = smtp_settings(smtp.port)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings, outbox_id=1))
    assert not failed.value.permanent
    await channel.send(message(settings, outbox_id=2))
    await channel.close()
    assert len(smtp.received) == 1
    assert smtp.recorder.connections == 2


async def test_a_slow_relay_times_out_as_transient(smtp: SmtpServer) -> None:
    smtp.fail_next("data", "stall")
    settings = smtp_settings(smtp.port, smtp_timeout=0.3)
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings, outbox_id=1))
    assert not failed.value.permanent
    assert "timeout" in str(failed.value)
    await channel.send(message(settings, outbox_id=2))
    await channel.close()
    assert len(smtp.received) == 1


async def test_no_relay_listening_is_transient_and_says_where() -> None:
    settings = smtp_settings(9, smtp_timeout=1.0)  # the discard port: nothing listens there
    channel = SmtpChannel(settings)
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    assert not failed.value.permanent
    assert "127.0.0.1:9" in str(failed.value)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_wrong_password_names_the_settings_to_check() -> None:
    with running(logins={"evalbot": "right"}) as server:
        settings = smtp_settings(server.port, smtp_username="evalbot", smtp_password="wrong")
        channel = SmtpChannel(settings)
        with pytest.raises(ChannelError) as failed:
            await channel.send(message(settings))
        assert not failed.value.permanent
        assert failed.value.channel_fault
        assert "EVALBOT_SMTP_PASSWORD" in str(failed.value)

        good = SmtpChannel(
            smtp_settings(server.port, smtp_username="evalbot", smtp_password="right")
        )
        await good.send(message(settings))
        await good.close()
        assert len(server.received) == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"), "relay")


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_starttls_and_tls_check_the_relays_certificate(
    security: str, certificate: tuple[Path, Path]
) -> None:
    context = server_context(certificate)
    kwargs = {"tls_context": context} if security == "tls" else {"starttls_context": context}
    with running(**kwargs) as server:
        untrusted = smtp_settings(server.port, smtp_security=security)
        with pytest.raises(ChannelError) as failed:
            await SmtpChannel(untrusted).send(message(untrusted))
        assert not failed.value.permanent
        assert "certificate" in str(failed.value).lower()

        settings = smtp_settings(
            server.port, smtp_security=security, smtp_ca_file=certificate[0], smtp_connections=1
        )
        channel = SmtpChannel(settings)
        greetings = server.recorder.connections
        await channel.send(message(settings))
        await channel.send(message(settings, outbox_id=8))
        await channel.close()
        assert len(server.received) == 2
        # Both went over one encrypted connection (greeted again after STARTTLS).
        assert server.recorder.connections - greetings == (2 if security == "starttls" else 1)


async def test_the_mail_folder_keeps_one_file_per_message(tmp_path: Path) -> None:
    settings = load_settings(mail_dir=tmp_path / "mail")
    channel = MailFolderChannel(settings)
    outgoing = message(settings)
    first = await channel.send(outgoing)
    again = await channel.send(outgoing)  # a retry of the same row
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    assert first.server_reply == again.server_reply == f"written to {files[0]}"
    mail = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert mail["Message-ID"] == outgoing.message_id
    assert mail["To"].addresses[0].display_name == CHLOE


def test_headers_are_encoded_folded_and_cannot_be_injected() -> None:
    outgoing = Outgoing(
        outbox_id=1,
        recipient="alice.okafor@riverside.example",
        subject="Évaluation: "
        + "working together to safeguard children " * 4
        + "\r\nBcc: x@evil.example",
        text="Line one\nLine two with a very long sentence " + "that goes on " * 20,
        html="<p>Ünïcode</p>",
        message_id="<1.abc@riverside.example>",
        headers={"To": 'Alice "Ali" Okafor\n <alice.okafor@riverside.example>'},
    )
    data = build_message(outgoing, mail_from="Evalbot <evalbot@riverside.example>")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    mail = email.message_from_bytes(data, policy=email.policy.default)
    assert "Bcc" not in mail
    assert mail["Subject"].startswith("Évaluation: working together")
    assert mail.get_body(("html",)).get_content().strip() == "<p>Ünïcode</p>"
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == outgoing.text + "\n"  # long lines come back whole from quoted-printable


async def test_lines_starting_with_a_dot_and_stray_line_breaks_arrive_intact(
    smtp: SmtpServer,
) -> None:
    settings = smtp_settings(smtp.port)
    text = ".\n. a line that starts with a dot\n..two\nold\rMac line\r\nWindows line\n"
    outgoing = Outgoing(
        outbox_id=9,
        recipient="alice.okafor@riverside.example",
        subject="Dots",
        text=text,
        html="<p>\n.</p>\n",
        message_id="<9.abc@riverside.example>",
    )
    channel = SmtpChannel(settings)
    await channel.send(outgoing)
    await channel.send(outgoing)  # the connection is still in step after such a message
    await channel.close()

    assert len(smtp.received) == 2
    mail = smtp.received[0].message
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == (
        ".\n. a line that starts with a dot\n..two\nold\nMac line\nWindows line\n"
    )
    assert mail.get_body(("html",)).get_content().replace("\r\n", "\n") == "<p>\n.</p>\n"
    raw = smtp.received[0].data
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
