"""How quickly the staff console's dashboard and a session's page render at scale (SQLite).

    .venv/bin/python bench/console.py [--answers 1000000] [--bookings 100000] [--requests 60]
        [--db PATH] [--keep]

Builds a database with the quarterly report's generator (``bench/report.py``): two quarters of
past sessions whose bookings hold the requested number of answers, then upcoming sessions of
booked delegates (with their planned surveys) until there are ``--bookings`` bookings, some
dead and failed messages, and registers left open on a few recent sessions. Then it serves
the app with one uvicorn worker in a process of its own, on the bench's clock, signs a
coordinator in, and times sequential GETs of ``/admin/`` (the dashboard), a session's page
(the fullest session of the last weeks) and ``/admin/sessions``, against a baseline in the
same run: the sign-in page, which reads no data. p95 and median, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, select, text
from sqlmodel import Session

from bench.report import BOOKING, INVITATION, SESSION, Generator
from surveys import db
from surveys.report import ANSWER

NOW = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)
OUTBOX_TABLE = "outbox"
STAFF = "bench.coordinator@partnership.example"


def build(path: Path, answers: int, bookings: int) -> dict[str, int]:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.begin() as connection:
        generator = Generator(connection)
        generator.people(agencies=24, delegates=30_000, managers=500)
        generator.courses(20)
        generator.quarter("2025Q4", datetime(2025, 10, 1, tzinfo=UTC), 91, answers // 5, 20, 30_000)
        generator.quarter("2026Q1", datetime(2026, 1, 1, tzinfo=UTC), 78, answers, 20, 30_000)
        generator.finish()
        upcoming(generator, bookings - generator.ids["booking"])
        generator.finish()
    with engine.begin() as connection:
        # Past registers are closed, except on the sessions of the last ten days.
        connection.execute(
            text("UPDATE course_session SET register_closed_at = ends_at WHERE ends_at < :cutoff"),
            {"cutoff": (NOW - timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S.%f")},
        )
        messages(connection, generator)
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return {"bookings": generator.ids["booking"], "answers": generator.ids["answer"]}


def upcoming(generator: Generator, wanted: int) -> None:
    """Booked delegates on sessions over the next 13 weeks, with their surveys planned."""
    made = 0
    while made < wanted:
        starts = NOW + timedelta(days=generator.random.randrange(1, 91), hours=1)
        session_id = generator.next_id("session")
        generator.add(
            SESSION,
            {
                "id": session_id,
                "ref": f"S-{session_id}",
                "course_id": generator.random.randrange(20) + 1,
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=7),
                "venue": "Civic Centre",
                "online": False,
                "min_places": 12,
                "max_places": 20,
                "status": "scheduled",
                "schedule_version": 1,
                "created_at": NOW,
                "updated_at": NOW,
            },
        )
        for _ in range(generator.random.randint(8, 20)):
            if made >= wanted:
                break
            made += 1
            booking_id = generator.next_id("booking")
            delegate = generator.random.randrange(30_000) + 1
            generator.add(
                BOOKING,
                {
                    "id": booking_id,
                    "ref": f"BK-{booking_id}",
                    "session_id": session_id,
                    "delegate_id": delegate,
                    "manager_id": 30_001 + delegate % 500,
                    "booked_at": NOW - timedelta(days=20),
                    "status": "booked",
                    "planned_version": 1,
                    "source": "import",
                    "created_at": NOW,
                    "updated_at": NOW,
                },
            )
            for stage, opens in (
                ("pre", starts - timedelta(days=7)),
                ("end", starts + timedelta(hours=7)),
                ("impact", starts + timedelta(days=91)),
            ):
                generator.add(
                    INVITATION,
                    {
                        "id": generator.next_id("invitation"),
                        "booking_id": booking_id,
                        "person_id": delegate,
                        "stage": stage,
                        "opens_at": opens,
                        "closes_at": opens + timedelta(days=14),
                        "status": "open" if opens <= NOW else "planned",
                        "reminders_sent": 0,
                        "created_at": NOW,
                    },
                )


def messages(connection, generator: Generator) -> None:
    """100,000 sent messages, 1,000 dead and 500 failed, with their reasons."""
    rows = []
    for index in range(101_500):
        state = "sent" if index < 100_000 else "dead" if index < 101_000 else "failed"
        person = index % 30_000 + 1
        at = (NOW - timedelta(minutes=index % 50_000)).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows.append(
            (
                f"bench:{index}",
                person,
                "email",
                f"person{person}@example.org",
                "survey-reminder",
                "{}",
                "reminder",
                at,
                at,
                state,
                3 if state != "sent" else 1,
                None if state == "sent" else "550 5.1.1 mailbox unavailable",
            )
        )
    connection.exec_driver_sql(
        "INSERT INTO outbox (idempotency_key, person_id, channel, recipient, template, context, "
        "kind, due_at, available_at, state, attempts, last_error, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-03-01 00:00:00.000000')",
        rows,
    )


def serve(path: Path, port: int) -> None:
    """The web app with one uvicorn worker, on the bench's clock (run in its own process)."""
    import uvicorn

    from bot.settings import load_settings
    from bot.web.app import create_app

    settings = load_settings(
        database_url=f"sqlite:///{path}", public_url=f"http://127.0.0.1:{port}"
    )
    app = create_app(settings)
    app.state.clock = lambda: NOW
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def session_cookie(path: Path) -> str:
    """A coordinator's session, made as the emailed link's POST makes one."""
    from surveys.models import LinkPurpose
    from surveys.staff import StaffRole, add_staff, issue_sign_in, use_sign_in
    from surveys.tokens import make_token

    engine = db.make_engine(f"sqlite:///{path}")
    secret = os.environ["EVALBOT_SECRET_KEY"].encode()
    with Session(engine) as session:
        member, _ = add_staff(
            session, email=STAFF, name="Bench", role=StaffRole.COORDINATOR, now=NOW, actor="bench"
        )
        subject = f"staff:{member.id}:bench-{time.time_ns()}"
        issue_sign_in(session, secret, member, subject=subject, now=NOW)
        session.commit()
        token = make_token(secret, LinkPurpose.STAFF_SIGN_IN, subject)
        _, cookie = use_sign_in(session, token, NOW)
        session.commit()
    engine.dispose()
    assert cookie is not None
    return cookie


