"""Booking import: real exports with the mess real exports have."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from surveys import bulk
from surveys.bulk import indexes_built_after
from surveys.importer import _BUILT_AFTER, ImportFailed, import_bookings
from surveys.models import Agency, AuditEntry, Booking, BookingStatus, CourseSession, Person, Sector

from .conftest import utc

LONDON = ZoneInfo("Europe/London")
NOW = utc("2026-11-23 10:00")
HEADER = (
    "booking_ref,session_ref,course_title,starts_at,ends_at,venue,delegate_name,delegate_email,"
    "agency,agency_sector,manager_name,manager_email"
)
ALICE = (
    "BK-1,S-1,Working Together,02/03/2026 09:30,02/03/2026 16:30,Civic Centre,Alice Okafor,"
    "alice@riverside.example,Riverside CSC,children's social care,Bob Whitfield,bob@riverside.example"
)
CHLOE = (
    "BK-2,S-1,Working Together,02/03/2026 09:30,02/03/2026 16:30,Civic Centre,"
    '"Chloé O\'Brien <Health & Care>",chloe@northgate.example,Northgate NHS Trust,health,'
    "Dev Patel,dev@northgate.example"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def either(request: pytest.FixtureRequest) -> Iterator[Session]:
    """A session on SQLite, then on PostgreSQL: a re-import reads what is stored through each
    driver's own rows (times as SQLite's text, as PostgreSQL's datetimes)."""
    name = "engine" if request.param == "sqlite" else "postgres_engine"
    with Session(request.getfixturevalue(name), expire_on_commit=False) as session:
        yield session


