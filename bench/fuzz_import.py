"""Import many mutated exports through `evalbot import bookings` and count what users would see.

    .venv/bin/python bench/fuzz_import.py [EXAMPLES] [DATABASE_URL]

The exports are those of tests/test_import_fuzz.py (tests/import_mutations.py), drawn with a
fixed seed; each is imported into one database (a new SQLite file unless a URL is given). Prints
how many were imported, refused with located errors, ended in a traceback, were refused without
saying where, or were refused after writing something; then one example of each failure kind.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from bot.cli import app
from surveys import db
from tests.import_mutations import exports, judge, snapshot


def main() -> None:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    folder = Path(tempfile.mkdtemp())
    url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{folder / 'fuzz.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    os.environ["EVALBOT_DATABASE_URL"] = url
    path = folder / "export.csv"
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=exports())
    def one(data: bytes) -> None:
        before = snapshot(engine)
        path.write_bytes(data)
        result = CliRunner().invoke(app, ["import", "bookings", str(path)])
        outcome = judge(result, before, snapshot(engine))
        counts[outcome.kind] += 1
        shown.setdefault(outcome.kind, outcome.detail)
        if sum(counts.values()) % 10 == 0:
            gc.collect()

    began = time.perf_counter()
    one()
    print(
        f"{sum(counts.values())} exports in {time.perf_counter() - began:.0f} s on "
        f"{engine.dialect.name}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    )
    for kind in ("traceback", "unlocated", "written"):
        if kind in shown:
            print(f"  {kind}: {shown[kind][:300]}")


if __name__ == "__main__":
    main()