def fullest_recent_session(path: Path) -> tuple[int, int]:
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        row = connection.execute(
            select(SESSION.c.id, func.count(BOOKING.c.id).label("n"))
            .select_from(SESSION.join(BOOKING, BOOKING.c.session_id == SESSION.c.id))
            .where(SESSION.c.starts_at < NOW, SESSION.c.starts_at >= NOW - timedelta(days=21))
            .group_by(SESSION.c.id)
            .order_by(text("n DESC"))
            .limit(1)
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1])


def timed(client: httpx.Client, url: str, requests: int) -> list[float]:
    for _ in range(3):  # warm: the first requests compile templates and statements
        assert client.get(url).status_code == 200, url
    took = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        took.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return took


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--bookings", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--db", type=Path, default=None, help="reuse or build this database")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--serve", nargs=2, metavar=("DB", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("EVALBOT_SECRET_KEY", "bench-console")
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]))
        return

    folder = Path(tempfile.mkdtemp(prefix="evalbot-bench-console-"))
    path = args.db or folder / "bench.db"
    if not path.exists():
        started = time.perf_counter()
        counts = build(path, args.answers, args.bookings)
        print(f"built {path} in {time.perf_counter() - started:.0f} s: {counts}")
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        bookings = connection.execute(select(func.count()).select_from(BOOKING)).scalar_one()
        answers = connection.execute(select(func.count()).select_from(ANSWER)).scalar_one()
    engine.dispose()
    print(f"database: {bookings:,} bookings, {answers:,} answers")

    cookie = session_cookie(path)
    session_id, size = fullest_recent_session(path)
    port = 18_000 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(path), str(port)], env=dict(os.environ)
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, cookies={"evalbot_console": cookie}, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get("/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            started = time.perf_counter()
            assert client.get("/admin/").status_code == 200
            cold = (time.perf_counter() - started) * 1000
            pages = {
                "baseline: /admin/sign-in (no data)": "/admin/sign-in",
                "dashboard /admin/": "/admin/",
                f"session page ({size} bookings)": f"/admin/sessions/{session_id}",
                "/admin/sessions (upcoming)": "/admin/sessions",
            }
            results = {label: timed(client, url, args.requests) for label, url in pages.items()}
    finally:
        server.terminate()
        server.wait(timeout=30)
    load = Path("/proc/loadavg").read_text().split()[:3]
    base_p95 = p95(next(iter(results.values())))
    print(
        f"{args.requests} sequential requests each, one uvicorn worker; "
        f"load average {' '.join(load)}"
    )
    print(f"{'page':<40} {'median ms':>10} {'p95 ms':>8} {'p95 / baseline':>15}")
    for label, took in results.items():
        print(
            f"{label:<40} {statistics.median(took):>10.1f} {p95(took):>8.1f} "
            f"{p95(took) / base_p95:>15.1f}"
        )
    print(f"the first dashboard view after start (works out the quarter's issues): {cold:.0f} ms")
    if not args.keep and args.db is None:
        path.unlink()


if __name__ == "__main__":
    main()