def run_import(session: Session, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    result = import_bookings(session, data, zone=LONDON, now=NOW, actor="test")
    session.commit()
    return result


def counts(session: Session) -> dict[str, int]:
    return {
        model.__name__: session.exec(select(func.count()).select_from(model)).one()
        for model in (Agency, Person, CourseSession, Booking)
    }


def failure(session: Session, text: str | bytes) -> list[str]:
    before = counts(session)
    with pytest.raises(ImportFailed) as caught:
        run_import(session, text)
    session.rollback()
    assert counts(session) == before, "a failed import must write nothing"
    return [p.describe("export.csv") for p in caught.value.problems]


def test_good_import_stores_everything_in_utc(session):
    result = run_import(session, f"{HEADER}\n{ALICE}\n{CHLOE}\n")
    assert (result.bookings.created, result.sessions.created, result.people.created) == (2, 1, 4)
    assert result.agencies.created == 2
    course_session = session.exec(select(CourseSession)).one()
    assert course_session.starts_at == utc("2026-03-02 09:30")  # GMT in March
    chloe = session.exec(select(Person).where(Person.email == "chloe@northgate.example")).one()
    assert chloe.name == "Chloé O'Brien <Health & Care>"
    agency = session.exec(select(Agency).where(Agency.name == "Northgate NHS Trust")).one()
    assert agency.sector == Sector.HEALTH
    booking = session.exec(select(Booking).where(Booking.ref == "BK-1")).one()
    bob = session.exec(select(Person).where(Person.email == "bob@riverside.example")).one()
    assert booking.manager_id == bob.id and booking.status == BookingStatus.BOOKED


def test_summer_time_is_converted(session):
    row = ALICE.replace("02/03/2026 09:30", "2026-07-01 09:30").replace(
        "02/03/2026 16:30", "1/7/2026 16:30"
    )
    run_import(session, f"{HEADER}\n{row}\n")
    course_session = session.exec(select(CourseSession)).one()
    assert course_session.starts_at == utc("2026-07-01 08:30")  # BST is UTC+1
    assert course_session.ends_at == utc("2026-07-01 15:30")


def test_messy_export_bom_crlf_headers_case_spaces_and_extra_columns(session):
    header = " Booking Ref ,SESSION_REF,Course_Title,Starts_At,Ends_At,Venue,Delegate Name,"
    header += "Delegate_Email,Agency,Agency_Sector,Manager_Name,Manager_Email,Dietary needs"
    row = (
        "  BK-1 ,S-1,Working Together,02/03/2026 9:30,02/03/2026 16:30,Civic Centre,  Alice Okafor ,"
        " Alice@Riverside.EXAMPLE ,Riverside CSC,Childrens Social Care,Bob Whitfield,BOB@riverside.example,vegan"
    )
    data = "\ufeff".encode() + f"{header}\r\n{row}\r\n\r\n".encode()
    run_import(session, data)
    alice = session.exec(select(Person).where(Person.email == "alice@riverside.example")).one()
    assert alice.name == "Alice Okafor"
    assert session.exec(select(CourseSession)).one().starts_at == utc("2026-03-02 09:30")
    assert session.exec(select(Agency)).first().sector == Sector.CHILDRENS_SOCIAL_CARE  # type: ignore[union-attr]


def test_one_person_across_rows_by_email_case_insensitively(session):
    second = ALICE.replace("BK-1", "BK-9").replace(
        "alice@riverside.example", "ALICE@riverside.example"
    )
    result = run_import(session, f"{HEADER}\n{ALICE}\n{second}\n")
    assert result.bookings.created == 2
    assert session.exec(select(func.count()).select_from(Person)).one() == 2


def test_missing_column(session):
    header = HEADER.replace(",venue", "")
    row = ALICE.replace(",Civic Centre", "")
    problems = failure(session, f"{header}\n{row}\n")
    assert problems == [
        "export.csv, line 1, column venue: missing column; the header must name booking_ref, "
        "session_ref, course_title, starts_at, ends_at, venue, delegate_name, delegate_email, agency, "
        "agency_sector, manager_name, manager_email"
    ]


def test_bad_date(session):
    row = ALICE.replace("02/03/2026 09:30", "31/02/2026 09:30")
    (problem,) = failure(session, f"{HEADER}\n{CHLOE}\n{row}\n")
    assert problem == (
        "export.csv, line 3, column starts_at: '31/02/2026 09:30' is not a real date: "
        "February 2026 has 28 days"
    )


def test_end_before_start(session):
    row = ALICE.replace("02/03/2026 16:30", "02/03/2026 08:30")
    (problem,) = failure(session, f"{HEADER}\n{row}\n")
    assert "line 2, column ends_at: the session ends" in problem and "before it starts" in problem


def test_bad_email(session):
    (problem,) = failure(
        session, f"{HEADER}\n{ALICE.replace('alice@riverside.example', 'alice.riverside')}\n"
    )
    assert "line 2, column delegate_email: expected an email address" in problem


def test_unknown_sector(session):
    (problem,) = failure(
        session, f"{HEADER}\n{ALICE.replace(chr(39) + 's social care', 'sfood')}\n"
    )
    assert "line 2, column agency_sector: unknown sector" in problem
    assert "voluntary and community" in problem


def test_one_booking_reference_with_two_delegates(session):
    other = CHLOE.replace("BK-2", "BK-1")
    (problem,) = failure(session, f"{HEADER}\n{ALICE}\n{other}\n")
    assert (
        "line 3, column delegate_email: booking BK-1 is for alice@riverside.example on line 2"
        in problem
    )


def test_empty_file_and_header_only(session):
    assert failure(session, "") == [
        "export.csv, line 1: the file is empty; expected a header row and bookings"
    ]
    assert failure(session, HEADER + "\n") == [
        "export.csv, line 1: the file has a header but no bookings"
    ]


def test_not_utf8(session):
    data = f"{HEADER}\n{ALICE}\n".encode() + "BK-3,S-1,Café".encode("cp1252") + b"\n"
    (problem,) = failure(session, data)
    assert problem.startswith("export.csv, line 3: the file is not UTF-8")


def test_every_problem_is_listed_and_nothing_written(session):
    run_import(session, f"{HEADER}\n{ALICE}\n")
    bad_date = CHLOE.replace("02/03/2026 09:30", "tomorrow")
    bad_email = ALICE.replace("BK-1", "BK-3").replace("alice@riverside.example", "nobody")
    problems = failure(session, f"{HEADER}\n{ALICE}\n{bad_date}\n{bad_email}\n")
    assert [p.split(":")[0] for p in problems] == [
        "export.csv, line 3, column starts_at",
        "export.csv, line 4, column delegate_email",
    ]


def test_reimport_of_changed_export_updates_and_records_new_time(either):
    run_import(either, f"{HEADER}\n{ALICE}\n{CHLOE}\n")
    moved = [
        r.replace("02/03/2026 09:30", "09/03/2026 09:30").replace(
            "02/03/2026 16:30", "09/03/2026 16:30"
        )
        for r in (ALICE, CHLOE)
    ]
    moved[1] = moved[1].replace("Northgate NHS Trust", "Northgate Health")
    result = run_import(either, f"{HEADER}\n" + "\n".join(moved) + "\n")
    assert (result.sessions.updated, result.bookings.updated, result.bookings.created) == (1, 0, 0)
    assert result.rescheduled == ["S-1"]
    assert result.agencies.created == 1
    course_session = either.exec(select(CourseSession)).one()
    assert course_session.starts_at == utc("2026-03-09 09:30")
    assert course_session.previous_starts_at == utc("2026-03-02 09:30")
    assert course_session.schedule_version == 2
    assert counts(either)["Person"] == 4 and counts(either)["Booking"] == 2
    audit = either.exec(select(AuditEntry).where(AuditEntry.action == "session.rescheduled")).one()
    assert audit.entity_id == course_session.id


def test_reimport_keeps_evalbot_status_and_applies_cancellation_from_booking_system(either):
    run_import(either, f"{HEADER}\n{ALICE}\n{CHLOE}\n")
    alice = either.exec(select(Booking).where(Booking.ref == "BK-1")).one()
    alice.status = BookingStatus.ATTENDED
    either.commit()
    header = HEADER + ",status"
    run_import(either, f"{header}\n{ALICE},booked\n{CHLOE},Canceled\n")
    statuses = dict(either.exec(select(Booking.ref, Booking.status)).all())
    assert statuses == {"BK-1": "attended", "BK-2": "cancelled"}


def test_reimport_refuses_a_booking_reference_given_to_someone_else(either):
    run_import(either, f"{HEADER}\n{ALICE}\n")
    other = CHLOE.replace("BK-2", "BK-1")
    (problem,) = failure(either, f"{HEADER}\n{other}\n")
    assert "booking BK-1 is already held by alice@riverside.example" in problem


def test_cli_import_prints_summary_and_refuses_bad_file(
    engine, database_url, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\n{ALICE}\n{CHLOE}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["import", "bookings", str(good)])
    assert result.exit_code == 0, result.output
    assert "bookings          2        0          0" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"{HEADER}\n{ALICE.replace('BK-1', 'BK-7').replace('02/03/2026 09:30', '2026-13-01 09:30')}\n"
    )
    result = runner.invoke(app, ["import", "bookings", str(bad)])
    assert result.exit_code == 1
    assert "bad.csv, line 2, column starts_at" in result.output
    assert "Nothing was imported" in result.output
    status = runner.invoke(app, ["status"])
    assert "Bookings:  2" in status.output


