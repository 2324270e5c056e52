"""``evalbot outbox`` and its commands, as an admin uses them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from surveys.models import (
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
)
from surveys.outbox import enqueue
from tests.conftest import World, utc
from tests.smtp_servers import SmtpServer, running

NOW = utc("2026-03-02 09:00")
runner = CliRunner()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, engine: Engine) -> None:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)


def use_relay(monkeypatch: pytest.MonkeyPatch, server: SmtpServer) -> None:
    monkeypatch.setenv("EVALBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EVALBOT_SMTP_PORT", str(server.port))
    monkeypatch.setenv("EVALBOT_SMTP_SECURITY", "none")
    monkeypatch.setenv("EVALBOT_MAIL_FROM", "Evalbot <evalbot@partnership.example>")


def evalbot(*args: str) -> Any:
    return runner.invoke(app, list(args))


def add(session: Session, person: Person, key: str, **fields: Any) -> OutboxMessage:
    row = enqueue(
        session,
        key=key,
        person=person,
        template="admin-test",
        context={},
        due_at=NOW,
        kind=MessageKind.NOTICE,
    )
    assert row is not None
    for name, value in fields.items():
        setattr(row, name, value)
    session.add(row)
    session.commit()
    return row


def test_the_overview_counts_and_explains_what_failed(
    env: None, session: Session, world: World
) -> None:
    people = world.standard()
    add(session, people["alice"], "a")
    add(session, people["bob"], "b", state=OutboxState.SENT, sent_at=NOW)
    add(
        session,
        people["chloe"],
        "c",
        state=OutboxState.DEAD,
        attempts=10,
        last_error="gave up after 10 attempts; the last: 451 4.3.0 Mailbox busy",
    )
    add(
        session,
        people["dev"],
        "d",
        state=OutboxState.FAILED,
        attempts=2,
        last_error="lost the connection to relay:587",
        available_at=utc("2026-03-02 10:15"),
    )

    result = evalbot("outbox")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:2] == ["pending", "1"] for line in lines)
    assert any(line.split()[:2] == ["dead", "1"] for line in lines)
    assert any(line.split()[:2] == ["failed", "1"] for line in lines)
    assert "chloe.obrien@northgate.example" in result.output
    assert "gave up after 10 attempts; the last: 451 4.3.0 Mailbox busy" in result.output
    assert "next try 02 Mar 10:15" in result.output  # local time: GMT in March
    assert "lost the connection to relay:587" in result.output
    # Pending messages are listed too, with when they are due.
    pending = result.output.split("Pending (")[1].split("Failed (")[0]
    assert "alice.okafor@riverside.example: admin-test (notice), due 02 Mar 09:00" in pending
    assert "bob.whitfield" not in result.output  # sent: counted, not listed
    only_sent = evalbot("outbox", "--state", "sent")
    assert "bob.whitfield@riverside.example" in only_sent.output
    assert "chloe.obrien" not in only_sent.output


def test_retry_requeues_the_dead_and_they_go_at_the_next_delivery(
    env: None,
    monkeypatch: pytest.MonkeyPatch,
    smtp: SmtpServer,
    engine: Engine,
    session: Session,
    world: World,
) -> None:
    use_relay(monkeypatch, smtp)
    people = world.standard()
    dead = add(session, people["alice"], "a", state=OutboxState.DEAD, attempts=10)
    add(session, people["bob"], "b", state=OutboxState.DEAD, attempts=10)

    result = evalbot("outbox", "retry", str(dead.id), "--now", "2026-03-02T09:00")
    assert result.exit_code == 0, result.output
    assert "Re-queued 1 dead message." in result.output

    delivered = evalbot("outbox", "deliver", "--until-idle")
    assert delivered.exit_code == 0, delivered.output
    assert "sent 1" in delivered.output
    assert [r.rcpt_tos for r in smtp.received] == [["alice.okafor@riverside.example"]]
    with Session(engine) as check:
        states = dict(check.exec(select(OutboxMessage.idempotency_key, OutboxMessage.state)).all())
    assert states == {"a": OutboxState.SENT, "b": OutboxState.DEAD}


def test_clearing_an_undeliverable_address_lets_its_messages_go_again(
    env: None, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer, session: Session, world: World
) -> None:
    use_relay(monkeypatch, smtp)
    chloe = world.standard()["chloe"]
    chloe.email_status = Deliverability.UNUSABLE
    chloe.email_status_reason = "550 5.1.1 No such mailbox (outbox message 1)"
    session.add(chloe)
    session.commit()
    add(session, chloe, "c", state=OutboxState.DEAD, last_error="not sent: undeliverable")

    result = evalbot("outbox", "clear-address", "Chloe.OBrien@northgate.example")
    assert result.exit_code == 0, result.output
    assert "550 5.1.1 No such mailbox" in result.output
    assert "evalbot outbox retry --to chloe.obrien@northgate.example" in result.output

    assert evalbot("outbox", "retry", "--to", "chloe.obrien@northgate.example").exit_code == 0
    assert "sent 1" in evalbot("outbox", "deliver", "--until-idle").output
    assert smtp.received[0].rcpt_tos == ["chloe.obrien@northgate.example"]

    unknown = evalbot("outbox", "clear-address", "nobody@example.org")
    assert unknown.exit_code == 2
    assert "No person has the email address 'nobody@example.org'" in unknown.output


def test_a_test_email_shows_what_the_relay_said(
    env: None, monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    use_relay(monkeypatch, smtp)
    sent = evalbot("outbox", "test-email", "coordinator@partnership.example")
    assert sent.exit_code == 0, sent.output
    assert "Sent to coordinator@partnership.example: 250 2.0.0 Ok" in sent.output
    mail = smtp.received[0].message
    assert mail["Subject"].startswith("Evalbot test message for")

    smtp.refuse("typo@partnership.exmaple", "550 5.1.2 Bad destination domain")
    refused = evalbot("outbox", "test-email", "typo@partnership.exmaple")
    assert refused.exit_code == 1
    assert "550 5.1.2 Bad destination domain" in refused.output


def test_without_a_relay_deliver_fills_the_mail_folder(
    env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session: Session, world: World
) -> None:
    monkeypatch.setenv("EVALBOT_MAIL_DIR", str(tmp_path / "outgoing"))
    people = world.standard()
    for key in ("a", "b"):
        add(session, people["alice"], key)
    result = evalbot("outbox", "deliver", "--until-idle")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "outgoing").glob("*.eml"))) == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_relay_login_can_come_from_a_password_file(
    env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret-from-a-file\n")
    with running(logins={"evalbot@partnership.example": "s3cret-from-a-file"}) as server:
        use_relay(monkeypatch, server)
        monkeypatch.setenv("EVALBOT_SMTP_USERNAME", "evalbot@partnership.example")
        monkeypatch.setenv("EVALBOT_SMTP_PASSWORD_FILE", str(secret))
        monkeypatch.setenv("EVALBOT_REPLY_TO", "Training Team <training-team@riverside.example>")
        sent = evalbot("outbox", "test-email", "coordinator@partnership.example")
        assert sent.exit_code == 0, sent.output
        assert "Sent to coordinator@partnership.example: 250" in sent.output
        mail = server.received[0].message
        assert mail["Reply-To"].addresses[0].addr_spec == "training-team@riverside.example"

        secret.write_text("not-the-password\n")
        refused = evalbot("outbox", "test-email", "coordinator@partnership.example")
        assert refused.exit_code == 1
        assert "refused the login for 'evalbot@partnership.example'" in refused.output
        assert "EVALBOT_SMTP_PASSWORD" in refused.output
        assert len(server.received) == 1
