"""How long the quarterly report takes on a quarter with 1,000,000 answers (SQLite).

    .venv/bin/python bench/report.py [--answers 1000000] [--db PATH] [--keep]

Builds a database with Core ``executemany`` inserts: one quarter (2026 Q1) whose bookings
carry the requested number of answers, and a quieter quarter before it (2025 Q4, a fifth as
many) so the report must pick its quarter out. Then it times the figures (``surveys.report``)
and the whole report (figures, charts, ``report.html`` and the CSVs) as ``evalbot report
quarterly`` runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select
from sqlmodel import Session

from surveys import db
from surveys.report import (
    AGENCY,
    ANSWER,
    BOOKING,
    COURSE,
    INVITATION,
    PERSON,
    SESSION,
    Quarter,
    quarterly_report,
)

ZONE = ZoneInfo("Europe/London")
SECTORS = [
    "health",
    "police",
    "education",
    "children's social care",
    "local authority",
    "early years",
    "voluntary and community",
]
BARRIERS = ["no_opportunity", "time", "support", "procedures", "not_relevant"]  # impact.yaml
BATCH = 50_000
ANSWER_COLUMNS = (
    "id",
    "invitation_id",
    "question_key",
    "item",
    "measure",
    "outcome_index",
    "value_num",
    "value_text",
    "value_json",
    "channel",
    "answered_at",
)


@lru_cache(maxsize=65536)
def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _stored(value: Any) -> Any:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


class Generator:
    """Writes rows in batches; ids are assigned here so no row needs reading back."""

    def __init__(self, connection: Any, seed: int = 7):
        self.connection = connection
        self.random = random.Random(seed)
        self.pending: dict[str, list[Any]] = {}
        self.ids = {"person": 0, "session": 0, "booking": 0, "invitation": 0, "answer": 0}
        self.answers_in: dict[str, int] = {}

    def add(self, table: Any, row: dict[str, Any]) -> None:
        rows = self.pending.setdefault(table.name, [])
        rows.append(row)
        if len(rows) >= BATCH:
            self.finish()  # parents first, so every foreign key finds its row

    def flush(self, table: Any) -> None:
        """One DB-API ``executemany`` per batch, with values already in SQLite's storage form.

        Going past SQLAlchemy's per-value bind processing makes building a million answers
        several times faster; the values are the ones the column types would have written.
        """
        rows = self.pending.pop(table.name, [])
        if not rows:
            return
        if isinstance(rows[0], tuple):
            names, values = list(ANSWER_COLUMNS), rows
        else:
            names = list(rows[0])
            values = [tuple(_stored(row[name]) for name in names) for row in rows]
        marks = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
        self.connection.exec_driver_sql(sql, values)

    def next_id(self, name: str) -> int:
        self.ids[name] += 1
        return self.ids[name]

    def people(self, agencies: int, delegates: int, managers: int) -> None:
        stamp = datetime(2025, 1, 1, tzinfo=UTC)
        for index in range(agencies):
            self.add(
                AGENCY,
                {
                    "id": index + 1,
                    "name": f"Agency {index + 1:02d}",
                    "sector": SECTORS[index % len(SECTORS)],
                    "created_at": stamp,
                },
            )
        self.flush(AGENCY)
        for index in range(delegates + managers):
            person_id = self.next_id("person")
            self.add(
                PERSON,
                {
                    "id": person_id,
                    "name": f"Person {person_id}",
                    "email": f"person{person_id}@example.org",
                    "agency_id": index % agencies + 1,
                    "telegram_link_generation": 0,
                    "preferred_channel": "email",
                    "email_status": "ok",
                    "telegram_status": "ok",
                    "email_opt_out": False,
                    "telegram_opt_out": False,
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )
        self.flush(PERSON)

    def courses(self, count: int) -> None:
        for index in range(count):
            self.add(
                COURSE,
                {
                    "id": index + 1,
                    "title": f"Course {index + 1:02d}",
                    "learning_outcomes": [f"outcome {n + 1}" for n in range(3)],
                    "duration": "full",
                    "created_at": datetime(2025, 1, 1, tzinfo=UTC),
                },
            )
        self.flush(COURSE)

    def quarter(
        self, label: str, first: datetime, days: int, target: int, courses: int, people: int
    ) -> None:
        """Sessions on the quarter's days until their bookings hold ``target`` answers."""
        count = 0
        while count < target:
            starts = first + timedelta(days=self.random.randrange(days), hours=9)
            session_id = self.next_id("session")
            self.add(
                SESSION,
                {
                    "id": session_id,
                    "ref": f"S-{session_id}",
                    "course_id": self.random.randrange(courses) + 1,
                    "starts_at": starts,
                    "ends_at": starts + timedelta(hours=7),
                    "venue": "Civic Centre",
                    "online": False,
                    "min_places": 12,
                    "max_places": 20,
                    "status": "scheduled",
                    "schedule_version": 1,
                    "created_at": starts,
                    "updated_at": starts,
                },
            )
            for _ in range(18):
                count += self.booking(session_id, starts, people)
        self.answers_in[label] = count

    def booking(self, session_id: int, starts: datetime, people: int) -> int:
        booking_id = self.next_id("booking")
        roll = self.random.random()
        status = (
            "attended"
            if roll < 0.80
            else "partly attended"
            if roll < 0.85
            else "no-show"
            if roll < 0.92
            else "late cancellation"
            if roll < 0.95
            else "cancelled"
        )
        delegate = self.random.randrange(people) + 1
        self.add(
            BOOKING,
            {
                "id": booking_id,
                "ref": f"BK-{booking_id}",
                "session_id": session_id,
                "delegate_id": delegate,
                "manager_id": people + 1 + delegate % 500,
                "booked_at": starts - timedelta(days=30),
                "status": status,
                "charge_pence": 7500 if status in ("no-show", "late cancellation") else None,
                "planned_version": 1,
                "source": "import",
                "created_at": starts,
                "updated_at": starts,
            },
        )
        if status in ("cancelled", "late cancellation"):
            return 0
        came = status != "no-show"
        written = self.survey(booking_id, delegate, "pre", starts - timedelta(days=7), 0.85)
        if came:
            end = starts + timedelta(hours=7)
            written += self.survey(booking_id, delegate, "end", end, 0.9)
            written += self.survey(booking_id, delegate, "impact", end + timedelta(days=91), 0.65)
            manager = people + 1 + delegate % 500
            written += self.survey(booking_id, manager, "manager", end + timedelta(days=91), 0.5)
        return written

    def survey(
        self, booking_id: int, person_id: int, stage: str, opens: datetime, rate: float
    ) -> int:
        invitation_id = self.next_id("invitation")
        answering = self.random.random() < rate
        finished = answering and self.random.random() < 0.95
        self.add(
            INVITATION,
            {
                "id": invitation_id,
                "booking_id": booking_id,
                "person_id": person_id,
                "stage": stage,
                "opens_at": opens,
                "closes_at": opens + timedelta(days=14),
                "status": "finished" if finished else "closed",
                "started_at": opens + timedelta(hours=3) if answering else None,
                "finished_at": opens + timedelta(hours=3, minutes=8) if finished else None,
                "reminders_sent": 0,
                "created_at": opens,
            },
        )
        if not answering:
            return 0
        at = _timestamp(opens + timedelta(hours=3))
        rows = self.pending.setdefault(ANSWER.name, [])
        written = 0
        for key, item, measure, outcome, value in self.answers(stage):
            self.ids["answer"] += 1
            number = text = listed = None
            if isinstance(value, list):
                listed = json.dumps(value)
            elif isinstance(value, str):
                text = value
            else:
                number = value
                if item == "applied":
                    text = "yes" if value == 1.0 else "no"
            # Answers are most of the rows: written as tuples in ANSWER_COLUMNS order.
            rows.append(
                (self.ids["answer"], invitation_id, key, item, measure, outcome, number, text,
                 listed, "web", at)
            )  # fmt: skip
            written += 1
        if len(rows) >= BATCH:
            self.finish()
        return written

    def answers(self, stage: str) -> list[tuple[str, str, str | None, int | None, Any]]:
        pick = self.random.randint
        found: list[tuple[str, str, str | None, int | None, Any]] = []
        if stage == "manager":
            return [("manager_change_seen", "manager_change_seen", None, None, 1.0)]
        lift = {"pre": 0, "end": 1, "impact": 1}[stage]
        for measure in ("knowledge", "confidence"):
            for outcome in range(3):
                value = float(min(5, pick(1, 4) + lift * pick(0, 1)))
                found.append((f"{measure}.{outcome}", measure, measure, outcome, value))
        if stage == "pre":
            found.append(("expectations", "expectations", None, None, "To be more confident"))
        elif stage == "end":
            for item in ("satisfaction_content", "satisfaction_trainer", "satisfaction_venue"):
                found.append((item, item, None, None, float(pick(3, 5))))
            found.append(("accessibility", "accessibility", None, None, "yes"))
            found.append(("will_do_differently", "will_do_differently", None, None, "Refer on"))
        else:
            applied = self.random.random() < 0.7
            found.append(("applied", "applied", None, None, 1.0 if applied else 0.0))
            if applied:
                text = "I spotted neglect earlier and referred the family for early help."
                found.append(("example", "example", None, None, text))
            else:
                found.append(("barriers", "barriers", None, None, self.random.sample(BARRIERS, 2)))
        return found

    def finish(self) -> None:
        for table in (SESSION, BOOKING, INVITATION, ANSWER):
            self.flush(table)


