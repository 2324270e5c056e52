"""Unsubscribing from the link in a reminder: the page, RFC 8058's one-click POST, and what
the dispatcher then sends (notices still go, reminders do not)."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.channels.registry import build_channels
from bot.dispatcher import deliver_due
from bot.settings import Settings, load_settings
from bot.web.app import create_app
from surveys.models import AuditEntry, MessageKind, OutboxMessage, OutboxState, Person
from surveys.outbox import enqueue
from tests.conftest import World, utc

NOW = utc("2026-03-02 09:00")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        mail_dir=tmp_path / "mail",
        public_url="https://evalbot.partnership.example",
        partnership_name="Riverside Safeguarding Children Partnership",
    )


@pytest.fixture
def client(settings: Settings, engine: Engine) -> TestClient:
    app = create_app(settings, engine)
    app.state.clock = lambda: NOW
    return TestClient(app, base_url="https://evalbot.partnership.example")


async def send(
    engine: Engine,
    settings: Settings,
    session: Session,
    person: Person,
    key: str,
    kind: MessageKind,
) -> OutboxMessage:
    enqueue(
        session, key=key, person=person, template="admin-test", context={}, due_at=NOW, kind=kind
    )
    session.commit()
    await deliver_due(engine, settings, build_channels(settings), now=NOW)
    with Session(engine) as fresh:
        return fresh.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).one()


def unsubscribe_path(settings: Settings, row: OutboxMessage) -> str:
    written = Path(settings.mail_dir).glob("*.eml")
    for path in written:
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if mail["Message-ID"] == row.message_id:
            url = mail["List-Unsubscribe"].strip("<>")
            assert url.startswith("https://evalbot.partnership.example/unsubscribe/")
            return url.removeprefix("https://evalbot.partnership.example")
    raise AssertionError("the reminder was not written")


def alice(engine: Engine) -> Person:
    with Session(engine) as session:
        return session.exec(select(Person).where(Person.name == "Alice Okafor")).one()


async def test_one_click_unsubscribe_stops_reminders_but_not_notices(
    engine: Engine, session: Session, settings: Settings, client: TestClient, world: World
) -> None:
    people: dict[str, Any] = world.standard()
    reminder = await send(engine, settings, session, people["alice"], "r1", MessageKind.REMINDER)
    path = unsubscribe_path(settings, reminder)

    page = client.get(path)
    assert page.status_code == 200
    assert "Alice Okafor" in page.text and ">Unsubscribe</button>" in page.text
    assert not alice(engine).email_opt_out  # looking changes nothing

    # What a mail client sends for List-Unsubscribe-Post: no cookie, no form token.
    done = client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert done.status_code == 200
    assert "You are unsubscribed" in done.text
    person = alice(engine)
    assert person.email_opt_out and person.telegram_opt_out
    with Session(engine) as check:
        assert check.exec(
            select(AuditEntry.action).where(AuditEntry.entity_id == person.id)
        ).all() == ["unsubscribed"]

    later = await send(engine, settings, session, people["alice"], "r2", MessageKind.REMINDER)
    notice = await send(engine, settings, session, people["alice"], "n1", MessageKind.NOTICE)
    assert later.state == OutboxState.WITHDRAWN
    assert notice.state == OutboxState.SENT
    # The notice says why it still came.
    [written] = [
        p
        for p in Path(settings.mail_dir).glob("*.eml")
        if notice.message_id and notice.message_id.strip("<>").split("@")[0] in p.name
    ]
    assert "sent even if you have unsubscribed" in written.read_text()

    # Pressing again is harmless; the page then offers to undo it.
    assert client.post(path).status_code == 200
    again = client.get(path)
    assert "send reminders again" in again.text


async def test_subscribing_again_needs_the_pages_own_form(
    engine: Engine, session: Session, settings: Settings, client: TestClient, world: World
) -> None:
    people: dict[str, Any] = world.standard()
    reminder = await send(engine, settings, session, people["alice"], "r1", MessageKind.REMINDER)
    path = unsubscribe_path(settings, reminder)
    page = client.post(path)
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token is not None

    refused = client.post(f"{path}/undo", data={"form_token": "forged"})
    assert refused.status_code == 400
    assert alice(engine).email_opt_out

    accepted = client.post(f"{path}/undo", data={"form_token": token.group(1)})
    assert accepted.status_code == 200 and "Reminders are back on" in accepted.text
    assert not alice(engine).email_opt_out

    later = await send(engine, settings, session, people["alice"], "r2", MessageKind.REMINDER)
    assert later.state == OutboxState.SENT


def test_an_unknown_link_is_refused_without_saying_why(client: TestClient, engine: Engine) -> None:
    page = client.get("/unsubscribe/not-a-real-token")
    assert page.status_code == 404
    assert "not one we know" in page.text
    assert client.post("/unsubscribe/not-a-real-token").status_code == 404


async def test_a_notice_carries_no_unsubscribe_header(
    engine: Engine, session: Session, settings: Settings, world: World
) -> None:
    people: dict[str, Any] = world.standard()
    notice = await send(engine, settings, session, people["chloe"], "n1", MessageKind.NOTICE)
    [written] = Path(settings.mail_dir).glob("*.eml")
    mail = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert mail["Message-ID"] == notice.message_id
    assert "List-Unsubscribe" not in mail and "List-Unsubscribe-Post" not in mail
    assert notice.sent_at == NOW
