"""How long planning takes for 100,000 new bookings on SQLite (the target: under a minute).

    .venv/bin/python bench/planning.py [--bookings 100000] [--db PATH] [--keep]

Builds a database with Core ``executemany`` inserts: 5,000 sessions of 20 courses over the next
quarter, each with 20 bookings of delegates from 40 agencies. Then it times what the first tick
after such an import does: ``schedules.planning.plan`` creating every booking's three
invitations, its confirmation and three invitation messages (four outbox rows) and their link
hashes, committing batch by batch; and then a whole tick when nothing is new, which is what every
minute of ``evalbot run`` costs on that database.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert
from sqlmodel import Session, select

from schedules.planning import plan
from schedules.policy import default_policy
from schedules.tick import tick
from surveys import db
from surveys.models import (
    Agency,
    Booking,
    Course,
    CourseSession,
    Link,
    OutboxMessage,
    Person,
    SurveyInvitation,
)

ZONE = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PER_SESSION = 20
SECRET = b"bench-secret"


def build(engine, bookings: int) -> None:
    sessions = max(1, bookings // PER_SESSION)
    stamp = NOW
    with engine.begin() as connection:
        connection.execute(
            insert(Agency),
            [
                {"id": n + 1, "name": f"Agency {n}", "sector": "health", "created_at": stamp}
                for n in range(40)
            ],
        )
        connection.execute(
            insert(Course),
            [
                {
                    "id": n + 1,
                    "title": f"Course {n}",
                    "learning_outcomes": ["recognise neglect", "share information"],
                    "duration": "full",
                    "created_at": stamp,
                }
                for n in range(20)
            ],
        )
        managers = 2_000
        connection.execute(
            insert(Person),
            [
                {
                    "id": n + 1,
                    "name": f"Person {n}",
                    "email": f"person{n}@agency{n % 40}.example",
                    "agency_id": n % 40 + 1,
                    "telegram_link_generation": 0,
                    "preferred_channel": "email",
                    "email_status": "ok",
                    "telegram_status": "ok",
                    "email_opt_out": False,
                    "telegram_opt_out": False,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for n in range(bookings + managers)
            ],
        )
        rows = []
        for n in range(sessions):
            # Working days over the next quarter, 09:30 to 16:30 local time.
            day = NOW + timedelta(days=14 + (n % 90))
            starts = day.replace(hour=9, minute=30)
            rows.append(
                {
                    "id": n + 1,
                    "ref": f"S-{n}",
                    "course_id": n % 20 + 1,
                    "starts_at": starts,
                    "ends_at": starts + timedelta(hours=7),
                    "venue": "Civic Centre",
                    "online": False,
                    "status": "scheduled",
                    "schedule_version": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
        connection.execute(insert(CourseSession), rows)
        connection.execute(
            insert(Booking),
            [
                {
                    "id": n + 1,
                    "ref": f"BK-{n}",
                    "session_id": n // PER_SESSION + 1,
                    "delegate_id": n + 1,
                    "manager_id": bookings + n % managers + 1,
                    "status": "booked",
                    "planned_version": 0,
                    "source": "import",
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for n in range(bookings)
            ],
        )


def count(engine, model) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=1000, help="bookings per transaction")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="evalbot-bench-"))
    path = args.db or folder / "planning.db"
    path.unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)

    started = time.perf_counter()
    build(engine, args.bookings)
    print(f"built {args.bookings:,} bookings in {time.perf_counter() - started:.1f} s")

    load = f"{os.getloadavg()[0]:.1f}"
    policy = default_policy()
    started, cpu = time.perf_counter(), time.process_time()
    with Session(engine, expire_on_commit=False) as session:
        report = plan(
            session,
            now=NOW,
            policy=policy,
            zone=ZONE,
            secret=SECRET,
            telegram=False,  # the embedded default: no bot, so no Telegram links to record
            commit=session.commit,
            batch_size=args.batch,
        )
    planned, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"planned {report.bookings:,} bookings in {planned:.1f} s, {cpu:.1f} s of CPU "
        f"({report.bookings / planned:,.0f} a second; load average before: {load}): "
        f"{count(engine, SurveyInvitation):,} invitations, "
        f"{count(engine, OutboxMessage):,} outbox rows, {count(engine, Link):,} link hashes"
    )

    started = time.perf_counter()
    idle = tick(
        engine,
        now=NOW + timedelta(minutes=1),
        policy=policy,
        zone=ZONE,
        secret=SECRET,
        telegram=False,
    )
    print(
        f"a tick with nothing new: {time.perf_counter() - started:.2f} s "
        f"(planned {idle.plan.bookings}, opened {idle.opened})"
    )
    engine.dispose()
    if not args.keep:
        path.unlink(missing_ok=True)
    else:
        print(f"database kept at {path}")


if __name__ == "__main__":
    main()
