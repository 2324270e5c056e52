"""Calendar invitations, read back from real emails received by an aiosmtpd server on loopback.

Each file is parsed with ``icalendar`` and held to the rules Outlook applies to an invitation:
one VEVENT; the METHOD of the calendar the same as the ``method`` of its Content-Type; every
TZID used defined by a VTIMEZONE (Europe/London); UID, DTSTAMP and SEQUENCE present; a cancel
for the same UID with a higher SEQUENCE and STATUS:CANCELLED.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from icalendar import Calendar
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.channels.registry import build_channels
from bot.dispatcher import deliver_due
from bot.settings import Settings, load_settings
from schedules.cancellation import cancel_booking
from schedules.planning import cancel_session
from schedules.policy import load_policy
from schedules.tick import tick
from surveys.models import Booking, CourseSession
from tests.conftest import World, utc
from tests.smtp_servers import SmtpServer, running

POLICY = load_policy({})
PLANNED = utc("2026-03-02 09:00")
ALICE = "alice.okafor@riverside.example"


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
        partnership_name="Riverside Safeguarding Children Partnership",
    )


def tick_and_deliver(engine: Engine, settings: Settings, now: datetime) -> None:
    tick(engine, now=now, policy=POLICY, zone=settings.zone, secret=settings.secret)
    asyncio.run(deliver_due(engine, settings, build_channels(settings), now=now))


def received(smtp: SmtpServer, address: str, subject_start: str) -> EmailMessage:
    found = [
        r.message
        for r in smtp.received
        if address in r.rcpt_tos and str(r.message["Subject"]).startswith(subject_start)
    ]
    assert len(found) == 1, [str(r.message["Subject"]) for r in smtp.received]
    return found[-1]


def invitation(message: EmailMessage) -> tuple[str, Calendar]:
    """The message's one calendar attachment: its Content-Type method, and the calendar."""
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, "one invite.ics per email"
    part = parts[0]
    assert part.get_filename() == "invite.ics"
    assert part.get_content_disposition() == "attachment"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert b"\r\n" in payload and b"\n" not in payload.replace(b"\r\n", b""), "CRLF lines"
    return str(part.get_param("method")), Calendar.from_ical(payload)


def outlook_checks(method: str, calendar: Calendar) -> dict[str, object]:
    """The rules an Outlook-style client applies; returns the VEVENT's fields for the test."""
    assert str(calendar["METHOD"]) == method
    assert str(calendar["VERSION"]) == "2.0" and calendar.get("PRODID")
    events = calendar.walk("VEVENT")
    assert len(events) == 1, "exactly one VEVENT"
    zones = calendar.walk("VTIMEZONE")
    assert [str(z["TZID"]) for z in zones] == ["Europe/London"]
    event = events[0]
    for name in ("UID", "DTSTAMP", "SEQUENCE", "DTSTART", "DTEND", "SUMMARY", "ORGANIZER"):
        assert name in event, f"{name} missing"
    for name in ("DTSTART", "DTEND"):
        assert event[name].params["TZID"] == "Europe/London"
    assert event["DTSTAMP"].dt.utcoffset() == timedelta(0), "DTSTAMP in UTC"
    assert str(event["ORGANIZER"]) == "mailto:training@partnership.example"
    return {
        "uid": str(event["UID"]),
        "sequence": int(event["SEQUENCE"]),
        "start": event["DTSTART"].dt.strftime("%Y-%m-%d %H:%M %Z"),
        "end": event["DTEND"].dt.strftime("%H:%M"),
        "location": str(event.get("LOCATION", "")),
        "description": str(event.get("DESCRIPTION", "")),
        "status": str(event.get("STATUS", "")),
        "attendee": str(event.get("ATTENDEE", "")),
        "url": str(event.get("URL", "")),
    }


