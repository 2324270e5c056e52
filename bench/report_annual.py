"""How long the annual report takes over a year of 4,000,000 answers, and a quarterly report's
PDF, on SQLite.

    .venv/bin/python bench/report_annual.py [--answers 1000000] [--runs 3] [--db PATH] [--keep]

Builds (with ``bench/report.py``'s generator) a database holding the four quarters of 2026,
each with ``--answers`` answers, and a quieter 2025 Q4 that the year must leave out. Then it
times, in ``--runs`` rounds (each round runs everything once), reporting the median:

- the baseline: one aggregate query over every answer of the year (a join of answers to their
  sessions, counted and summed), which is what the database's speed on this machine comes to;
- ``surveys.report.annual_report``: every figure of the annual report;
- ``evalbot report annual 2026``, start to end in a fresh process;
- ``evalbot report quarterly 2026Q1 --pdf``, start to end: the quarter's report and its PDF;

and prints each as a ratio to the baseline, with the load average, so that runs on a busy
machine can be compared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import ZONE, Generator
from sqlalchemy import func, select
from sqlmodel import Session

from surveys import db
from surveys.report import ANSWER, BOOKING, INVITATION, SESSION, Year, annual_report

NOW = datetime(2027, 1, 15, 9, tzinfo=UTC)


def build(path: Path, answers: int) -> dict[str, int]:
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.begin() as connection:
        generator = Generator(connection)
        generator.people(agencies=24, delegates=60_000, managers=800)
        generator.courses(20)
        generator.quarter("2025Q4", datetime(2025, 10, 1, tzinfo=UTC), 91, answers // 5, 20, 60_000)
        for number, month in enumerate((1, 4, 7, 10), start=1):
            generator.quarter(f"2026Q{number}", datetime(2026, month, 1, tzinfo=UTC), 90,
                              answers, 20, 60_000)  # fmt: skip
        generator.finish()
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return generator.answers_in


def timed_once(action: Callable[[], object]) -> tuple[float, float]:
    """One run's wall time and CPU time (this process's and its children's: on a shared
    machine it is what the wall time comes to on an idle one)."""
    before = os.times()
    started = time.perf_counter()
    action()
    took = time.perf_counter() - started
    after = os.times()
    return took, sum(after[:4]) - sum(before[:4])


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=1_000_000, help="answers per quarter")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", type=Path, default=None, help="reuse or build this database")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="evalbot-bench-annual-"))
    path = args.db or folder / "bench.db"
    if not path.exists():
        started = time.perf_counter()
        counts = build(path, args.answers)
        print(f"built {path} in {time.perf_counter() - started:.1f} s: answers {counts}")

    engine = db.make_engine(f"sqlite:///{path}")
    year = Year(2026)
    start, end = year.bounds(ZONE)
    joined = (
        ANSWER.join(INVITATION, INVITATION.c.id == ANSWER.c.invitation_id)
        .join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id)
        .join(SESSION, SESSION.c.id == BOOKING.c.session_id)
    )
    baseline_query = (
        select(func.count(), func.sum(ANSWER.c.value_num))
        .select_from(joined)
        .where(SESSION.c.starts_at >= start, SESSION.c.starts_at < end)
    )

    def baseline() -> object:
        with engine.connect() as connection:
            return connection.execute(baseline_query).one()

    in_year = baseline()
    print(f"answers in {year.label}: {in_year[0]:,}; load average {load()}")

    def figures() -> object:
        with Session(engine) as session:
            return annual_report(session, year, zone=ZONE, now=NOW)

    environ = {**os.environ, "EVALBOT_DATABASE_URL": f"sqlite:///{path}"}
    environ.setdefault("EVALBOT_SECRET_KEY", "bench")

    def command(*words: str) -> Callable[[], object]:
        return lambda: subprocess.run(
            [sys.executable, "-m", "bot", "report", *words, "--now", "2027-01-15T09:00"],
            check=True, env=environ, cwd=folder, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    actions = {
        "baseline (one aggregate over the year's answers)": baseline,
        "annual_report (figures)": figures,
        "evalbot report annual 2026, start to end": command(
            "annual", "2026", "--out", str(folder / "annual")
        ),
        "evalbot report quarterly 2026Q1 --pdf, start to end": command(
            "quarterly", "2026Q1", "--out", str(folder / "q1"), "--pdf"
        ),
    }
    # Rounds interleaved: each round runs everything once, so a change in the machine's load
    # falls on every figure alike.
    runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name in actions}
    for number in range(1, args.runs + 1):
        for name, action in actions.items():
            took, cpu = timed_once(action)
            runs[name].append((took, cpu, load()))
            print(f"round {number}: {name}: {took:.2f} s, CPU {cpu:.2f} s, "
                  f"load average {load()}", flush=True)  # fmt: skip
    base = statistics.median(took for took, _, _ in runs[next(iter(actions))])
    print("medians:")
    for name, measured in runs.items():
        median = statistics.median(took for took, _, _ in measured)
        cpu = statistics.median(c for _, c, _ in measured)
        shown = ", ".join(f"{took:.2f}" for took, _, _ in measured)
        loads = ", ".join(at for _, _, at in measured)
        print(f"{name}: median {median:.2f} s ({median / base:.1f} x baseline), "
              f"CPU {cpu:.2f} s; runs {shown}; load averages {loads}")  # fmt: skip
    from pypdf import PdfReader

    pages = len(PdfReader(folder / "q1" / "report.pdf").pages)
    engine.dispose()
    print(f"report.pdf: {(folder / 'q1' / 'report.pdf').stat().st_size / 1024:.0f} KiB, "
          f"{pages} pages; written to {folder}")  # fmt: skip
    if not args.keep and args.db is None:
        path.unlink()


if __name__ == "__main__":
    main()
