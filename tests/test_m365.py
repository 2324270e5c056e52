"""Microsoft 365 without passwords: MSAL's client-credentials grant against a fake Entra ID on
loopback (HTTPS, a certificate made here), and the token used by XOAUTH2 with an aiosmtpd relay
that checks it. Time moves by a clock the test owns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.channels.base import Channel as ChannelProtocol
from bot.channels.base import ChannelError
from bot.channels.email import SmtpChannel
from bot.dispatcher import deliver_due
from bot.pauses import channel_pauses
from bot.settings import Settings, SettingsError, load_settings
from surveys.models import Channel, MessageKind, OutboxMessage, OutboxState, Person
from surveys.outbox import enqueue
from tests.conftest import World, utc
from tests.fake_m365 import CLIENT_ID, SECRET, TENANT, FakeEntra
from tests.loopback import make_certificate
from tests.smtp_servers import SmtpServer, running
from tests.test_email_channel import message

MAILBOX = "training@riverside.example"
T0 = utc("2026-12-01 09:00")

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("entra"))


@pytest.fixture
def entra(certificate: tuple[Path, Path]) -> Iterator[FakeEntra]:
    with FakeEntra(certificate) as fake:
        yield fake


@pytest.fixture
def relay(entra: FakeEntra) -> Iterator[SmtpServer]:
    with running(xoauth2=(MAILBOX, entra.valid)) as server:
        server.behaviour.drop_idle = True  # a fresh connection, so a fresh login, per message
        yield server


def oauth_settings(
    relay: SmtpServer, entra: FakeEntra, certificate: tuple[Path, Path], **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": relay.port,
        "smtp_security": "none",
        "smtp_timeout": 5.0,
        "smtp_connections": 1,
        "smtp_auth": "oauth2",
        "smtp_username": MAILBOX,
        "m365_tenant_id": TENANT,
        "m365_client_id": CLIENT_ID,
        "m365_client_secret": SECRET,
        "m365_authority": entra.url,
        "m365_ca_file": certificate[0],
        "mail_from": f"Riverside Partnership <{MAILBOX}>",
        "public_url": "https://evalbot.riverside.example",
        **extra,
    }
    return load_settings(**values)


async def test_a_token_is_fetched_kept_and_renewed_before_it_expires(
    relay: SmtpServer, entra: FakeEntra, certificate: tuple[Path, Path]
) -> None:
    settings = oauth_settings(relay, entra, certificate)
    clock = Clock(T0)
    channel = SmtpChannel(settings, clock=clock)
    try:
        await channel.send(message(settings, outbox_id=1))
        assert entra.issued == ["token-1"]
        [form] = entra.requests
        assert form["grant_type"] == ["client_credentials"]
        assert form["scope"] == ["https://outlook.office365.com/.default"]
        assert relay.recorder.xoauth2_logins == [(MAILBOX, "token-1")]

        clock.at = T0 + timedelta(minutes=50)  # 9 minutes left: kept
        await channel.send(message(settings, outbox_id=2))
        assert entra.issued == ["token-1"]

        clock.at = T0 + timedelta(minutes=55, seconds=30)  # under 5 minutes left: renewed
        await channel.send(message(settings, outbox_id=3))
        assert entra.issued == ["token-1", "token-2"]
        assert relay.recorder.xoauth2_logins[-1] == (MAILBOX, "token-2")
        assert channel.tokens is not None
        assert channel.tokens.expires_at == clock.at + timedelta(seconds=3599)
    finally:
        await channel.close()
    assert [r.rcpt_tos for r in relay.received] == [["chloe.obrien@northgate.example"]] * 3
    assert all(r.mail_from == MAILBOX for r in relay.received)


async def test_a_refused_token_is_renewed_once_and_the_message_goes(
    relay: SmtpServer, entra: FakeEntra, certificate: tuple[Path, Path]
) -> None:
    settings = oauth_settings(relay, entra, certificate)
    channel = SmtpChannel(settings, clock=Clock(T0))
    await channel.send(message(settings, outbox_id=1))
    entra.revoke("token-1")  # withdrawn before its time: the relay refuses it
    await channel.send(message(settings, outbox_id=2))
    await channel.close()
    assert entra.issued == ["token-1", "token-2"]
    assert [token for _, token in relay.recorder.xoauth2_logins] == [
        "token-1",
        "token-1",
        "token-2",
    ]
    assert len(relay.received) == 2


async def test_a_token_refused_twice_is_the_channels_fault(
    relay: SmtpServer, entra: FakeEntra, certificate: tuple[Path, Path]
) -> None:
    settings = oauth_settings(relay, entra, certificate)
    relay.behaviour.mailbox = "someone-else@riverside.example"  # the app may not send as ours
    channel = SmtpChannel(settings, clock=Clock(T0))
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert failed.value.channel_fault and not failed.value.permanent
    assert "SMTP.SendAsApp" in str(failed.value) and "535 5.7.3" in str(failed.value)
    assert entra.issued == ["token-1", "token-2"]  # renewed once, no more
    assert relay.received == []


async def test_a_wrong_client_secret_says_which_setting(
    relay: SmtpServer, entra: FakeEntra, certificate: tuple[Path, Path]
) -> None:
    settings = oauth_settings(relay, entra, certificate, m365_client_secret="not-the-secret")
    channel = SmtpChannel(settings, clock=Clock(T0))
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert failed.value.channel_fault
    text = str(failed.value)
    assert "invalid_client" in text and "AADSTS7000215" in text
    assert "EVALBOT_M365_CLIENT_SECRET" in text and "not-the-secret" not in text
    assert relay.recorder.xoauth2_logins == []


async def test_an_unknown_tenant_is_named(
    relay: SmtpServer, entra: FakeEntra, certificate: tuple[Path, Path]
) -> None:
    settings = oauth_settings(relay, entra, certificate, m365_tenant_id="contoso-typo")
    channel = SmtpChannel(settings, clock=Clock(T0))
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert failed.value.channel_fault
    assert "contoso-typo" in str(failed.value) and "EVALBOT_M365_TENANT_ID" in str(failed.value)


async def test_entra_unreachable_is_a_passing_fault(
    relay: SmtpServer, certificate: tuple[Path, Path], entra: FakeEntra
) -> None:
    settings = oauth_settings(relay, entra, certificate, m365_authority="https://127.0.0.1:9")
    channel = SmtpChannel(settings, clock=Clock(T0))
    with pytest.raises(ChannelError) as failed:
        await channel.send(message(settings))
    await channel.close()
    assert not failed.value.channel_fault and not failed.value.permanent
    assert "cannot reach Entra ID" in str(failed.value)


async def test_a_refused_token_pauses_delivery_and_keeps_the_messages(
    relay: SmtpServer,
    entra: FakeEntra,
    certificate: tuple[Path, Path],
    engine: Engine,
    session: Session,
    world: World,
    database_url: str,
) -> None:
    people = world.standard()
    alice: Person = people["alice"]
    enqueue(
        session,
        key="n1",
        person=alice,
        template="admin-test",
        context={"sent_by": "the test"},
        due_at=T0,
        kind=MessageKind.NOTICE,
    )
    session.commit()
    settings = oauth_settings(relay, entra, certificate, database_url=database_url)
    relay.behaviour.tokens = set()  # the relay takes no token at all
    channel = SmtpChannel(settings, clock=Clock(T0))
    channels: dict[Channel, ChannelProtocol] = {Channel.EMAIL: channel}
    report = await deliver_due(engine, settings, channels, now=T0)
    await channel.close()
    assert report.sent == 0 and report.paused == 1
    [pause] = channel_pauses(session)
    assert "SMTP.SendAsApp" in pause.reason

    [row] = Session(engine).exec(select(OutboxMessage)).all()
    assert row.state == OutboxState.PENDING and row.attempts == 0


def test_oauth2_without_the_app_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALBOT_SMTP_AUTH", "oauth2")
    monkeypatch.setenv("EVALBOT_M365_TENANT_ID", TENANT)
    with pytest.raises(SettingsError) as failed:
        load_settings()
    text = str(failed.value)
    assert "EVALBOT_SMTP_AUTH" in text
    assert "EVALBOT_M365_CLIENT_ID" in text and "EVALBOT_M365_CLIENT_SECRET" in text
    assert "EVALBOT_SMTP_USERNAME" in text and "EVALBOT_M365_TENANT_ID," not in text


def test_the_client_secret_can_come_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "m365-secret"
    secret.write_text(SECRET + "\n")
    for name, value in {
        "EVALBOT_SMTP_AUTH": "oauth2",
        "EVALBOT_SMTP_USERNAME": MAILBOX,
        "EVALBOT_M365_TENANT_ID": TENANT,
        "EVALBOT_M365_CLIENT_ID": CLIENT_ID,
        "EVALBOT_M365_CLIENT_SECRET_FILE": str(secret),
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.m365_client_secret is not None
    assert settings.m365_client_secret.get_secret_value() == SECRET