def test_sample_export_imports(session):
    sample = Path(__file__).resolve().parent.parent / "examples" / "bookings.csv"
    result = run_import(session, sample.read_bytes())
    assert result.bookings.created == 8 and result.sessions.created == 3


def test_a_booking_repeated_further_down_a_big_export_updates_the_one_written(either):
    rows = [ALICE, CHLOE, ALICE.replace("BK-1", "BK-3").replace("alice@", "ann@"), ALICE]
    rows[3] = ALICE + ",cancelled"
    data = f"{HEADER},status\n" + "\n".join(r if r.endswith("cancelled") else r + "," for r in rows)
    result = import_bookings(either, data.encode(), zone=LONDON, now=NOW, actor="t", chunk=2)
    either.commit()
    assert (result.bookings.created, result.bookings.updated) == (3, 0)
    statuses = dict(either.exec(select(Booking.ref, Booking.status)).all())
    assert statuses == {"BK-1": "cancelled", "BK-2": "booked", "BK-3": "booked"}


def _indexes(engine) -> set[str]:
    with engine.connect() as connection:
        return {
            name
            for table in ("person", "booking")
            for name in (index["name"] for index in sa_inspect(connection).get_indexes(table))
        }


def test_a_first_import_builds_its_indexes_after_and_a_failed_one_keeps_them(engine, session):
    """Into an empty database the people's and bookings' indexes are built once the rows are
    in (SQLite); whatever becomes of the import, the database ends with every index."""
    every = _indexes(engine)
    rows = [
        ALICE.replace("BK-1", f"BK-{n}").replace("alice@", f"a{n}@").replace("S-1", f"S-{n % 3}")
        for n in range(7)
    ]
    late_problem = rows[6].replace("02/03/2026 09:30", "31/02/2026 09:30")
    broken = f"{HEADER}\n" + "\n".join([*rows[:6], late_problem])
    with pytest.raises(ImportFailed):
        import_bookings(session, broken.encode(), zone=LONDON, now=NOW, actor="t", chunk=2)
    session.rollback()
    assert counts(session) == {"Agency": 0, "Person": 0, "CourseSession": 0, "Booking": 0}
    assert _indexes(engine) == every
    good = f"{HEADER}\n" + "\n".join(rows)
    result = import_bookings(session, good.encode(), zone=LONDON, now=NOW, actor="t", chunk=2)
    session.commit()
    assert result.bookings.created == 7
    assert _indexes(engine) == every
    with engine.connect() as connection:  # the rebuilt index answers lookups by session
        found = connection.exec_driver_sql(
            "SELECT count(*) FROM booking INDEXED BY ix_booking_session_status "
            "WHERE session_id = (SELECT id FROM course_session WHERE ref = 'S-1')"
        ).scalar()
    assert found == 2