def test_a_confirmation_carries_an_invitation_and_a_move_updates_the_same_event(
    world: World, session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
):
    people = world.standard()
    tick_and_deliver(engine, mail_settings, PLANNED)
    message = received(smtp, ALICE, "Your place:")
    method, calendar = invitation(message)
    first = outlook_checks(method, calendar)
    assert method == "REQUEST"
    assert first["uid"] == "booking-BK-1001@partnership.example"
    assert first["sequence"] == 0
    assert first["start"] == "2026-03-16 09:30 GMT" and first["end"] == "16:30"
    assert first["location"] == "Civic Centre, Room 2"
    assert first["attendee"] == f"mailto:{ALICE}"
    assert first["status"] == "CONFIRMED"
    text = message.get_body(("plain",))
    assert text is not None
    cancel = re.search(r"https://evalbot\.partnership\.example/cancel/\S+", text.get_content())
    assert cancel is not None
    assert f"cancel your place: {cancel.group(0)}" in str(first["description"])
    chloe = received(smtp, "chloe.obrien@northgate.example", "Your place:")
    assert outlook_checks(*invitation(chloe))["uid"] == "booking-BK-1002@partnership.example"

    # The session moves to 13:00 (as an import of new times does): the same event, updated.
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session is not None
    course_session.previous_starts_at = course_session.starts_at
    course_session.starts_at = utc("2026-03-16 13:00")
    course_session.ends_at = utc("2026-03-16 16:30")
    course_session.schedule_version += 1
    session.add(course_session)
    session.commit()
    tick_and_deliver(engine, mail_settings, utc("2026-03-03 09:00"))
    method, calendar = invitation(received(smtp, ALICE, "New time:"))
    moved = outlook_checks(method, calendar)
    assert method == "REQUEST"
    assert (moved["uid"], moved["sequence"], moved["start"]) == (
        first["uid"],
        1,
        "2026-03-16 13:00 GMT",
    )

    # Alice cancels: the event is cancelled, same UID, a higher SEQUENCE.
    booking = session.get(Booking, people["alice_booking"].id)
    assert booking is not None
    cancel_booking(
        session,
        booking,
        now=utc("2026-03-04 10:00"),
        policy=POLICY,
        zone=mail_settings.zone,
        secret=mail_settings.secret,
        actor="test",
    )
    session.commit()
    tick_and_deliver(engine, mail_settings, utc("2026-03-04 10:00"))
    method, calendar = invitation(received(smtp, ALICE, "Cancelled:"))
    cancelled = outlook_checks(method, calendar)
    assert method == "CANCEL"
    assert cancelled["uid"] == first["uid"]
    assert int(str(cancelled["sequence"])) > int(str(moved["sequence"]))
    assert cancelled["status"] == "CANCELLED"


def test_a_cancelled_session_cancels_the_delegates_event_only(
    world: World, session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
):
    people = world.standard()
    tick_and_deliver(engine, mail_settings, PLANNED)
    course_session = session.get(CourseSession, people["session"].id)
    assert course_session is not None
    cancel_session(session, course_session, now=utc("2026-03-05 11:00"), actor="test")
    session.commit()
    tick_and_deliver(engine, mail_settings, utc("2026-03-05 11:00"))
    method, calendar = invitation(received(smtp, ALICE, "Cancelled:"))
    event = outlook_checks(method, calendar)
    assert (method, event["uid"], event["status"]) == (
        "CANCEL",
        "booking-BK-1001@partnership.example",
        "CANCELLED",
    )
    manager = received(smtp, "bob.whitfield@riverside.example", "Cancelled:")
    assert not [p for p in manager.walk() if p.get_content_type() == "text/calendar"]


def test_an_online_session_in_summer_time_gives_its_joining_link(
    world: World, session: Session, engine: Engine, mail_settings: Settings, smtp: SmtpServer
):
    riverside = world.agency()
    alice = world.person("Alice Okafor", ALICE, riverside)
    course = world.course()
    online = world.course_session(
        course,
        ref="WT-2026-06-15",
        starts_at=utc("2026-06-15 08:30"),  # 09:30 British Summer Time
        ends_at=utc("2026-06-15 12:00"),
        online=True,
        joining_link="https://teams.example/l/meetup-join/riverside-wt",
    )
    online.venue = "Microsoft Teams"
    world.booking(online, alice, None, "BK-3001")
    session.commit()
    tick_and_deliver(engine, mail_settings, utc("2026-06-01 09:00"))
    method, calendar = invitation(received(smtp, ALICE, "Your place:"))
    event = outlook_checks(method, calendar)
    assert event["start"] == "2026-06-15 09:30 BST" and event["end"] == "13:00"
    assert event["location"] == "https://teams.example/l/meetup-join/riverside-wt"
    assert event["url"] == "https://teams.example/l/meetup-join/riverside-wt"
    assert "Join online: https://teams.example/l/meetup-join/riverside-wt" in str(
        event["description"]
    )
