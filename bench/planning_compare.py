"""Planning's CPU time in this tree against another revision, rounds interleaved.

    .venv/bin/python bench/planning_compare.py --base main [--rounds 5] [--bookings 50000]

Exports ``--base`` (any git revision) into a temporary folder and plans the database
``bench/planning.py`` builds alternately with that copy's code and with this tree's, each run in
a process of its own, so both meet the same load on a shared machine. Each run's figure is the
planner's own CPU time (``time.process_time`` around ``plan``, in full); the load average is read
before each run. Prints every run, the medians and this tree's median over the base's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def export(revision: str, folder: Path) -> Path:
    """The tree of ``revision`` as files in ``folder``."""
    archive = folder / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=HERE, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "base", filter="data")
    return folder / "base"


# Run in a child: the tree's packages imported first, so every module of Evalbot comes from
# it; then this tree's bench/planning.py for the database it builds. Prints the planner's own
# CPU and wall time at full precision, and where the planner was imported from.
CHILD = """
import importlib.util, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {tree!r})
import bot, schedules, surveys
from schedules.planning import plan
from schedules import planner
spec = importlib.util.spec_from_file_location("bench_planning", {script!r})
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
from sqlmodel import Session
from schedules.policy import default_policy
from surveys import db
with tempfile.TemporaryDirectory(prefix="evalbot-bench-") as folder:
    engine = db.make_engine(f"sqlite:///{{folder}}/planning.db")
    db.upgrade(engine)
    bench.build(engine, {bookings})
    started, cpu = time.perf_counter(), time.process_time()
    with Session(engine, expire_on_commit=False) as session:
        report = plan(session, now=bench.NOW, policy=default_policy(), zone=bench.ZONE,
                      secret=bench.SECRET, telegram=False, commit=session.commit)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
print(json.dumps({{"wall": wall, "cpu": cpu, "bookings": report.bookings,
                  "planner": planner.__file__}}))
"""


def run(tree: Path, bookings: int) -> tuple[float, float, str, str]:
    """(wall, CPU) of planning, the load average before the run and the planner's file."""
    load = Path("/proc/loadavg").read_text().split()[0]
    code = CHILD.format(
        tree=str(tree), script=str(HERE / "bench" / "planning.py"), bookings=bookings
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"the run of {tree} failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["bookings"] != bookings:
        raise SystemExit(f"{tree} planned {figures['bookings']} bookings, not {bookings}")
    return figures["wall"], figures["cpu"], load, figures["planner"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bookings", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalbot-bench-") as folder:
        base = export(args.base, Path(folder))
        trees = {"base": base, "this": HERE}
        cpu: dict[str, list[float]] = {name: [] for name in trees}
        for round_number in range(1, args.rounds + 1):
            # Alternate which goes first, so neither always meets the other's leftovers.
            order = list(trees) if round_number % 2 else list(reversed(trees))
            for name in order:
                wall, seconds, load, source = run(trees[name], args.bookings)
                cpu[name].append(seconds)
                print(
                    f"round {round_number} {name}: {seconds:.3f} s CPU, {wall:.2f} s wall, "
                    f"load average {load} ({source})",
                    flush=True,
                )
    medians = {name: statistics.median(values) for name, values in cpu.items()}
    print(
        f"median CPU: base {medians['base']:.3f} s, this {medians['this']:.3f} s; "
        f"this/base {medians['this'] / medians['base']:.3f} "
        f"({args.rounds} rounds of {args.bookings:,} bookings)"
    )


if __name__ == "__main__":
    main()