def test_indexes_are_dropped_inside_the_transaction_not_for_good(engine, session):
    """Were the process to die during a first import, the indexes must still be there: until
    the import commits, every other connection sees them, and a rollback keeps them."""
    every = _indexes(engine)
    tables = (Person.__table__, Booking.__table__)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), indexes_built_after(session, _all_indexes(tables)):
        if engine.dialect.name == "sqlite":
            inside = session.connection().exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'ix_booking_status'"
            )
            assert inside.all() == []  # dropped for the rows about to be written
        assert _indexes(engine) == every  # as another connection sees the database
        raise RuntimeError("the import stops here")
    session.rollback()
    assert _indexes(engine) == every


def test_what_an_import_finds_empty_stays_empty_but_for_its_own_rows(engine, session):
    """Which tables are empty is read under the write lock, held to the end: another writer's
    people cannot arrive between, to be looked up without the indexes built after."""
    run_import(session, f"{HEADER}\n{ALICE}\n")  # people and bookings: nothing is dropped
    tables = (Person.__table__, Booking.__table__)  # type: ignore[attr-defined]
    with indexes_built_after(session, _all_indexes(tables)):
        other = sqlite3.connect(engine.url.database, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    session.rollback()


def _all_indexes(tables):
    return sorted((index for table in tables for index in table.indexes), key=lambda i: i.name)


def test_a_write_that_fails_while_indexes_wait_is_reported_as_itself(engine, session):
    every = _indexes(engine)
    tables = (Agency.__table__,)  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError), indexes_built_after(session, _all_indexes(tables)):
        session.add_all([Agency(name="Riverside", sector="health") for _ in range(2)])
        session.flush()  # two agencies of one name: the unique index is kept
    session.rollback()
    assert _indexes(engine) == every and counts(session)["Agency"] == 0


