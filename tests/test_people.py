"""A person's data on request: `evalbot person export` and `evalbot person erase`."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bot.cli import app
from surveys import audit
from surveys.engine import submit_answer
from surveys.models import (
    AuditEntry,
    Booking,
    BookingStatus,
    InvitationStatus,
    OutboxMessage,
    OutboxState,
    Person,
    SurveyInvitation,
)

HEADER = (
    "booking_ref,session_ref,course_title,starts_at,ends_at,venue,delegate_name,delegate_email,"
    "agency,agency_sector,manager_name,manager_email"
)
ROWS = [
    "BK-1,S-1,Working Together,02/03/2026 09:30,02/03/2026 16:30,Civic Centre,Alice Okafor,"
    "alice.okafor@riverside.example,Riverside CSC,children's social care,Bob Whitfield,"
    "bob.whitfield@riverside.example",
    "BK-2,S-1,Working Together,02/03/2026 09:30,02/03/2026 16:30,Civic Centre,Chloé Brennan,"
    "chloe@northgate.example,Northgate NHS Trust,health,Dev Patel,dev@northgate.example",
]


def cli(*args: str, input: str | None = None):
    result = CliRunner().invoke(app, list(args), input=input)
    return result


def test_export_then_erase_leaves_no_trace_and_keeps_the_figures(
    tmp_path: Path, database_url: str, engine, monkeypatch
):
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    export = tmp_path / "bookings.csv"
    export.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    assert cli("import", "bookings", str(export)).exit_code == 0
    # The pre-course questionnaire opens a week before: both delegates are invited.
    assert cli("tick", "--now", "2026-02-23T09:30").exit_code == 0
    with Session(engine) as session:
        alice = session.exec(select(Person).where(Person.email.startswith("alice"))).one()
        alice_id = alice.id
        invitation = session.exec(
            select(SurveyInvitation).where(SurveyInvitation.person_id == alice_id)
        ).first()
        assert invitation is not None and invitation.status == InvitationStatus.OPEN
        now = invitation.opens_at
        submit_answer(session, invitation, "knowledge", "2", now=now, channel="web")
        submit_answer(
            session,
            invitation,
            "expectations",
            "Ask Alice Okafor's team about the Hill Street referral",
            now=now,
            channel="web",
        )
        # Audit details may nest (a register's marks, a campaign's scope): names are found there too.
        audit.record(
            session,
            at=now,
            actor="cli:admin",
            action="campaign.run",
            entity="campaign",
            scope={"people": ["alice.okafor@riverside.example"], "course": "Working Together"},
            counts={"queued": 1},
        )
        session.commit()

    # The export names everything held about her, found by email in any case.
    shown = cli("person", "export", "ALICE.Okafor@riverside.example ")
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert record["person"]["name"] == "Alice Okafor"
    assert [b["ref"] for b in record["bookings"]] == ["BK-1"]
    answers = {a["question"]: a["value"] for s in record["surveys"] for a in s["answers"]}
    assert answers["knowledge"] == 2.0
    assert "Hill Street" in answers["expectations"]
    assert {m["template"] for m in record["messages"]} >= {"booking-confirmation"}

    # Erasing asks first; "no" changes nothing.
    refused = cli("person", "erase", "alice.okafor@riverside.example", input="n\n")
    assert refused.exit_code == 1 and "Erase this person?" in refused.output
    assert cli("person", "export", "alice.okafor@riverside.example").exit_code == 0

    erased = cli(
        "person", "erase", "alice.okafor@riverside.example", "--now", "2026-02-24T10:00", "--yes"
    )
    assert erased.exit_code == 0, erased.output
    assert "Erased." in erased.output and "free-text answers cleared: 1" in erased.output

    gone = cli("person", "export", "alice.okafor@riverside.example")
    assert gone.exit_code == 1 and "no one has the email address" in gone.output
    again = cli("person", "erase", f"erased-{alice_id}@erased.invalid", "--yes")
    assert again.exit_code == 1 and "already erased" in again.output

    # Nothing in the database file names her any more, not even in its free pages or its log.
    engine.dispose()
    database = Path(database_url.removeprefix("sqlite:///"))
    stored = b"".join(
        p.read_bytes() for p in database.parent.glob(database.name + "*") if p.is_file()
    )
    for trace in (b"Alice Okafor", b"alice.okafor", b"Hill Street", b"Okafor"):
        assert trace not in stored, trace
    assert b"Chlo" in stored, "Chloe is untouched"

    with Session(engine) as session:
        booking = session.exec(select(Booking).where(Booking.ref == "BK-1")).one()
        assert booking.status == BookingStatus.BOOKED, "the booking stays for the figures"
        person = session.get(Person, booking.delegate_id)
        assert person is not None and person.name == "Erased person"
        pending = session.exec(
            select(OutboxMessage).where(
                col(OutboxMessage.person_id) == person.id,
                col(OutboxMessage.state).in_([OutboxState.PENDING, OutboxState.FAILED]),
            )
        ).all()
        assert pending == []
        [campaign] = session.exec(select(AuditEntry).where(AuditEntry.action == "campaign.run"))
        assert campaign.detail["scope"] == {"people": ["(erased)"], "course": "Working Together"}

    # The booking system's next export still lists her: she stays erased, Chloé is updated.
    status = cli("import", "bookings", str(export))
    assert status.exit_code == 0, status.output
    assert "Left alone: 1 row whose booking belongs to an erased person." in status.output
    mail_before = set((tmp_path / "evalbot-mail").glob("*.eml"))
    assert cli("tick", "--now", "2026-03-02T08:01").exit_code == 0  # a reminder, on Monday
    new_mail = set((tmp_path / "evalbot-mail").glob("*.eml")) - mail_before
    assert new_mail, "Chloé is still reminded"
    for path in new_mail:
        assert b"alice" not in path.read_bytes().lower()


def test_purge_erases_only_those_past_the_retention_period(
    world, session, database_url: str, monkeypatch
):
    from tests.conftest import utc

    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    course = world.course()
    old = world.course_session(course, ref="WT-2019", starts_at=utc("2019-06-03 09:30"))
    recent = world.course_session(course, ref="WT-2025", starts_at=utc("2025-06-02 09:30"))
    agency = world.agency()
    then = utc("2019-05-01 10:00")
    ann = world.person("Ann Old", "ann@riverside.example", agency, created_at=then)
    ben = world.person("Ben Manager", "ben@riverside.example", agency, created_at=then)
    cal = world.person("Cal Both", "cal@riverside.example", agency, created_at=then)
    dee = world.person("Dee New", "dee@riverside.example", agency)
    world.booking(old, ann, ben, "BK-OLD-1")
    world.booking(old, cal, ben, "BK-OLD-2")
    world.booking(recent, cal, dee, "BK-NEW-1")  # Cal came back: kept
    session.commit()

    nothing = cli("person", "purge", "--before", "2019-01-01", "--yes")
    assert nothing.exit_code == 0 and "No one has been inactive" in nothing.output
    future = cli("person", "purge", "--before", "2999-01-01", "--yes")
    assert future.exit_code == 2 and "in the future" in future.output

    done = cli("person", "purge", "--before", "2020-04-01", "--yes")
    assert done.exit_code == 0, done.output
    assert "2 people have had no booking since before 2020-04-01" in done.output
    session.expire_all()
    names = {p.email: p.name for p in session.exec(select(Person)).all()}
    assert "ann@riverside.example" not in names and "ben@riverside.example" not in names
    assert names["cal@riverside.example"] == "Cal Both"
    assert names["dee@riverside.example"] == "Dee New"
    assert list(names.values()).count("Erased person") == 2
