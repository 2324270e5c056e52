"""The export's optional columns: course length and type, the trainer's name, mobile numbers,
joining links and the waiting list; and `import bookings --check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from schedules.cancellation import cancel_booking, record_late_cancellation_charges
from schedules.planning import plan
from schedules.policy import load_policy
from surveys.models import Booking, BookingStatus, Course, CourseSession, Duration, Person
from tests.conftest import utc
from tests.test_cancellation import make_settings, read_mail
from tests.test_import import HEADER, LONDON, counts, failure, run_import
from tests.timeline import Timeline

COLUMNS = HEADER.split(",")


def export(*rows: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    """A CSV export: every required column, the ``extra`` ones, a row per dict."""
    columns = COLUMNS + [c for c in extra if c not in COLUMNS]
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join(row.get(c, "") for c in columns))
    return "\n".join(lines) + "\n"


def row(ref: str = "BK-1", session: str = "S-1", **values: str) -> dict[str, str]:
    base = {
        "booking_ref": ref,
        "session_ref": session,
        "course_title": "Working Together",
        "starts_at": "16/03/2026 09:30",
        "ends_at": "16/03/2026 16:30",
        "venue": "Civic Centre",
        "delegate_name": "Alice Okafor",
        "delegate_email": "alice@riverside.example",
        "agency": "Riverside CSC",
        "agency_sector": "children's social care",
        "manager_name": "Bob Whitfield",
        "manager_email": "bob@riverside.example",
    }
    return {**base, **values}


def course(session: Session, title: str) -> Course:
    return session.exec(select(Course).where(Course.title == title)).one()


def person(session: Session, email: str) -> Person:
    return session.exec(select(Person).where(Person.email == email)).one()


# -- Course length and type -----------------------------------------------------------------------


def test_course_length_from_the_column_or_from_the_session_times(session):
    short = {"starts_at": "16/03/2026 09:30", "ends_at": "16/03/2026 13:00"}
    rows = [
        row("BK-1", "S-1", course_title="Given half", course_length="half day"),
        row("BK-2", "S-2", course_title="Given hours", course_length="3.5 hours"),
        row("BK-3", "S-3", course_title="Given full", course_length="Full day", **short),
        row("BK-4", "S-4", course_title="Morning only", **short),
        row("BK-5", "S-5", course_title="All day"),
        row("BK-6", "S-6", course_title="Long hours", course_length="6"),
    ]
    run_import(session, export(*rows, extra=("course_length",)))
    lengths = {c.title: c.duration for c in session.exec(select(Course)).all()}
    assert lengths == {
        "Given half": Duration.HALF,
        "Given hours": Duration.HALF,
        "Given full": Duration.FULL,
        "Morning only": Duration.HALF,  # 3 h 30 min: at most 4 hours is a half day
        "All day": Duration.FULL,
        "Long hours": Duration.FULL,
    }


def test_a_course_length_that_is_not_one_and_lengths_that_disagree(session):
    rows = [
        row("BK-1", "S-1", course_length="half day"),
        row("BK-2", "S-2", course_length="all morning"),
        row("BK-3", "S-3", course_length="full day"),
    ]
    problems = failure(session, export(*rows, extra=("course_length",)))
    assert problems == [
        "export.csv, line 3, column course_length: expected half day, full day or a number of "
        "hours such as 3.5, got 'all morning'",
        "export.csv, line 4, column course_length: course 'Working Together' is a half day on "
        "line 2 but a full day here; a course has one length",
    ]


def test_a_half_day_course_is_charged_the_half_day_rate_for_a_late_cancellation(
    engine, database_url, tmp_path
):
    settings = make_settings(
        database_url,
        tmp_path,
        policy={"charge_full_day_pence": 7500, "charge_half_day_pence": 4000},
    )
    policy = load_policy(settings.policy)
    morning = row(starts_at="16/03/2026 09:30", ends_at="16/03/2026 13:00")
    with Session(engine) as session:
        run_import(session, export(morning))
        plan(
            session, now=utc("2026-03-02 09:00"), policy=policy, zone=LONDON, secret=settings.secret
        )
        session.commit()
        booking = session.exec(select(Booking)).one()
        cancel_booking(
            session, booking, now=utc("2026-03-13 10:00"), policy=policy, zone=LONDON,
            secret=settings.secret, actor="cli:admin",
        )  # fmt: skip
        session.commit()
        assert (
            record_late_cancellation_charges(session, now=utc("2026-03-16 09:30"), policy=policy)
            == 1
        )
        session.commit()
        session.refresh(booking)
        assert booking.charge_pence == 4000
        assert "half day" in (booking.charge_note or "")


def test_course_type(session):
    rows = [
        row("BK-1", "S-1", course_title="Online module", course_type="E-Learning"),
        row("BK-2", "S-2", course_title="Annual conference", course_type="conference"),
        row("BK-3", "S-3", course_title="Working Together"),
    ]
    run_import(session, export(*rows, extra=("course_type",)))
    types = {c.title: c.course_type for c in session.exec(select(Course)).all()}
    assert types == {
        "Online module": "e-learning",
        "Annual conference": "conference",
        "Working Together": "face to face",
    }
    (problem,) = failure(
        session, export(row("BK-4", "S-4", course_type="webinar"), extra=("course_type",))
    )
    assert problem == (
        "export.csv, line 2, column course_type: unknown course type 'webinar'; expected one of: "
        "face to face, e-learning, conference, briefing"
    )


# -- The trainer's name ---------------------------------------------------------------------------


def test_trainer_named_by_the_export_or_addressed_neutrally(session):
    rows = [
        row(
            "BK-1", "S-1", trainer_email="tariq.aziz@partnership.example", trainer_name="Tariq Aziz"
        ),
        row("BK-2", "S-2", trainer_email="priya@partnership.example"),
    ]
    run_import(session, export(*rows, extra=("trainer_email", "trainer_name")))
    assert person(session, "tariq.aziz@partnership.example").name == "Tariq Aziz"
    assert person(session, "priya@partnership.example").name == ""  # not "priya"
    # A re-import without the name keeps the one given before.
    run_import(session, export(row("BK-1", "S-1", trainer_email="tariq.aziz@partnership.example"),
                               extra=("trainer_email",)))  # fmt: skip
    assert person(session, "tariq.aziz@partnership.example").name == "Tariq Aziz"


def test_a_trainer_named_after_their_address_by_an_earlier_import_is_addressed_neutrally(session):
    session.add(Person(name="tariq.aziz", email="tariq.aziz@partnership.example"))
    session.commit()
    run_import(session, export(row(trainer_email="tariq.aziz@partnership.example"),
                               extra=("trainer_email",)))  # fmt: skip
    assert person(session, "tariq.aziz@partnership.example").name == ""


def test_an_unnamed_trainer_is_greeted_hello_and_shown_by_address(engine, settings):
    data = export(row(trainer_email="tariq.aziz@partnership.example"), extra=("trainer_email",))
    with Session(engine) as session:
        run_import(session, data)
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    timeline.tick("2026-03-17 16:30")  # the register is still open a day after the end
    to_trainer = sorted(
        (read_mail(path) for path in Path(settings.mail_dir).glob("*.eml")),
        key=lambda mail: mail.subject,
    )
    to_trainer = [mail for mail in to_trainer if "tariq.aziz" in mail.to]
    # The register reminder, and the trainer's report asked for at the end of the session.
    assert [mail.subject.split(":")[0] for mail in to_trainer] == [
        "Register still open",
        "Your report on Working Together, 16 March 2026",
    ]
    reminder, report = to_trainer
    assert reminder.text.startswith("Hello,\r\n\r\nThe register for Working Together")
    for mail in (reminder, report):
        assert "Dear" not in mail.text and "Dear" not in mail.html
        assert "Hello," in mail.html
        assert mail.to == "tariq.aziz@partnership.example"

    from surveys.report import Quarter, sessions

    with engine.connect() as connection:
        (shown,) = sessions(connection, Quarter(2026, 1), LONDON)
    assert shown.trainer == "tariq.aziz@partnership.example"


# -- Mobiles and joining links --------------------------------------------------------------------


def test_mobiles_are_checked_and_stored_in_e164(session):
    rows = [
        row("BK-1", delegate_mobile="07911 123456", manager_mobile="+44 (0)7700 900123"),
        row("BK-2", delegate_email="chloe@riverside.example", delegate_mobile=""),
    ]
    run_import(session, export(*rows, extra=("delegate_mobile", "manager_mobile")))
    assert person(session, "alice@riverside.example").mobile == "+447911123456"
    assert person(session, "bob@riverside.example").mobile == "+447700900123"
    assert person(session, "chloe@riverside.example").mobile is None
    bad = [
        row("BK-3", delegate_mobile="020 7946 0000"),  # a London landline
        row("BK-4", delegate_mobile="+33 6 12 34 56 78"),
        row("BK-5", manager_mobile="call reception"),
    ]
    problems = failure(session, export(*bad, extra=("delegate_mobile", "manager_mobile")))
    assert [p.split(": expected")[0] for p in problems] == [
        "export.csv, line 2, column delegate_mobile",
        "export.csv, line 3, column delegate_mobile",
        "export.csv, line 4, column manager_mobile",
    ]
    assert "expected a UK mobile number such as 07911 123456, got '020 7946 0000'" in problems[0]


def test_joining_link_is_a_web_address(session):
    link = "https://teams.microsoft.com/l/meetup-join/19%3ameeting"
    run_import(session, export(row(venue="Online", joining_link=link), extra=("joining_link",)))
    stored = session.exec(select(CourseSession)).one()
    assert stored.joining_link == link and stored.online
    (problem,) = failure(
        session, export(row("BK-2", "S-2", joining_link="teams meeting"), extra=("joining_link",))
    )
    assert problem == (
        "export.csv, line 2, column joining_link: expected a web address starting https:// or "
        "http://, got 'teams meeting'"
    )


# -- The waiting list -----------------------------------------------------------------------------


def test_waiting_list_rows_are_imported_and_get_only_their_place_in_the_list(engine, settings):
    rows = [
        row("BK-1"),
        row("BK-2", delegate_email="chloe@riverside.example", status="wait-listed"),
        row("BK-3", delegate_email="dev@riverside.example", status="Waiting"),
    ]
    with Session(engine) as session:
        run_import(session, export(*rows, extra=("status",)))
        statuses = dict(session.exec(select(Booking.ref, Booking.status)).all())
    assert statuses == {"BK-1": "booked", "BK-2": "waiting", "BK-3": "waiting"}
    timeline = Timeline(engine, settings)
    timeline.tick("2026-03-02 09:00")
    sent = {(message.recipient, message.template) for message in timeline.rows()}
    # Alice's confirmation; the two on the list are told their place in it, and nothing else.
    assert sent == {
        ("alice@riverside.example", "booking-confirmation"),
        ("chloe@riverside.example", "waitlist-joined"),
        ("dev@riverside.example", "waitlist-joined"),
    }
    assert set(timeline.invitations("BK-2").values()) == set()


def test_waiting_and_booked_on_the_same_session_is_refused(session):
    rows = [
        row("BK-1", status="booked"),
        row("BK-2", delegate_name="Alice Okafor", status="waiting"),
    ]
    (problem,) = failure(session, export(*rows, extra=("status",)))
    assert problem == (
        "export.csv, line 3, column status: alice@riverside.example is on the waiting list for "
        "session S-1 (booking BK-2) and also booked on it (booking BK-1); the other row is line "
        "2: remove the waiting-list row or the booking"
    )
    # Against what an earlier import stored.
    run_import(session, export(row("BK-1")))
    (problem,) = failure(session, export(row("BK-9", status="waiting"), extra=("status",)))
    assert "line 2, column status: alice@riverside.example is on the waiting list" in problem
    assert "already holds a place on it (booking BK-1)" in problem


def test_a_waiting_entry_given_a_place_in_the_booking_system(session):
    run_import(session, export(row("BK-1", status="waiting"), extra=("status",)))
    run_import(session, export(row("BK-1", status="booked"), extra=("status",)))
    assert session.exec(select(Booking.status)).one() == BookingStatus.BOOKED
    # An old export that still says "waiting" never takes the place away again.
    run_import(session, export(row("BK-1", status="waiting"), extra=("status",)))
    assert session.exec(select(Booking.status)).one() == BookingStatus.BOOKED


# -- The command: --check, the header, dates ------------------------------------------------------


@pytest.fixture
def cli(database_url, engine, monkeypatch):
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    return CliRunner()


def test_check_checks_against_the_database_and_writes_nothing(cli, engine, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(export(row("BK-1"), row("BK-2", delegate_email="chloe@riverside.example")))
    result = cli.invoke(app, ["import", "bookings", "--check", str(good)])
    assert result.exit_code == 0, result.output
    assert "Checked 2 booking rows in" in result.output and "Nothing was written" in result.output
    assert "bookings          2        0          0" in result.output
    with Session(engine) as session:
        assert counts(session) == {"Agency": 0, "Person": 0, "CourseSession": 0, "Booking": 0}
    assert cli.invoke(app, ["import", "bookings", str(good)]).exit_code == 0
    taken = tmp_path / "taken.csv"
    taken.write_text(export(row("BK-1", delegate_email="fay@riverside.example")))
    result = cli.invoke(app, ["import", "bookings", "--check", str(taken)])
    assert result.exit_code == 1
    assert "taken.csv, line 2, column delegate_email: booking BK-1 is already held by" in (
        result.output
    )
    assert "1 problem in" in result.output and "nothing was written" in result.output


def test_a_wrong_header_is_reported_once(cli, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("Ref,Event,Date,Attendee,Email\nX1,Working Together,2026-03-16,Alice,a@b.c\n")
    result = cli.invoke(app, ["import", "bookings", str(other)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output
    assert lines[0] == (
        "other.csv, line 1: the header names none of the columns Evalbot needs (the first line "
        "has 'Ref', 'Event', 'Date', 'Attendee', 'Email'); the header must name booking_ref, "
        "session_ref, course_title, starts_at, ends_at, venue, delegate_name, delegate_email, "
        "agency, agency_sector, manager_name, manager_email"
    )
    assert lines[1] == f"Nothing was imported: 1 problem in {other}."


def test_a_date_that_does_not_exist(cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(export(row(starts_at="30/02/2027 09:30", ends_at="30/02/2027 16:30")))
    result = cli.invoke(app, ["import", "bookings", str(bad)])
    assert result.exit_code == 1
    assert (
        "bad.csv, line 2, column starts_at: '30/02/2027 09:30' is not a real date: February 2027 "
        "has 28 days"
    ) in result.output
