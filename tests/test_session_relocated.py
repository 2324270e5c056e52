"""A session that changes place, time, or both, through a re-import of the booking export: each
delegate is told what changed since the confirmation they last received, with the calendar
entry updated (same UID, a higher SEQUENCE), and nothing when it is back as they were told.

Emails are received by an aiosmtpd server on loopback and read as a person would read them."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from bot.settings import Settings, load_settings
from schedules.cancellation import cancel_booking
from schedules.nomination import nominate_replacement
from schedules.policy import load_policy
from surveys.importer import import_bookings
from surveys.models import AuditEntry, Booking, CourseSession
from tests.conftest import utc
from tests.smtp_servers import SmtpServer, running
from tests.test_calendar_invite import invitation, outlook_checks, tick_and_deliver

LONDON = ZoneInfo("Europe/London")
HEADER = (
    "booking_ref,session_ref,course_title,starts_at,ends_at,venue,delegate_name,delegate_email,"
    "agency,agency_sector,manager_name,manager_email"
)
ALICE = "alice@riverside.example"
ERIN = "erin.mensah@riverside.example"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


@pytest.fixture
def mail_settings(database_url: str, smtp: SmtpServer) -> Settings:
    return load_settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        mail_from="Riverside Training <training@partnership.example>",
        public_url="https://evalbot.partnership.example",
    )


def export(venue: str = "Civic Centre, Room 2", starts: str = "09:30") -> str:
    row = (
        f'BK-1,S-1,Working Together,16/03/2026 {starts},16/03/2026 16:30,"{venue}",Alice Okafor,'
        f"{ALICE},Riverside CSC,children's social care,Bob Whitfield,bob@riverside.example"
    )
    return f"{HEADER}\n{row}\n"


def reimport(session: Session, text: str, now: str):  # type: ignore[no-untyped-def]
    result = import_bookings(session, text.encode(), zone=LONDON, now=utc(now), actor="test")
    session.commit()
    return result


def confirmations(smtp: SmtpServer) -> list[EmailMessage]:
    return [
        r.message
        for r in smtp.received
        if ALICE in r.rcpt_tos and "Working Together" in str(r.message["Subject"])
    ]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())


def test_a_new_venue_is_told_with_the_old_one_and_an_updated_calendar_entry(
    session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
) -> None:
    reimport(session, export(), "2026-03-01 12:00")
    tick_and_deliver(engine, mail_settings, utc("2026-03-02 09:00"))
    (first,) = confirmations(smtp)
    assert str(first["Subject"]).startswith("Your place:")
    before = outlook_checks(*invitation(first))

    result = reimport(session, export(venue="Town Hall, Room 5"), "2026-03-02 12:00")
    assert (result.relocated, result.rescheduled) == (["S-1"], [])
    tick_and_deliver(engine, mail_settings, utc("2026-03-03 09:00"))
    _, told = confirmations(smtp)
    assert str(told["Subject"]) == "New venue: Working Together, 16 March 2026"
    text = text_of(told)
    assert "The venue of your course has changed." in text
    assert "The venue was: Civic Centre, Room 2" in text
    assert "Where: Town Hall, Room 5" in text
    assert "time of your course has changed" not in text, "the time did not change"
    after = outlook_checks(*invitation(told))
    assert (after["uid"], after["sequence"]) == (before["uid"], before["sequence"] + 1)
    assert (after["location"], after["start"]) == ("Town Hall, Room 5", before["start"])
    audit = session.exec(select(AuditEntry).where(AuditEntry.action == "session.relocated")).one()
    assert audit.detail["venue"] == "Town Hall, Room 5"

    # Both change at once: one message says both.
    reimport(session, export(venue="Civic Centre, Room 2", starts="13:00"), "2026-03-03 12:00")
    tick_and_deliver(engine, mail_settings, utc("2026-03-04 09:00"))
    both = confirmations(smtp)[-1]
    assert str(both["Subject"]).startswith("New time and place:")
    text = text_of(both)
    assert "The time and place of your course have changed." in text
    assert "The venue was: Town Hall, Room 5" in text and "It was: " in text
    assert outlook_checks(*invitation(both))["start"] == "2026-03-16 13:00 GMT"


def test_a_change_undone_before_anyone_was_told_sends_nothing(
    session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
) -> None:
    reimport(session, export(), "2026-03-01 12:00")
    tick_and_deliver(engine, mail_settings, utc("2026-03-02 09:00"))
    assert len(confirmations(smtp)) == 1
    # Moved in the morning's export, put back in the afternoon's, before a tick sent anything.
    assert reimport(session, export(starts="13:00"), "2026-03-02 10:00").rescheduled == ["S-1"]
    assert reimport(session, export(), "2026-03-02 15:00").rescheduled == ["S-1"]
    tick_and_deliver(engine, mail_settings, utc("2026-03-03 09:00"))
    assert len(confirmations(smtp)) == 1, "Alice was never told of a time she will not need"


@pytest.mark.usefixtures("engine")
def test_the_import_command_names_sessions_with_a_new_venue(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    first, second = tmp_path / "monday.csv", tmp_path / "tuesday.csv"
    first.write_text(export())
    second.write_text(export(venue="Town Hall, Room 5"))
    runner = CliRunner()
    assert runner.invoke(app, ["import", "bookings", str(first)]).exit_code == 0
    result = runner.invoke(app, ["import", "bookings", str(second)])
    assert result.exit_code == 0, result.output
    assert "Sessions with a new venue or joining link (their delegates will be told): S-1" in (
        result.output
    )
    assert "Sessions with a new time" not in result.output


def test_an_export_without_the_joining_link_column_keeps_an_online_session_as_it_is(
    session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
) -> None:
    """The online flag follows the link the session has when the export does not carry the
    column: no "Your course is now in person" to anyone."""
    header = f"{HEADER},joining_link"
    with_link = export(venue="Remote session").replace(HEADER, header).rstrip("\n")
    reimport(session, f"{with_link},https://meet.example/abc\n", "2026-03-01 12:00")
    tick_and_deliver(engine, mail_settings, utc("2026-03-02 09:00"))
    result = reimport(session, export(venue="Remote session"), "2026-03-02 12:00")
    assert result.relocated == []
    course_session = session.exec(select(CourseSession)).one()
    session.refresh(course_session)
    assert course_session.online and course_session.joining_link == "https://meet.example/abc"
    tick_and_deliver(engine, mail_settings, utc("2026-03-03 09:00"))
    assert len(confirmations(smtp)) == 1


def test_a_nominated_replacement_is_told_the_new_venue_too(
    session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
) -> None:
    reimport(session, export(), "2026-03-01 12:00")
    tick_and_deliver(engine, mail_settings, utc("2026-03-02 09:00"))
    alice = session.exec(select(Booking).where(Booking.ref == "BK-1")).one()
    cancel_booking(
        session,
        alice,
        now=utc("2026-03-13 10:00"),
        policy=load_policy({}),
        zone=LONDON,
        secret=mail_settings.secret,
        actor="web",
    )
    session.commit()
    nominate_replacement(
        session,
        alice,
        name="Erin Mensah",
        email=ERIN,
        now=utc("2026-03-13 10:30"),
        actor="web",
        secret=mail_settings.secret,
    )
    session.commit()
    tick_and_deliver(engine, mail_settings, utc("2026-03-13 11:00"))
    reimport(session, export(venue="Town Hall, Room 5"), "2026-03-13 12:00")
    tick_and_deliver(engine, mail_settings, utc("2026-03-13 13:00"))
    to_erin = [r.message for r in smtp.received if ERIN in r.rcpt_tos]
    subjects = [str(message["Subject"]) for message in to_erin]
    assert [s for s in subjects if s.startswith("New venue:")] == [
        "New venue: Working Together, 16 March 2026"
    ], subjects
    told = next(m for m in to_erin if str(m["Subject"]).startswith("New venue:"))
    assert "The venue was: Civic Centre, Room 2" in text_of(told)
    assert "Where: Town Hall, Room 5" in text_of(told)
    # Nothing more once she has been told.
    tick_and_deliver(engine, mail_settings, utc("2026-03-14 09:00"))
    assert len([r for r in smtp.received if ERIN in r.rcpt_tos]) == len(to_erin)
