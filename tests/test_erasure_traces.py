"""Erasure leaves nothing of the person anywhere: the whole SQLite file, a `pg_dump` of
PostgreSQL, and the written mail.

Alice Okafor's year: a message to her address bounces (the relay refuses it), she answers the
pre-course questionnaire in her own words, misses the course and says why, then cancels her next
booking late, with a reason. Then she asks to be erased.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from schedules.attendance import record_reason
from surveys import audit
from surveys.db import make_engine
from surveys.engine import submit_answer
from surveys.models import Booking, Person, Stage, SurveyInvitation
from tests.conftest import utc
from tests.smtp_servers import SmtpServer, running

HEADER = (
    "booking_ref,session_ref,course_title,starts_at,ends_at,venue,delegate_name,delegate_email,"
    "agency,agency_sector,manager_name,manager_email"
)
ROWS = [
    "BK-1,S-1,Working Together,02/03/2026 09:30,02/03/2026 16:30,Civic Centre,Alice Okafor,"
    "alice.okafor@riverside.example,Riverside CSC,children's social care,Bob Whitfield,"
    "bob.whitfield@riverside.example",
    "BK-2,S-2,Working Together,16/03/2026 09:30,16/03/2026 16:30,Civic Centre,Alice Okafor,"
    "alice.okafor@riverside.example,Riverside CSC,children's social care,Bob Whitfield,"
    "bob.whitfield@riverside.example",
    "BK-3,S-1,Working Together,02/03/2026 09:30,02/03/2026 16:30,Civic Centre,Chloe Brennan,"
    "chloe@northgate.example,Northgate NHS Trust,health,Dev Patel,dev@northgate.example",
]
BOUNCE = "550 5.1.1 <alice.okafor@riverside.example>: mailbox of Alice Okafor unknown"
FREE_TEXT = "Hoping to talk through the Larkspur Close referral"
NO_SHOW_REASON = "My daughter was admitted to Kettering General"
CANCEL_REASON = "Covering for a colleague at the Quayside office"
MOBILE = "+447700900461"
CHAT = 735550101
# What must not survive, in any form a dump or a file would show it.
TRACES = [
    b"Alice Okafor",
    b"alice.okafor",
    b"Okafor",
    b"Larkspur Close",
    b"Kettering General",
    b"Quayside office",
    b"7700900461",
    b"735550101",
]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running() as server:
        yield server


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def live_alices_year(url: str, tmp_path: Path, smtp: SmtpServer, monkeypatch) -> None:
    """Everything above, through the command line and the delivery to a real SMTP server."""
    monkeypatch.setenv("EVALBOT_DATABASE_URL", url)
    monkeypatch.setenv("EVALBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EVALBOT_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("EVALBOT_SMTP_SECURITY", "none")
    smtp.refuse("alice.okafor@riverside.example", BOUNCE)
    export = tmp_path / "bookings.csv"
    export.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    cli("db", "upgrade")
    cli("import", "bookings", str(export))
    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(
            update(Person)
            .where(Person.email == "alice.okafor@riverside.example")
            .values(mobile=MOBILE, telegram_chat_id=CHAT)
        )
        # She once answered from Telegram: the chat id stands in an audit entry's actor too.
        audit.record(
            session,
            at=utc("2026-02-20 10:00"),
            actor=f"telegram:{CHAT}",
            action="telegram.linked",
            entity="chat",
        )
        session.commit()
    cli("tick", "--now", "2026-02-23T09:30")  # confirmations and the pre-course questionnaire
    with Session(engine) as session:
        alice = session.exec(select(Person).where(Person.email.startswith("alice"))).one()
        assert alice.email_status == "unusable", "her address bounced"
        invitation = session.exec(
            select(SurveyInvitation).where(
                SurveyInvitation.person_id == alice.id, SurveyInvitation.stage == Stage.PRE
            )
        ).first()
        assert invitation is not None
        submit_answer(
            session, invitation, "expectations", FREE_TEXT, now=invitation.opens_at, channel="web"
        )
        session.commit()
    cli("attendance", "S-1", "--attended", "BK-3", "--no-show", "BK-1", "--close",
        "--now", "2026-03-02T17:00")  # fmt: skip
    cli("tick", "--now", "2026-03-03T09:00")  # the no-show notices
    with Session(engine) as session:
        booking = session.exec(select(Booking).where(Booking.ref == "BK-1")).one()
        record_reason(
            session, booking, NO_SHOW_REASON, now=booking.updated_at, actor="web"
        )  # what the reason page stores
        session.commit()
    cli("cancel", "BK-2", "--reason", CANCEL_REASON, "--now", "2026-03-13T10:00")
    cli("tick", "--now", "2026-03-13T10:05")
    engine.dispose()


def found(data: bytes) -> list[bytes]:
    return [trace for trace in TRACES if trace.lower() in data.lower()]


def sqlite_bytes(url: str) -> bytes:
    database = Path(url.removeprefix("sqlite:///"))
    return b"".join(
        p.read_bytes() for p in database.parent.glob(database.name + "*") if p.is_file()
    )


def test_erasure_leaves_no_trace_in_the_sqlite_file(
    tmp_path: Path, database_url: str, smtp: SmtpServer, monkeypatch
) -> None:
    live_alices_year(database_url, tmp_path, smtp, monkeypatch)
    assert found(sqlite_bytes(database_url)) == TRACES, "each trace is there before erasure"

    output = cli("person", "erase", "alice.okafor@riverside.example", "--yes",
                 "--now", "2026-03-20T10:00")  # fmt: skip
    assert "Erased." in output

    stored = sqlite_bytes(database_url)
    assert found(stored) == []
    assert b"Chloe Brennan" in stored and b"Bob Whitfield" in stored, "others are untouched"


def test_erasure_leaves_no_trace_in_a_postgresql_dump(
    tmp_path: Path, postgres_url: str, smtp: SmtpServer, monkeypatch
) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed, so the database cannot be dumped")
    live_alices_year(postgres_url, tmp_path, smtp, monkeypatch)

    def dump() -> bytes:
        return subprocess.run(
            [pg_dump, "--no-owner", postgres_url], check=True, capture_output=True, timeout=60
        ).stdout

    assert found(dump()) == TRACES, "each trace is there before erasure"
    cli("person", "erase", "alice.okafor@riverside.example", "--yes", "--now", "2026-03-20T10:00")
    after = dump()
    assert found(after) == []
    assert b"Chloe Brennan" in after and b"Bob Whitfield" in after


def test_traces_are_removed_as_whole_words_wherever_they_stand_in_json() -> None:
    from surveys.scrub import Scrubber

    scrubber = Scrubber({"Christa Lee", "christa@lee.example", "Chris", "ill"})
    detail = {
        "scope": {"people": ["CHRISTA@lee.example", "dev@northgate.example"]},
        "note": "Merry Christmas from Christa Lee <christa@lee.example>",
        "reason": " ill ",
        "counts": {"queued": 3},
    }
    assert scrubber.scrub(detail) == {
        "scope": {"people": ["(erased)", "dev@northgate.example"]},
        "note": "Merry Christmas from (erased) <(erased)>",
        "reason": "(erased)",  # a short trace goes only when it is the whole value
        "counts": {"queued": 3},
    }
    assert scrubber.scrub("still willing") == "still willing"
