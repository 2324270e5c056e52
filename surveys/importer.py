"""Booking import: a booking system's export checked and merged into the database.

``surveys.booking_csv`` reads and checks the file as a stream; ``surveys.import_merge`` writes
its rows a chunk at a time, in the caller's transaction. The first problem stops the writing but
not the checking, so every problem in the file is reported; the caller then rolls back, and
nothing is written. Memory follows the chunk, not the file: only what later rows are compared
with (references, people's stored values, sessions) is kept.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session

from surveys.audit import record
from surveys.booking_csv import OPTIONAL, REQUIRED, Export, ImportFailed, Problem, Row
from surveys.bulk import indexes_built_after
from surveys.import_merge import BOOKING, Writer
from surveys.import_people import PERSON, Tally

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "ImportFailed",
    "ImportResult",
    "Problem",
    "Tally",
    "import_bookings",
    "import_file",
]

CHUNK = 2000  # rows checked against the database and written together


@dataclass
class ImportResult:
    rows: int
    sessions: Tally = field(default_factory=Tally)
    bookings: Tally = field(default_factory=Tally)
    people: Tally = field(default_factory=Tally)
    agencies: Tally = field(default_factory=Tally)
    rescheduled: list[str] = field(default_factory=list)
    relocated: list[str] = field(default_factory=list)
    erased: int = 0  # rows left alone: their booking belongs to someone erased


def import_bookings(
    session: Session,
    data: bytes | Path,
    *,
    zone: ZoneInfo,
    now: datetime,
    actor: str,
    chunk: int = CHUNK,
) -> ImportResult:
    """Check and merge a whole export. Raises ``ImportFailed`` listing every problem.

    The caller owns the transaction: commit on success, roll back on an exception (rows may
    have been written before a problem further down the file was found).
    """
    export = Export(data, zone)
    writer: Writer | None = None
    rows: list[Row] = []
    with _fewer_collections(), indexes_built_after(session, _BUILT_AFTER):
        for row in export.rows():
            if writer is None:
                writer = Writer(session, now, actor, export.columns)
            rows.append(row)
            if len(rows) >= chunk:
                writer.take(rows, export.problems)
                rows = []
        if writer is not None:
            writer.take(rows, export.problems)
    export.finish()
    assert writer is not None  # finish() refuses a file without rows
    writer.finish(export.courses())
    tallies = writer.result_tallies()
    result = ImportResult(
        rows=export.rows_read,
        sessions=tallies["session"],
        bookings=tallies["booking"],
        people=tallies["person"],
        agencies=tallies["agency"],
        rescheduled=writer.rescheduled,
        relocated=writer.relocated,
        erased=writer.erased,
    )
    record(
        session,
        at=now,
        actor=actor,
        action="bookings.imported",
        entity="import",
        rows=result.rows,
        bookings_created=result.bookings.created,
        bookings_updated=result.bookings.updated,
    )
    return result


# Into an empty table, these are built once the rows are in, rather than kept in order row by
# row. The import's own lookups while it writes use none of them: nobody is looked up by email
# in an empty table of people, a booking written earlier in the file is found by its reference,
# and a waiting-list row's place by its session (both of those indexes are kept).
_INDEXES = {index.name: index for index in (*PERSON.indexes, *BOOKING.indexes)}
_BUILT_AFTER = [
    _INDEXES[name]
    for name in (
        "ix_person_email",
        "ix_person_agency_id",
        "ix_booking_delegate_id",
        "ix_booking_manager_id",
        "ix_booking_status",
    )
]


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cycle collector less often while an export is read and written.

    An import makes millions of small objects, most of them kept until it ends; at the
    collector's usual pace (a pass every 700 new objects) the passes cost about a sixth of the
    import's time. Cycles are still collected, at a slower pace; the usual one comes back after.
    """
    usual = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*usual)


def import_file(
    session: Session, path: Path, *, zone: ZoneInfo, now: datetime, actor: str
) -> ImportResult:
    """``import_bookings`` of a file, read as a stream."""
    try:
        return import_bookings(session, path, zone=zone, now=now, actor=actor)
    except OSError as exc:
        problem = Problem(0, None, f"cannot read the file: {exc.strerror}")
        raise ImportFailed([problem]) from None
