"""The booking import against a plain baseline, in the same run (target: within 6x, < 150 MiB).

    .venv/bin/python bench/import_bookings.py [ROWS] [ROUNDS]

Builds a realistic export (sessions of 50 delegates across 200 agencies, one manager per agency,
UK dates) in a temporary folder. Each round, interleaved so the machine's load falls on both:

- baseline: a child Python that reads the file with ``csv`` and writes it with one
  ``executemany`` into a new SQLite table (what the import cannot be faster than);
- import: ``evalbot import bookings FILE`` (a child process, as users run it) into a new,
  migrated SQLite database;
- re-import: the same command again on that database (nothing changes);
- one row: ``evalbot import bookings`` of a one-row file into a new database (the command's
  start-up with its settings, policy and schema check);
- start-up: ``evalbot import bookings --help`` (loading the command, before any of that);
- in one process, as issue 16 first measured: the baseline's work, and ``import_file``.

Each child's CPU time (user + system, from ``wait4`` as it ends) is steadier on a shared
machine than its wall time; both are shown, each as a ratio to the baseline's median in the
same run. Each child's peak memory is its own VmHWM, read from /proc/<pid>/status while it
runs. Then the import's peak memory for a tenth of the rows, to show how it grows.
"""

from __future__ import annotations

import csv
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
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
EXTRA = ["role", "max_places", "booked_at"]
BASELINE = """
import csv, sqlite3, sys
columns = {columns}
connection = sqlite3.connect(sys.argv[2])
connection.execute("CREATE TABLE booking (" + ", ".join(c + " TEXT" for c in columns) + ")")
with open(sys.argv[1], newline="", encoding="utf-8") as handle:
    reader = csv.reader(handle)
    next(reader)
    connection.executemany(
        "INSERT INTO booking VALUES (" + ", ".join("?" * len(columns)) + ")", reader
    )
connection.commit()
"""


def write_export(path: Path, rows: int) -> None:
    rng = random.Random(7)
    start = datetime(2026, 1, 5, 9, 30)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*REQUIRED, *EXTRA])
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


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak memory (MiB, its own VmHWM) of one child process."""
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            status = Path(f"/proc/{child.pid}/status")
            while not done.is_set():
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
                except (OSError, ValueError, IndexError):
                    pass
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        # wait4 gives the child's own CPU time (user + system) as it ends, as /proc/<pid>/stat
        # would; the child stays a zombie until then, so its status is readable to the end.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        done.set()
        watcher.join()
        _, code, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(code)
        elapsed = time.perf_counter() - began
        if child.returncode != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{errors.read()}")
    return elapsed, usage.ru_utime + usage.ru_stime, peak[0] / 1024


def in_process_baseline(export: Path, folder: Path, n: int) -> tuple[float, float, float]:
    """The baseline's work in this process (no start-up), as issue 16 measured it."""
    columns = [*REQUIRED, *EXTRA]
    began, cpu = time.perf_counter(), time.process_time()
    connection = sqlite3.connect(folder / f"ib{n}.db")
    connection.execute("CREATE TABLE booking (" + ", ".join(c + " TEXT" for c in columns) + ")")
    with export.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        marks = ", ".join("?" * len(columns))
        connection.executemany(f"INSERT INTO booking VALUES ({marks})", reader)
    connection.commit()
    connection.close()
    return time.perf_counter() - began, time.process_time() - cpu, 0.0


def in_process_import(export: Path, folder: Path, n: int) -> tuple[float, float, float]:
    """``import_file`` in this process, as ``evalbot import bookings`` calls it (no start-up)."""
    engine = db.make_engine(fresh_database(folder, f"ie{n}.db"))
    began, cpu = time.perf_counter(), time.process_time()
    with db.session_scope(engine) as session:
        import_file(
            session, export, zone=ZoneInfo("Europe/London"), now=datetime.now(UTC), actor="bench"
        )
    elapsed, used = time.perf_counter() - began, time.process_time() - cpu
    engine.dispose()
    return elapsed, used, 0.0


def fresh_database(folder: Path, name: str) -> str:
    url = f"sqlite:///{folder / name}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


KINDS = {
    "baseline": "baseline: csv + executemany, a child",
    "import": "evalbot import bookings FILE",
    "re-import": "the same again (nothing changes)",
    "one row": "evalbot import bookings ONE-ROW",
    "start-up": "evalbot import bookings --help",
    "in-process baseline": "in one process: the baseline",
    "in-process import": "in one process: import_file",
}


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    evalbot = str(Path(sys.executable).parent / "evalbot")
    baseline_code = BASELINE.format(columns=[*REQUIRED, *EXTRA])
    results: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        export, one = folder / "bookings.csv", folder / "one.csv"
        write_export(export, rows)
        write_export(one, 1)
        # An installed Evalbot has its modules compiled; a run with PYTHONDONTWRITEBYTECODE set
        # would compile them again at every start. One untimed run writes them first.
        warm = {**os.environ, "EVALBOT_DATABASE_URL": fresh_database(folder, "warm.db")}
        warm.pop("PYTHONDONTWRITEBYTECODE", None)
        measured([evalbot, "import", "bookings", str(one)], warm)
        load_before = load()
        for n in range(rounds):
            results["baseline"].append(
                measured(
                    [sys.executable, "-c", baseline_code, str(export), str(folder / f"b{n}.db")]
                )
            )
            env = {**os.environ, "EVALBOT_DATABASE_URL": fresh_database(folder, f"e{n}.db")}
            results["import"].append(measured([evalbot, "import", "bookings", str(export)], env))
            results["re-import"].append(measured([evalbot, "import", "bookings", str(export)], env))
            env = {**os.environ, "EVALBOT_DATABASE_URL": fresh_database(folder, f"o{n}.db")}
            results["one row"].append(measured([evalbot, "import", "bookings", str(one)], env))
            results["start-up"].append(measured([evalbot, "import", "bookings", "--help"], env))
            results["in-process baseline"].append(in_process_baseline(export, folder, n))
            results["in-process import"].append(in_process_import(export, folder, n))
        load_after = load()
        tenth = folder / "tenth.csv"
        write_export(tenth, rows // 10)
        env = {**os.environ, "EVALBOT_DATABASE_URL": fresh_database(folder, "tenth.db")}
        _, _, tenth_peak = measured([evalbot, "import", "bookings", str(tenth)], env)

    wall, cpu, memory = (
        {kind: statistics.median(run[i] for run in runs) for kind, runs in results.items()}
        for i in range(3)
    )
    print(f"{rows:,} rows, {rounds} rounds interleaved; load average {load_before} -> {load_after}")
    heading = f"median of {rounds}"
    print(f"{heading:<37}{'wall s':>7}{'x base':>7}{'CPU s':>7}{'x base':>7}{'MiB':>5}")
    for kind, label in KINDS.items():
        base = "in-process baseline" if kind.startswith("in-process") else "baseline"
        print(
            f"{label:<37}{wall[kind]:>7.2f}{wall[kind] / wall[base]:>7.2f}"
            f"{cpu[kind]:>7.2f}{cpu[kind] / cpu[base]:>7.2f}"
            + (f"{memory[kind]:>5.0f}" if memory[kind] else "")
        )
    print(
        f"import peak memory: {tenth_peak:.0f} MiB for {rows // 10:,} rows, "
        f"{memory['import']:.0f} MiB for {rows:,} (x{memory['import'] / tenth_peak:.2f} "
        "for 10x the rows)"
    )


if __name__ == "__main__":
    main()