def test_new_ids_are_not_taken_by_another_writer_meanwhile(engine, session, monkeypatch):
    """Between reading the largest id and writing the new people, the service (another
    connection) cannot add a person: the import holds the write lock from that read on."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL takes ids from a sequence")
    run_import(session, f"{HEADER}\n{ALICE}\n")  # a database that is not empty
    path = engine.url.database
    written = bulk.insert_many
    others: list[str] = []

    def meanwhile(*args, **kwargs):
        with sqlite3.connect(path, timeout=0.05) as other:
            try:
                other.execute(
                    "INSERT INTO person (name, email, telegram_link_generation, "
                    "preferred_channel, email_status, telegram_status, email_opt_out, "
                    "telegram_opt_out, created_at, updated_at) VALUES ('Zed', 'zed@x.example', "
                    "0, 'email', 'ok', 'ok', 0, 0, '2026-01-01', '2026-01-01')"
                )
                others.append("written")
            except sqlite3.OperationalError as refused:
                others.append(str(refused))
        written(*args, **kwargs)

    monkeypatch.setattr(bulk, "insert_many", meanwhile)
    # A new delegate of a known agency on a known session: the new person is the first write.
    ann = ALICE.replace("BK-1", "BK-9").replace("Alice Okafor,alice@", "Ann Lee,ann@")
    result = run_import(session, f"{HEADER}\n{ann}\n")
    assert result.people.created == 1
    assert others and others[0] == "database is locked"


def test_a_first_import_looks_nothing_up_by_scanning_the_tables_it_writes(engine, session):
    """The indexes a first import builds after its rows are of no help to it meanwhile: every
    lookup it makes once it writes (a booking met again further down, a waiting-list row's
    place) must still find its rows through an index it keeps, not by reading the whole table,
    which for a big export would be a read for each chunk."""

    def row(ref: str, who: str, status: str) -> str:
        return ALICE.replace("BK-1", ref).replace("alice@", f"{who}@") + f",{status}"

    rows = [row(f"BK-{n}", f"d{n}", "booked") for n in range(4)]
    # Alice's second booking of the session, then her first one again, now on the waiting list:
    # only the database knows the second still holds her place.
    rows += [row("BK-8", "alice", "booked"), row("BK-9", "alice", "booked")]
    rows += [row("BK-2", "d2", "cancelled"), row("BK-8", "alice", "waiting")]
    statements: list[str] = []
    driver = session.connection().connection.dbapi_connection
    driver.set_trace_callback(statements.append)
    data = (f"{HEADER},status\n" + "\n".join(rows)).encode()
    with pytest.raises(ImportFailed) as caught:
        import_bookings(session, data, zone=LONDON, now=NOW, actor="t", chunk=2)
    driver.set_trace_callback(None)
    (problem,) = caught.value.problems
    assert "already holds a place on it (booking BK-9)" in problem.message
    writing = next(n for n, sql in enumerate(statements) if sql.startswith("INSERT"))
    lookups = [sql for sql in statements[writing:] if sql.startswith("SELECT")]
    assert any("b.ref IN ('BK-2'" in sql for sql in lookups)  # met again in a later chunk
    assert any("'alice@riverside.example'" in sql for sql in lookups)  # her place
    session.rollback()
    with engine.connect() as connection:  # as the import saw the tables: without those indexes
        for index in _BUILT_AFTER:
            index.drop(connection)
        plans = {
            sql: [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            for sql in lookups
        }
        connection.rollback()
    scans = {sql: plan for sql, plan in plans.items() if any(p.startswith("SCAN") for p in plan)}
    assert scans == {}
