"""The console's pages through HTTP, signed in as Carla Mendes (coordinator): the dashboard,
sessions and a session's page, cancelling a booking, the import, the outbox, people. Each
change is made by the same function as the CLI's and lands in the audit log in Carla's name."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.web.app import create_app
from surveys.models import (
    AuditEntry,
    Booking,
    BookingStatus,
    CourseSession,
    Deliverability,
    InvitationStatus,
    OutboxMessage,
    OutboxState,
    Person,
    Stage,
    SurveyInvitation,
)
from tests.conftest import utc
from tests.console_helpers import Clock, TestClient, add_staff, csrf, routes, sign_in

NOW = utc("2026-03-02 10:00")  # two weeks before the standard session (16 March)
CARLA = "carla.mendes@partnership.example"
ACTOR = f"staff:{CARLA}"
HEADER = (
    "booking_ref,session_ref,course_title,starts_at,ends_at,venue,delegate_name,delegate_email,"
    "agency,agency_sector,manager_name,manager_email"
)
GOOD_ROW = (
    "BK-2001,NG-2026-04-20,Neglect: Recognition and Response,20/04/2026 09:30,20/04/2026 16:30,"
    "Civic Centre,Erin Walsh,erin.walsh@riverside.example,Riverside CSC,children's social care,"
    "Bob Whitfield,bob.whitfield@riverside.example"
)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def people(world):
    return world.standard()


def signed_in(settings, engine, clock, database_url) -> TestClient:
    add_staff(database_url, CARLA, name="Carla Mendes")
    app = create_app(settings, engine)
    app.state.clock = clock
    client = TestClient(app)
    sign_in(client, settings.mail_dir, CARLA)
    return client


@pytest.fixture
def client(settings, engine, clock, database_url, people):
    return signed_in(settings, engine, clock, database_url)


def audit(engine, action: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def test_the_dashboard_shows_coming_sessions_open_registers_and_problems(
    settings, engine, world, people, clock, database_url
):
    # A session last week whose register is still open, with answers coming in.
    past = world.course_session(
        people["course"], ref="WT-2026-02-23", starts_at=utc("2026-02-23 09:30")
    )
    booking = world.booking(past, people["alice"], people["bob"], "BK-0901")
    world.session.add(
        SurveyInvitation(
            booking_id=booking.id,
            person_id=people["alice"].id,
            stage=Stage.END,
            opens_at=utc("2026-02-23 16:30"),
            closes_at=utc("2026-03-09 16:30"),
            status=InvitationStatus.FINISHED,
            started_at=utc("2026-02-24 10:00"),
            finished_at=utc("2026-02-24 10:05"),
        )
    )
    world.session.add(
        OutboxMessage(
            idempotency_key="dead-1",
            person_id=people["chloe"].id,
            channel="email",
            recipient="chloe.obrien@northgate.example",
            template="survey-reminder",
            due_at=NOW,
            available_at=NOW,
            state=OutboxState.DEAD,
            last_error="550 mailbox unavailable",
        )
    )
    world.session.commit()
    client = signed_in(settings, engine, clock, database_url)
    page = client.get("/admin/").text
    assert "WT-2026-03-16" in page and "Under minimum" in page  # 2 booked, minimum 12
    assert "Registers still open after their session" in page
    assert "WT-2026-02-23" in page
    assert "1 of 1 finished (100%)" in page
    assert "550 mailbox unavailable" in page
    assert "Register not closed" in page  # the quarterly report's issue, for 2026 Q1
    assert 'aria-current="page">Dashboard' in page
    for label in ("Sessions", "Import", "Responses", "Campaigns", "Outbox", "People", "Reports"):
        assert f">{label}</a>" in page
    # The quarter's issues are worked out once and kept for five minutes, saying when.
    assert "at 10:00" in page
    clock.now = NOW + timedelta(minutes=4)
    assert "at 10:00" in client.get("/admin/").text


def test_sessions_are_found_by_course_reference_and_date(client, world, people):
    world.course_session(people["course"], ref="WT-2026-01-12", starts_at=utc("2026-01-12 09:30"))
    other = world.course(title="Neglect: Recognition and Response")
    world.course_session(other, ref="NG-2026-03-18", starts_at=utc("2026-03-18 09:30"))
    world.session.commit()
    upcoming = client.get("/admin/sessions").text
    assert "WT-2026-03-16" in upcoming and "NG-2026-03-18" in upcoming
    assert "WT-2026-01-12" not in upcoming
    past = client.get("/admin/sessions", params={"when": "past"}).text
    assert "WT-2026-01-12" in past and "WT-2026-03-16" not in past
    by_course = client.get("/admin/sessions", params={"q": "neglect"}).text
    assert "NG-2026-03-18" in by_course and "WT-2026-03-16" not in by_course
    by_ref = client.get("/admin/sessions", params={"q": "wt-2026-03", "when": "all"}).text
    assert "WT-2026-03-16" in by_ref and "NG-2026-03-18" not in by_ref
    by_date = client.get("/admin/sessions", params={"date": "2026-03-18"}).text
    assert "NG-2026-03-18" in by_date and "WT-2026-03-16" not in by_date
    uk_date = client.get("/admin/sessions", params={"date": "16/03/2026"}).text
    assert "WT-2026-03-16" in uk_date
    bad = client.get("/admin/sessions", params={"date": "next tuesday"})
    assert bad.status_code == 400 and "Enter the date as a day, month and year" in bad.text
    none = client.get("/admin/sessions", params={"q": "100%_\\"}).text
    assert "No upcoming sessions match" in none


def test_a_session_page_lists_delegates_agencies_and_survey_standing(client, world, people):
    world.session.add(
        SurveyInvitation(
            booking_id=people["alice_booking"].id,
            person_id=people["alice"].id,
            stage=Stage.PRE,
            opens_at=utc("2026-03-09 09:30"),
            closes_at=utc("2026-03-16 09:30"),
            status=InvitationStatus.OPEN,
            started_at=utc("2026-03-09 12:00"),
        )
    )
    world.session.commit()
    page = client.get(f"/admin/sessions/{people['session'].id}").text
    assert "Alice Okafor" in page and "Riverside Children&#39;s Services" in page
    assert "Chloé O&#39;Brien &lt;Health &amp; Care&gt;" in page  # escaped
    assert "Started" in page and "Not marked" in page
    assert "Tariq Aziz" in page
    missing = client.get("/admin/sessions/9999")
    assert missing.status_code == 404 and "Session not found" in missing.text


def test_a_coordinator_cancels_a_booking_after_confirming(client, engine, people):
    session_id, booking = people["session"].id, people["alice_booking"]
    path = f"/admin/sessions/{session_id}/bookings/{booking.id}/cancel"
    confirm = client.get(path)
    assert confirm.status_code == 200 and "A cancellation in time" in confirm.text
    with Session(engine) as session:
        assert session.get(Booking, booking.id).status == BookingStatus.BOOKED  # nothing yet
    done = client.post(path, data={"csrf_token": csrf(confirm.text), "reason": "Off sick"})
    assert done.status_code == 200
    assert "Booking BK-1001 for Working Together to Safeguard Children is cancelled" in done.text
    with Session(engine) as session:
        changed = session.get(Booking, booking.id)
        assert changed.status == BookingStatus.CANCELLED and changed.cancel_reason == "Off sick"
    [entry] = audit(engine, "booking.cancelled")
    assert entry.actor == ACTOR
    again = client.post(path, data={"csrf_token": csrf(confirm.text)})
    assert again.status_code == 409 and "was already cancelled" in again.text


def test_a_late_cancellation_says_what_will_happen(client, people, clock, settings):
    clock.now = utc("2026-03-13 12:00")  # after the cut-off (2 working days before)
    sign_in(client, settings.mail_dir, CARLA)  # the session of 11 days ago has ended
    path = f"/admin/sessions/{people['session'].id}/bookings/{people['chloe_booking'].id}/cancel"
    page = client.get(path).text
    assert "A late cancellation" in page and "nominate a colleague" in page


def upload(client, name: str, data: bytes, content_type: str = "text/csv"):
    page = client.get("/admin/import").text
    return client.post(
        "/admin/import",
        data={"csrf_token": csrf(page)},
        files={"file": (name, data, content_type)},
    )


def test_an_import_with_problems_lists_each_and_writes_nothing(client, engine):
    bad = f"{HEADER}\n{GOOD_ROW}\nBK-2002,NG-2026-04-20,Neglect,31/02/2026 09:30,20/04/2026 16:30,X,Y,not-an-email,A,health,M,m@x.example\n"
    with Session(engine) as session:
        before = session.exec(select(func.count()).select_from(Booking)).one()
    response = upload(client, "export.csv", bad.encode())
    assert response.status_code == 422
    assert "export.csv was not imported" in response.text
    assert '<td class="num">3</td><td>starts_at</td>' in response.text
    assert "delegate_email" in response.text
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Booking)).one() == before


def test_a_good_import_says_what_was_created_updated_and_unchanged(client, engine):
    response = upload(client, "export.csv", f"{HEADER}\n{GOOD_ROW}\n".encode())
    assert response.status_code == 200, response.text
    assert "1 booking row imported" in response.text
    assert (
        '<th scope="row">Bookings</th><td class="num">1</td><td class="num">0</td><td class="num">0</td>'
        in response.text
    )
    again = upload(client, "export.csv", f"{HEADER}\n{GOOD_ROW}\n".encode())
    assert (
        '<th scope="row">Bookings</th><td class="num">0</td><td class="num">0</td><td class="num">1</td>'
        in again.text
    )
    [first, _] = audit(engine, "bookings.imported")
    assert first.actor == ACTOR


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("bookings.xlsx", b"PK\x03\x04rest-of-a-zip", "a spreadsheet workbook"),
        ("bookings.pdf", b"%PDF-1.7 ...", "a PDF"),
        ("bookings.csv", b"\x00\x01\x02binary", "binary data"),
        ("notes.docx", b"just words", "is not a .csv file"),
        ("empty.csv", b"  \n", "is empty"),
    ],
)
def test_a_file_that_is_not_a_csv_gets_a_clear_page(client, name, data, expected):
    response = upload(client, name, data)
    assert 400 <= response.status_code < 500
    assert expected in response.text and "was not imported" in response.text


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (100, "huge.csv is larger than 20 MB"),  # just over: read, then refused
        (5 * 1024 * 1024, "The file is too large"),  # far over: refused before reading
    ],
)
def test_a_file_over_20_mb_is_refused_whole(client, engine, extra, expected):
    rows = f"{HEADER}\n" + f"{GOOD_ROW}\n" * 10
    big = (rows + " " * (20 * 1024 * 1024 + extra - len(rows))).encode()
    response = upload(client, "huge.csv", big)
    assert response.status_code == 413 and expected in response.text
    with Session(engine) as session:
        assert session.exec(select(Booking).where(Booking.ref == "BK-2001")).first() is None


def test_no_file_chosen_is_explained(client):
    page = client.get("/admin/import").text
    response = client.post("/admin/import", data={"csrf_token": csrf(page)})
    assert response.status_code == 400 and "Choose the booking export" in response.text


def test_the_outbox_retries_dead_messages_and_clears_an_address(client, engine, people):
    with Session(engine) as session:
        chloe = session.get(Person, people["chloe"].id)
        chloe.email_status = Deliverability.UNUSABLE
        chloe.email_status_reason = "550 5.1.1 no such mailbox"
        session.add(chloe)
        session.add(
            OutboxMessage(
                idempotency_key="dead-2",
                person_id=chloe.id,
                channel="email",
                recipient=chloe.email,
                template="survey-invitation",
                due_at=NOW - timedelta(days=1),
                available_at=NOW - timedelta(days=1),
                state=OutboxState.DEAD,
                attempts=10,
                last_error="not sent: address marked undeliverable",
            )
        )
        session.commit()
    page = client.get("/admin/outbox").text
    assert "not sent: address marked undeliverable" in page
    assert "550 5.1.1 no such mailbox" in page
    cleared = client.post(
        "/admin/outbox/clear-address",
        data={"csrf_token": csrf(page), "email": "Chloe.OBrien@northgate.example"},
    )
    assert "will be tried again. It was marked: 550 5.1.1 no such mailbox" in cleared.text
    retried = client.post("/admin/outbox/retry", data={"csrf_token": csrf(page)})
    assert "Re-queued 1 dead message." in retried.text
    with Session(engine) as session:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == "dead-2")
        ).one()
        assert row.state == OutboxState.PENDING and row.attempts == 0
        assert session.get(Person, people["chloe"].id).email_status == Deliverability.OK
    assert audit(engine, "email cleared")[0].actor == ACTOR
    assert audit(engine, "outbox retry")[0].actor == ACTOR
    unknown = client.post(
        "/admin/outbox/clear-address",
        data={"csrf_token": csrf(page), "email": "nobody@example.org"},
    )
    assert unknown.status_code == 404 and "No person has the email address" in unknown.text


def test_people_are_found_exported_as_the_cli_does_and_erased_after_confirming(
    client, engine, people, database_url, tmp_path
):
    found = client.get("/admin/people", params={"q": "okafor"}).text
    alice_id = people["alice"].id
    assert f'href="/admin/people/{alice_id}"' in found
    page = client.get(f"/admin/people/{alice_id}").text
    assert "alice.okafor@riverside.example" in page and "BK-1001" in page
    download = client.get(f"/admin/people/{alice_id}/export")
    assert download.headers["content-disposition"].startswith("attachment;")
    cli_export = CliRunner().invoke(
        cli,
        ["person", "export", "alice.okafor@riverside.example"],
        env={"EVALBOT_DATABASE_URL": database_url},
    )
    assert json.loads(download.text) == json.loads(cli_export.output)
    confirm = client.get(f"/admin/people/{alice_id}/erase")
    assert "This cannot be undone" in confirm.text
    with Session(engine) as session:
        assert session.get(Person, alice_id).erased_at is None  # not yet
    done = client.post(f"/admin/people/{alice_id}/erase", data={"csrf_token": csrf(confirm.text)})
    assert done.status_code == 200 and "Bookings kept without a name: 1" in done.text
    with Session(engine) as session:
        erased = session.get(Person, alice_id)
        assert erased.erased_at is not None and "okafor" not in erased.email
    [entry] = [e for e in audit(engine, "person.erased") if e.actor == ACTOR] or [None]
    assert entry is not None
    again = client.post(f"/admin/people/{alice_id}/erase", data={"csrf_token": csrf(confirm.text)})
    assert again.status_code == 409


def test_every_console_post_is_refused_without_the_csrf_token(client, app_routes=None):
    posts = [
        route.path
        for route in routes(client.app)
        if route.path.startswith("/admin/")
        and "POST" in route.methods
        and not route.path.startswith("/admin/sign-in")
    ]
    assert len(posts) >= 5
    for path in posts:
        concrete = (
            path.replace("{session_id}", "1")
            .replace("{booking_id}", "1")
            .replace("{person_id}", "1")
        )
        response = client.post(concrete, data={"csrf_token": "stale"})
        assert response.status_code == 400, path
        assert "This form has expired" in response.text
    assert client.get("/admin/").status_code == 200


def test_the_quarters_issues_are_refreshed_in_the_background_once_five_minutes_old(
    engine, world, people
):
    from zoneinfo import ZoneInfo

    from bot.web.admin.dashboard import IssuesCache, quarter_of

    cache = IssuesCache()
    zone = ZoneInfo("Europe/London")
    quarter = quarter_of(NOW.date(), "calendar")
    first = cache.get(engine, quarter, zone=zone, alert_rate=0.15, now=NOW)
    assert first.as_of == NOW and first.issues == []
    # A register left open on a past session of the quarter: an issue the report lists.
    world.course_session(people["course"], ref="WT-2026-02-23", starts_at=utc("2026-02-23 09:30"))
    world.booking(world.session.get(CourseSession, 2), people["alice"], None, "BK-0901")
    world.session.commit()
    later = NOW + timedelta(minutes=6)
    stale = cache.get(engine, quarter, zone=zone, alert_rate=0.15, now=later)
    assert stale is first  # shown at once, while the refresh runs
    cache.refresher.join(timeout=30)
    fresh = cache.get(engine, quarter, zone=zone, alert_rate=0.15, now=later)
    assert fresh.as_of == later
    assert [issue.kind for issue in fresh.issues] == ["Register not closed"]
    # Another quarter is worked out there and then.
    next_quarter = cache.get(
        engine,
        quarter_of(utc("2026-04-02 10:00").date(), "calendar"),
        zone=zone,
        alert_rate=0.15,
        now=utc("2026-04-02 10:00"),
    )
    assert next_quarter.quarter.label == "2026 Q2"


def test_the_consoles_reads_work_on_postgresql(postgres_engine):
    """The console's aggregate queries (grouping, LIKE with escapes) on PostgreSQL too."""
    from zoneinfo import ZoneInfo

    from bot.web.admin.dashboard import notable_issues, quarter_of
    from surveys import console
    from tests.conftest import World

    with Session(postgres_engine, expire_on_commit=False) as session:
        people = World(session).standard()
        zone = ZoneInfo("Europe/London")
        [coming] = console.coming_sessions(session, NOW)
        assert (coming.ref, coming.booked, coming.under_minimum) == ("WT-2026-03-16", 2, True)
        assert console.open_registers(session, utc("2026-03-17 10:00"))[0].unmarked == 2
        found = console.find_sessions(session, now=NOW, zone=zone, text="wt-2026_03", when="all")
        assert found == []  # "_" is a character here, not a wildcard
        assert [
            line.ref for line in console.find_sessions(session, now=NOW, zone=zone, text="WT-")
        ] == ["WT-2026-03-16"]
        roster = console.roster(session, people["session"].id)
        assert {line.delegate for line in roster} == {
            "Alice Okafor",
            "Chloé O'Brien <Health & Care>",
        }
        assert [p.email for p in console.find_people(session, "okafor")] == [
            "alice.okafor@riverside.example"
        ]
        assert console.recent_responses(session, utc("2026-03-17 10:00"))[0].ref == "WT-2026-03-16"
        assert console.undelivered_counts(session) == {"failed": 0, "dead": 0}
        quarter = quarter_of(utc("2026-03-17 10:00").date(), "calendar")
        issues = notable_issues(
            session, quarter, zone=zone, alert_rate=0.15, now=utc("2026-03-17 10:00")
        )
        assert [issue.kind for issue in issues] == ["Register not closed"]
