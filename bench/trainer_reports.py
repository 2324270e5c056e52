"""What the trainers' reports add to the quarterly and annual reports (SQLite).

    .venv/bin/python bench/trainer_reports.py [--answers 300000] [--rounds 5] [--db PATH]

Builds the quarterly report's benchmark database (``bench/report.py``: two quarters, the
delegates' answers), gives every session a trainer and a finished trainer's report (five of its
six answers), then times, in interleaved rounds, the quarterly report's "Trainers' reports" section
(``trainer_reports``) and the annual report's per-quarter counts (``trainer_totals`` for the four
quarters and the year) against the quarterly report's response-rates section on the same
connection, the baseline. CPU time (``time.process_time``) is reported, with its median and the
ratio to the baseline's; the query plans show that neither reads the delegates' answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import build  # bench/report.py
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from surveys import db
from surveys.report import ANSWER, INVITATION, PERSON, SESSION, Quarter, Year, response_rates
from surveys.report.scrub import name_scrubber
from surveys.report.trainers import trainer_reports, trainer_totals

ZONE = ZoneInfo("Europe/London")
REPORT = (
    ("trainer_went", None, 4.0),
    ("trainer_attended", "14", None),
    ("trainer_issues", "The room was too small for the group work", None),
    ("trainer_concern", "no", None),
    ("trainer_changes", "More time for the case study", None),
)


def add_trainers(connection: Connection) -> int:
    """A trainer for every session, and each trainer's finished report on it."""
    sessions = connection.execute(select(SESSION.c.id, SESSION.c.ends_at)).all()
    now = datetime(2026, 9, 1, tzinfo=UTC)
    trainers = []
    for number in range(40):
        result = connection.execute(
            insert(PERSON).values(
                name=f"Trainer {number} Example",
                email=f"trainer{number}@partnership.example",
                telegram_link_generation=0,
                preferred_channel="email",
                email_status="ok",
                telegram_status="ok",
                sms_status="ok",
                email_opt_out=False,
                telegram_opt_out=False,
                sms_opt_out=False,
                created_at=now,
                updated_at=now,
            )
        )
        trainers.append(result.inserted_primary_key[0])
    for index, (session_id, ends_at) in enumerate(sessions):
        trainer = trainers[index % len(trainers)]
        connection.execute(
            update(SESSION).where(SESSION.c.id == session_id).values(trainer_id=trainer)
        )
        invitation = connection.execute(
            insert(INVITATION).values(
                session_id=session_id,
                person_id=trainer,
                stage="trainer",
                opens_at=ends_at,
                closes_at=ends_at + timedelta(days=7),
                status="finished",
                started_at=ends_at,
                finished_at=ends_at + timedelta(hours=2),
                reminders_sent=0,
                created_at=now,
            )
        ).inserted_primary_key[0]
        connection.execute(
            insert(ANSWER),
            [
                {
                    "invitation_id": invitation,
                    "question_key": item,
                    "item": item,
                    "value_text": text,
                    "value_num": number,
                    "channel": "web",
                    "answered_at": ends_at + timedelta(hours=1),
                }
                for item, text, number in REPORT
            ],
        )
    connection.exec_driver_sql("ANALYZE")
    return len(sessions)


def cpu_of(step: Callable[[], object]) -> float:
    started = time.process_time()
    step()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="reuse or build this database")
    args = parser.parse_args()

    path = args.db or Path(tempfile.mkdtemp(prefix="evalbot-bench-trainers-")) / "bench.db"
    if not path.exists():
        started = time.perf_counter()
        counts = build(path, args.answers)
        engine = db.make_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            sessions = add_trainers(connection)
        engine.dispose()
        took = time.perf_counter() - started
        print(f"built {path} in {took:.1f} s: answers by quarter {counts}; {sessions} sessions")

    engine = db.make_engine(f"sqlite:///{path}")
    quarter, year = Quarter(2026, 1), Year(2026, "calendar")
    steps: dict[str, Callable[[Connection], object]] = {
        "response rates (baseline)": lambda c: response_rates(c, quarter, ZONE),
        "trainers' reports, quarterly": lambda c: trainer_reports(c, quarter, ZONE, scrub),
        "trainers' reports, annual counts": lambda c: [
            trainer_totals(c, period, ZONE) for period in (*year.quarters, year)
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    with engine.connect() as connection:
        # The report builds its name scrubber once for all its free text: not timed here.
        scrub = name_scrubber(connection)
        found = trainer_reports(connection, quarter, ZONE, scrub)
        print(f"{len(found.rows)} sessions' reports in {quarter.label}, {found.finished} received")
        for _ in range(args.rounds):  # interleaved: each round runs every step once
            for name, step in steps.items():
                times[name].append(cpu_of(lambda step=step: step(connection)))
    baseline = statistics.median(times["response rates (baseline)"])
    print(f"load average {os.getloadavg()[0]:.2f}; CPU seconds, median of {args.rounds} rounds:")
    for name, found_times in times.items():
        median = statistics.median(found_times)
        print(f"  {name:34} {median:.4f} s  ({median / baseline:.2f} x the baseline)")
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM answer JOIN survey_invitation AS i "
            "ON i.id = answer.invitation_id JOIN course_session AS s ON s.id = i.session_id "
            "WHERE i.stage = 'trainer' AND s.starts_at >= '2026-01-01'"
        ).all()
        print("plan of the answers' counts:", "; ".join(str(row[-1]) for row in plan))
    engine.dispose()
    if args.db is None:
        path.unlink()


if __name__ == "__main__":
    main()