def build(path: Path, answers: int) -> dict[str, int]:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.begin() as connection:
        generator = Generator(connection)
        generator.people(agencies=24, delegates=30_000, managers=500)
        generator.courses(20)
        generator.quarter("2025Q4", datetime(2025, 10, 1, tzinfo=UTC), 91, answers // 5, 20, 30_000)
        generator.quarter("2026Q1", datetime(2026, 1, 1, tzinfo=UTC), 90, answers, 20, 30_000)
        generator.finish()
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return generator.answers_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=None, help="reuse or build this database")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="evalbot-bench-report-"))
    path = args.db or folder / "bench.db"
    if not path.exists():
        started = time.perf_counter()
        counts = build(path, args.answers)
        took = time.perf_counter() - started
        print(f"built {path} in {took:.1f} s: answers by quarter {counts}")

    engine = db.make_engine(f"sqlite:///{path}")
    quarter = Quarter(2026, 1)
    start, end = quarter.bounds(ZONE)
    with engine.connect() as connection:
        in_quarter = connection.execute(
            select(func.count())
            .select_from(
                ANSWER.join(INVITATION, INVITATION.c.id == ANSWER.c.invitation_id)
                .join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id)
                .join(SESSION, SESSION.c.id == BOOKING.c.session_id)
            )
            .where(SESSION.c.starts_at >= start, SESSION.c.starts_at < end)
        ).scalar_one()
        total = connection.execute(select(func.count()).select_from(ANSWER)).scalar_one()
    print(f"answers: {in_quarter} in {quarter.label}, {total} in the database")

    now = datetime(2026, 9, 1, 9, tzinfo=UTC)
    with Session(engine) as session:
        started, cpu = time.perf_counter(), time.process_time()
        report = quarterly_report(session, quarter, zone=ZONE, now=now, no_show_alert_rate=0.15)
        figures, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"figures (surveys.report.quarterly_report): {figures:.2f} s ({cpu:.2f} s of CPU)")
    print(
        f"  {len(report.sessions)} sessions, {report.totals.booked} bookings, "
        f"{sum(r.pairs for r in report.change if r.course == 'All courses')} matched pairs"
    )

    from bot.report import write_report

    out = folder / "report"
    with Session(engine) as session:
        started, cpu = time.perf_counter(), time.process_time()
        write_report(session, quarter, out, zone=ZONE, now=now, no_show_alert_rate=0.15)
        whole, cpu = time.perf_counter() - started, time.process_time() - cpu
    size = (out / "report.html").stat().st_size
    print(f"whole report (figures, charts, report.html, CSVs): {whole:.2f} s ({cpu:.2f} s of CPU)")
    print("  (CPU time sums the report's two threads; the machine's load shows in the wall time)")
    print(f"  report.html {size / 1024:.0f} KiB; written to {out}")
    engine.dispose()

    # The command itself, start to end, as an admin runs it, in both editions.
    environ = {**os.environ, "EVALBOT_DATABASE_URL": f"sqlite:///{path}"}
    environ.setdefault("EVALBOT_SECRET_KEY", "bench")
    for name, flags in (("command", []), ("anonymous", ["--anonymous"])):
        command = [sys.executable, "-m", "bot", "report", "quarterly", "2026Q1", "--out",
                   str(folder / name), "--now", "2026-09-01T10:00", *flags]  # fmt: skip
        started = time.perf_counter()
        before = os.times()
        subprocess.run(command, check=True, env=environ, cwd=folder, stdout=subprocess.DEVNULL)
        after = os.times()
        took = time.perf_counter() - started
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        print(
            f"evalbot report quarterly 2026Q1 {' '.join(flags)}".rstrip()
            + f", start to end: {took:.2f} s ({cpu:.2f} s of CPU)"
        )
    if not args.keep and args.db is None:
        path.unlink()


if __name__ == "__main__":
    main()
