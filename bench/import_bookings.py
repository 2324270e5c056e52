"""How long a 50,000-row booking export takes to import, fresh and again (target: under 60 s).

    .venv/bin/python bench/import_bookings.py [ROWS]

Builds a realistic export (1,000 sessions of 50 delegates across 200 agencies, one manager per
agency, UK dates) in a temporary folder, imports it into a new SQLite database through the same
code as `evalbot import bookings`, then imports it again (the no-change re-import).
"""

from __future__ import annotations

import csv
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from surveys import db
from surveys.importer import REQUIRED, import_file

SECTORS = [
    "health",
    "police",
    "education",
    "children's social care",
    "local authority",
    "early years",
    "voluntary and community",
    "other",
]


def write_export(path: Path, rows: int) -> None:
    rng = random.Random(7)
    start = datetime(2026, 1, 5, 9, 30)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*REQUIRED, "role", "max_places", "booked_at"])
        for n in range(rows):
            session = n // 50
            agency = rng.randrange(200)
            day = start + timedelta(days=session // 4)
            writer.writerow(
                [
                    f"BK-{n:06d}",
                    f"S-{session:05d}",
                    f"Course {session % 40}",
                    day.strftime("%d/%m/%Y %H:%M"),
                    (day + timedelta(hours=7)).strftime("%d/%m/%Y %H:%M"),
                    "Civic Centre",
                    f"Delegate {n}",
                    f"delegate{n}@agency{agency}.example",
                    f"Agency {agency}",
                    SECTORS[agency % len(SECTORS)],
                    f"Manager {agency}",
                    f"manager@agency{agency}.example",
                    "Practitioner",
                    "60",
                    "01/12/2025 10:00",
                ]
            )


def timed_import(url: str, path: Path) -> tuple[float, float]:
    """Wall and CPU seconds for one import of ``path``."""
    engine = db.make_engine(url)
    began = time.perf_counter()
    cpu = time.process_time()
    with db.session_scope(engine) as session:
        import_file(
            session, path, zone=ZoneInfo("Europe/London"), now=datetime.now(UTC), actor="bench"
        )
    elapsed = time.perf_counter() - began, time.process_time() - cpu
    engine.dispose()
    return elapsed


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder) / "bookings.csv"
        write_export(export, rows)
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        db.upgrade(db.make_engine(url))
        first, first_cpu = timed_import(url, export)
        again, again_cpu = timed_import(url, export)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{rows} rows: first import {first:.1f} s wall, {first_cpu:.1f} s CPU "
        f"({rows / first:,.0f} rows/s); re-import {again:.1f} s wall, {again_cpu:.1f} s CPU; "
        f"peak RSS {peak:.0f} MB; load average {Path('/proc/loadavg').read_text().split()[0]}"
    )


if __name__ == "__main__":
    main()
