"""What a waiting list costs every tick: 100,000 bookings with and without 5,000 waiting entries.

    .venv/bin/python bench/waitlist.py [--bookings 100000] [--waiting 5000] [--ticks 7]

Builds the SQLite database of ``bench/planning.py`` (100,000 bookings in 5,000 sessions) and plans
it. The baseline is a tick with nothing new on it, run ``--ticks`` times. Then 5,000 waiting-list
entries are added (one session in five gets 5), 100 booked places are cancelled as an import does
(so 100 vacancies with open offers exist), and one tick does that work (the "number N" notices,
the offers; they are then marked sent, as the dispatcher would within minutes). The measure is
again a tick with nothing new, ``--ticks`` times: the target is under
0.5 s, and the ratio to the baseline in the same run shows what the waiting list adds. Medians,
with the load average read before each series.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from planning import NOW, SECRET, ZONE, build
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from schedules.planning import plan
from schedules.policy import default_policy
from schedules.tick import TickReport, tick
from surveys import db
from surveys.models import Booking, BookingStatus, OutboxMessage, Person

POLICY = default_policy()
ADMIN = "training@partnership.example"


def run_tick(engine: Engine, minute: int) -> tuple[float, TickReport]:
    started = time.perf_counter()
    report = tick(
        engine,
        now=NOW + timedelta(minutes=minute),
        policy=POLICY,
        zone=ZONE,
        secret=SECRET,
        telegram=False,
        admin_email=ADMIN,
    )
    return time.perf_counter() - started, report


def series(engine: Engine, first_minute: int, count: int) -> tuple[float, list[float], str]:
    load = f"{os.getloadavg()[0]:.1f}"
    times = [run_tick(engine, first_minute + n)[0] for n in range(count)]
    return statistics.median(times), times, load


def add_waiting(engine: Engine, bookings: int, waiting: int) -> None:
    """``waiting`` entries, 5 a session on every fifth session, each a new person."""
    first_person = bookings + 2_000 + 1
    sessions = max(1, bookings // 20)
    with engine.begin() as connection:
        connection.execute(
            insert(Person),
            [
                {
                    "id": first_person + n,
                    "name": f"Waiting {n}",
                    "email": f"waiting{n}@agency{n % 40}.example",
                    "agency_id": n % 40 + 1,
                    "telegram_link_generation": 0,
                    "preferred_channel": "email",
                    "email_status": "ok",
                    "telegram_status": "ok",
                    "email_opt_out": False,
                    "telegram_opt_out": False,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for n in range(waiting)
            ],
        )
        connection.execute(
            insert(Booking),
            [
                {
                    "id": bookings + n + 1,
                    "ref": f"WL-{n}",
                    "session_id": (n // 5 * 5) % sessions + 1,
                    "delegate_id": first_person + n,
                    "manager_id": bookings + 1,
                    "booked_at": NOW - timedelta(days=30, minutes=n),
                    "status": BookingStatus.WAITING.value,
                    "planned_version": 0,
                    "source": "import",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for n in range(waiting)
            ],
        )
        # 100 places cancelled in the booking system, on sessions with a waiting list.
        cancelled = [n * 100 + 1 for n in range(100)]
        connection.execute(
            update(Booking)
            .where(Booking.id.in_(cancelled))  # type: ignore[attr-defined]
            .values(status=BookingStatus.CANCELLED.value, cancelled_at=NOW)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=5_000)
    parser.add_argument("--ticks", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="evalbot-bench-"))
    path = folder / "waitlist.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    build(engine, args.bookings)
    with Session(engine, expire_on_commit=False) as session:
        plan(
            session,
            now=NOW,
            policy=POLICY,
            zone=ZONE,
            secret=SECRET,
            telegram=False,
            commit=session.commit,
        )
    run_tick(engine, 1)  # whatever planning left for the first tick
    print(f"{args.bookings:,} bookings built and planned")

    base, base_all, base_load = series(engine, 2, args.ticks)
    print(
        f"baseline, no waiting list: median {base:.3f} s over {args.ticks} ticks "
        f"(min {min(base_all):.3f}, max {max(base_all):.3f}; load average {base_load})"
    )

    add_waiting(engine, args.bookings, args.waiting)
    with engine.connect() as connection:
        last_before = connection.execute(select(func.max(OutboxMessage.id))).scalar() or 0
    took, report = run_tick(engine, 20)
    # The dispatcher sends those notices and offers within minutes: from then on they are sent
    # rows, as the baseline's earlier messages would be.
    with engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id > last_before)  # type: ignore[operator]
            .values(state="sent", sent_at=NOW + timedelta(minutes=20))
        )
    print(
        f"the tick that takes up {args.waiting:,} waiting entries and 100 cancelled places: "
        f"{took:.2f} s ({report.queued.get('waitlist-joined', 0):,} waitlist-joined, "
        f"{report.offers.offered} offers)"
    )
    with_list, with_all, with_load = series(engine, 21, args.ticks)
    print(
        f"with {args.waiting:,} waiting and {report.offers.offered} open offers: median "
        f"{with_list:.3f} s over {args.ticks} ticks (min {min(with_all):.3f}, "
        f"max {max(with_all):.3f}; load average {with_load})"
    )
    print(
        f"ratio to the baseline: {with_list / base:.2f}; target under 0.5 s: "
        f"{'met' if with_list < 0.5 else 'NOT met'}"
    )
    engine.dispose()
    path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
