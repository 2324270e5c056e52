"""Exports mutated from a valid one, and what importing each must look like.

Used by tests/test_import_fuzz.py (a bounded Hypothesis run in CI) and bench/fuzz_import.py
(a longer run counting outcomes by hand).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine
from typer.testing import Result

HEADER = [
    "booking_ref", "session_ref", "course_title", "starts_at", "ends_at", "venue",
    "delegate_name", "delegate_email", "agency", "agency_sector", "manager_name",
    "manager_email", "course_level", "course_length", "course_type", "role", "min_places",
    "max_places", "trainer_email", "trainer_name", "booked_at", "status", "delegate_mobile",
    "manager_mobile", "joining_link",
]  # fmt: skip


def _row(n: int, session: str, start: str, end: str, status: str = "booked") -> list[str]:
    return [
        f"BK-{n}", session, "Working Together", start, end, "Civic Centre",
        f"Delegate {n}", f"delegate{n}@riverside.example", "Riverside CSC",
        "children's social care", "Bob Whitfield", "bob@riverside.example", "Level 2",
        "", "face to face", "Social worker", "6", "20", "tariq@partnership.example",
        "Tariq Aziz", "01/02/2026 10:00", status, "07911 123456", "", "",
    ]  # fmt: skip


BASE = [
    HEADER,
    _row(1, "S-1", "16/03/2026 09:30", "16/03/2026 16:30"),
    _row(2, "S-1", "16/03/2026 09:30", "16/03/2026 16:30"),
    _row(3, "S-2", "2026-04-20 09:30", "2026-04-20 13:00"),
    _row(4, "S-2", "2026-04-20 09:30", "2026-04-20 13:00", "waiting"),
]

# Values that have broken imports, and their neighbours.
NASTY = [
    "²", "٣", "１２", "0" * 5000, "9" * 30, "3000000000", "-1", "1e3", "0x10", " ", "",
    "0001-01-01T00:00+01:00", "9999-12-31T23:59-05:00", "9999-12-31", "0001-01-01",
    "30/02/2027 09:30", "29/02/2028 09:30", "31/04/2026 10:00", "00/00/0000 00:00",
    "2026-03-02T24:00", "2026-03-02 09:30+23:59", "2026-03-02T09:30Z", "\x00", "a\x00b",
    "=HYPERLINK(\"x\")", "\ufeff", "\u202e", "İstanbul", "ß" * 250, "x" * 201, "x" * 131_073,
    "@", "a@b", "a@b.c", "A@B.C" * 60, "wait-listed", "waiting", "WAITING LIST", "no show",
    "half day", "3.5", "25 hours", "0", "e-learning", "webinar", "+447911123456",
    "07911 123456 07911 123456", "https://", "http://x", "javascript:alert(1)",
    "https://" + "a" * 600 + ".example", "\r", "\n", "\"", "a,b", "💥",
]  # fmt: skip


def _cell() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(max_size=40),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.builds(lambda c, n: c * n, st.characters(), st.integers(0, 140_000)),
        st.datetimes().map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.strftime("%d/%m/%Y %H:%M")),
    )


def _encode(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8", errors="surrogatepass")


@st.composite
def exports(draw: st.DrawFn) -> bytes:
    """A valid export with one to three things done to it."""
    rows = [list(r) for r in BASE]
    byte_level = False
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cell", "cell", "cell", "header", "shape", "bytes"]))
        line = draw(st.integers(0, len(rows) - 1))
        if kind in ("cell", "header"):
            target = rows[max(line, 1)] if kind == "cell" else rows[0]
            column = draw(st.integers(0, len(HEADER) - 1))
            value = (
                draw(_cell())
                if kind == "cell"
                else draw(st.sampled_from(["", "venue", "Booking Ref", "x", "status"]))
            )
            if column < len(target):
                target[column] = value
            else:
                target.append(value)
        elif kind == "shape":
            action = draw(st.sampled_from(["drop", "extra", "duplicate", "empty"]))
            if action == "drop" and rows[line]:
                rows[line].pop(draw(st.integers(0, len(rows[line]) - 1)))
            elif action == "extra":
                rows[line].append(draw(_cell()))
            elif action == "duplicate":
                rows.append(list(rows[max(line, 1)]))
            else:
                rows[line] = []
        else:
            byte_level = True
    data = _encode(rows)
    if byte_level:
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "truncate", "utf-16-le", "latin-1", "utf-16"]))
        if how == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif how == "truncate":
            data = data[:at]
        else:
            with contextlib.suppress(UnicodeError):
                data = data.decode("utf-8").encode(how)
    return data


QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
LOCATED = re.compile(r"^[^,\n]+\.csv, line \d+(, column [a-z_]+)?: \S.*$")


@dataclass
class Outcome:
    kind: str  # imported, refused, traceback, unlocated, written
    detail: str = ""


def judge(result: Result, before: Any, after: Any) -> Outcome:
    """What the user saw, against what they must see."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        name = type(result.exception).__name__
        return Outcome("traceback", f"{name}: {str(result.exception)[:200]}")
    if result.exit_code == 0:
        return Outcome("imported")
    if result.exit_code != 1:
        return Outcome("unlocated", f"exit {result.exit_code}: {result.output[:300]}")
    lines = result.output.strip().splitlines()
    problems = [line for line in lines[:-1] if not line.startswith("... and ")]
    if not problems or not lines[-1].startswith("Nothing was imported"):
        return Outcome("unlocated", result.output[:300])
    for line in problems:
        if not LOCATED.match(line):
            return Outcome("unlocated", line[:300])
        for quoted in QUOTED.findall(line):
            try:
                value = ast.literal_eval(quoted)
            except (ValueError, SyntaxError):
                continue  # an apostrophe in the prose, not a quoted value
            if isinstance(value, str) and len(value) > 60:
                return Outcome("unlocated", f"quotes more than 60 characters: {line[:300]}")
    if before != after:
        return Outcome("written", result.output[:300])
    return Outcome("refused")


TABLES = ("agency", "person", "course", "course_session", "booking", "audit_log")


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an import writes."""
    with engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]
            for table in TABLES
        }
