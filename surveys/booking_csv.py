"""Reading a booking system's CSV export, one row per delegate, and checking all of it.

The file is read as a stream: ``Export.rows()`` yields each good row as soon as it is checked,
on its own and against the rows before it, and keeps only what later rows are compared with.
Every problem is collected with its line, its column and what was expected, so a coordinator
can mend the whole file at once; ``Export.finish()`` raises ``ImportFailed`` listing them all.
What each cell accepts is in ``surveys.booking_fields``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from surveys.booking_fields import (
    DATE_HINT,
    BadValue,
    clip,
    email_reader,
    parse_local_datetime,
    parse_sector,
    parse_status,
    quote,
    read_course_type,
    read_length,
    read_link,
    read_mobile,
    read_places,
    read_sector,
    read_status,
    read_when,
    text_reader,
)
from surveys.booking_text import (
    ImportFailed,
    Problem,
    _decode,
    _dialect,
    _header_key,
    export_lines,
)
from surveys.models import BookingStatus, Duration, Sector

__all__ = [
    "DATE_HINT",
    "OPTIONAL",
    "REQUIRED",
    "Export",
    "ImportFailed",
    "Problem",
    "Row",
    "_decode",
    "_dialect",
    "_header_key",
    "parse_local_datetime",
    "parse_sector",
    "parse_status",
]

REQUIRED = (
    "booking_ref",
    "session_ref",
    "course_title",
    "starts_at",
    "ends_at",
    "venue",
    "delegate_name",
    "delegate_email",
    "agency",
    "agency_sector",
    "manager_name",
    "manager_email",
)
OPTIONAL = (
    "course_level",
    "course_length",
    "course_type",
    "role",
    "min_places",
    "max_places",
    "trainer_email",
    "trainer_name",
    "booked_at",
    "status",
    "delegate_mobile",
    "manager_mobile",
    "joining_link",
)
_TEXTS = ("booking_ref", "session_ref", "course_title", "venue", "delegate_name", "agency")
# column, index, field, read, required, values read before
_Reader = tuple[str, int, str, Callable[[str], Any], bool, dict[str, Any] | None]
# The largest cell read; longer ones are far past every column's limit (see booking_fields).
csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))


@dataclass(slots=True)
class Row:
    line: int
    booking_ref: str
    session_ref: str
    course_title: str
    starts_at: datetime
    ends_at: datetime
    venue: str
    delegate_name: str
    delegate_email: str
    agency: str
    sector: Sector
    manager_name: str
    manager_email: str
    course_level: str | None = None
    course_length: Duration | None = None
    course_type: str | None = None
    role: str | None = None
    min_places: int | None = None
    max_places: int | None = None
    trainer_email: str | None = None
    trainer_name: str | None = None
    booked_at: datetime | None = None
    status: BookingStatus | None = None
    delegate_mobile: str | None = None
    manager_mobile: str | None = None
    joining_link: str | None = None


class Export:
    """One export being read; ``rows()`` then ``finish()``."""

    def __init__(self, source: bytes | Path, zone: ZoneInfo):
        self.zone = zone
        self.problems: list[Problem] = []
        self.columns: dict[str, int] = {}
        self.rows_read = 0
        self._source = source
        self._agreement = _Agreement()
        self._plan: list[_Reader] = []

    def rows(self) -> Iterator[Row]:
        """Every row that passed its checks, in file order; problems go to ``self.problems``.

        A file that cannot be read as CSV UTF-8 at all raises ``ImportFailed`` at once.
        """
        lines, dialect = export_lines(self._source)
        reader = csv.reader(lines, dialect=dialect)
        try:
            header = next(reader, None)
            if header is None:
                raise ImportFailed([Problem(1, None, "the file is empty; expected a header row")])
            self.columns = self._header(header)
            self._plan = _readers(self.columns, self.zone)
            previous_line = reader.line_num
            for cells in reader:
                line, previous_line = previous_line + 1, reader.line_num
                if not (cells and cells[0].strip()) and not "".join(cells).strip():
                    continue  # a blank row
                self.rows_read += 1
                row = self._check(line, cells)
                if row is not None and self._agreement.check(row, self.problems):
                    yield row
        except csv.Error as exc:
            where = reader.line_num
            self.problems.append(
                Problem(where, None, f"the file cannot be read as CSV here ({exc})")
            )

    def courses(self) -> dict[str, tuple[int, Duration | None, str | None]]:
        """Each course's length and type where rows give them, by lower-case title."""
        return self._agreement.courses

    def finish(self) -> None:
        """Raise ``ImportFailed`` with every problem found, in line order."""
        if not self.problems and self.rows_read == 0:
            self.problems.append(Problem(1, None, "the file has a header but no bookings"))
        if self.problems:
            raise ImportFailed(sorted(self.problems, key=lambda p: p.line))

    def _header(self, header: list[str]) -> dict[str, int]:
        positions: dict[str, int] = {}
        problems: list[Problem] = []
        for index, name in enumerate(header):
            key = _header_key(name)
            if key not in REQUIRED and key not in OPTIONAL:
                continue
            if key in positions:
                message = f"the column appears twice (columns {positions[key] + 1} and {index + 1})"
                problems.append(Problem(1, key, message))
            positions[key] = index
        missing = [name for name in REQUIRED if name not in positions]
        must = "the header must name " + ", ".join(REQUIRED)
        if len(missing) == 1:
            problems.append(Problem(1, missing[0], f"missing column; {must}"))
        elif missing:
            found = ", ".join(quote(name) for name in header[:6] if name.strip()) or "nothing"
            what = (
                "the header names none of the columns Evalbot needs"
                if len(missing) == len(REQUIRED)
                else f"the header is wrong: missing the columns {', '.join(missing)}"
            )
            problems.append(Problem(1, None, f"{what} (the first line has {found}); {must}"))
        if problems:
            raise ImportFailed(problems)
        return positions

    def _check(self, line: int, cells: list[str]) -> Row | None:
        found: list[Problem] = []
        fields: dict[str, Any] = {"line": line}
        width = len(cells)
        for column, index, field, read, required, memo in self._plan:
            value = cells[index].strip() if index < width else ""
            if not value:
                if required:
                    found.append(
                        Problem(line, column, _EMPTY.get(column, "empty; a value is required"))
                    )
                continue
            if memo is not None and (known := memo.get(value)) is not None:
                fields[field] = known
                continue
            try:
                fields[field] = read(value)
            except BadValue as exc:
                found.append(Problem(line, column, str(exc)))
                continue
            if memo is not None:
                if len(memo) >= _MEMO:
                    memo.clear()
                memo[value] = fields[field]
        if found:
            self.problems.extend(found)
            return None
        row = Row(**fields)
        found = _row_agrees(row, cells, self.columns)
        if found:
            self.problems.extend(found)
            return None
        return row


def _readers(columns: dict[str, int], zone: ZoneInfo) -> list[_Reader]:
    """How to read each column the file has, in the order the checks report them."""

    read: dict[str, tuple[str, Callable[[str], Any]]] = {
        **{
            name: (name, text_reader(name))
            for name in (*_TEXTS, "manager_name", "course_level", "role")
        },
        "trainer_name": ("trainer_name", text_reader("trainer_name")),
        "starts_at": ("starts_at", lambda value: read_when(value, zone, False)),
        "ends_at": ("ends_at", lambda value: read_when(value, zone, False)),
        "booked_at": ("booked_at", lambda value: read_when(value, zone, True)),
        "delegate_email": ("delegate_email", email_reader("delegate_email")),
        "manager_email": ("manager_email", email_reader("manager_email")),
        "trainer_email": ("trainer_email", email_reader("trainer_email")),
        "agency_sector": ("sector", read_sector),
        "course_length": ("course_length", read_length),
        "course_type": ("course_type", read_course_type),
        "min_places": ("min_places", read_places),
        "max_places": ("max_places", read_places),
        "status": ("status", read_status),
        "delegate_mobile": ("delegate_mobile", read_mobile),
        "manager_mobile": ("manager_mobile", read_mobile),
        "joining_link": ("joining_link", lambda value: read_link("joining_link", value)),
    }
    return [
        (column, columns[column], *read[column], column in REQUIRED, _memo(column))
        for column in (*REQUIRED, *OPTIONAL)
        if column in columns
    ]


def _memo(column: str) -> dict[str, Any] | None:
    """Values read before, for a column whose values repeat down an export (a session's, an
    agency's, a manager's); a delegate's own cells are read each time."""
    own = ("booking_ref", "delegate_name", "delegate_email", "delegate_mobile")
    return None if column in own else {}


_MEMO = 4096  # values remembered per column, so memory stays bounded


def _row_agrees(row: Row, cells: list[str], columns: dict[str, int]) -> list[Problem]:
    """Checks between the cells of one row."""
    found = []
    if row.ends_at <= row.starts_at:
        ends, starts = cells[columns["ends_at"]].strip(), cells[columns["starts_at"]].strip()
        found.append(
            Problem(
                row.line,
                "ends_at",
                f"the session ends ({quote(ends)}) before it starts ({quote(starts)})",
            )
        )
    least, most = row.min_places, row.max_places
    if least is not None and most is not None and least > most:
        found.append(
            Problem(
                row.line,
                "min_places",
                f"minimum places ({least}) is more than the maximum ({most})",
            )
        )
    if row.trainer_name and not row.trainer_email:
        found.append(
            Problem(row.line, "trainer_email", "empty; a trainer_name needs the trainer's email")
        )
    return found


_EMPTY = {
    "starts_at": f"empty; expected {DATE_HINT}",
    "ends_at": f"empty; expected {DATE_HINT}",
    "delegate_email": "empty; expected an email address",
    "manager_email": "empty; expected an email address",
    "agency_sector": "empty; expected a sector such as health or education",
}
_HOLDS_A_PLACE = (BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED)


class _Agreement:
    """Rows that contradict earlier rows: one booking with two delegates, one session two ways,
    one person both waiting and booked on a session. Keeps a little of each row it has seen."""

    def __init__(self) -> None:
        self.bookings: dict[str, tuple[int, str, str]] = {}
        self.sessions: dict[str, tuple[int, str, datetime, datetime]] = {}
        self.agencies: dict[str, tuple[int, Sector]] = {}
        self.courses: dict[str, tuple[int, Duration | None, str | None]] = {}
        self.places: dict[tuple[str, str], tuple[int, str, bool]] = {}

    def check(self, row: Row, problems: list[Problem]) -> bool:
        found: list[Problem] = []
        line = row.line
        first = self.bookings.setdefault(
            row.booking_ref, (line, row.delegate_email, row.session_ref)
        )
        if first[0] != line and first[1] != row.delegate_email:
            found.append(
                Problem(
                    line,
                    "delegate_email",
                    f"booking {clip(row.booking_ref)} is for {clip(first[1])} on line "
                    f"{first[0]} but for {clip(row.delegate_email)} here; one booking "
                    "reference is one delegate",
                )
            )
        if first[0] != line and first[2] != row.session_ref:
            found.append(
                Problem(
                    line,
                    "session_ref",
                    f"booking {clip(row.booking_ref)} is on session {clip(first[2])} on line "
                    f"{first[0]} but on {clip(row.session_ref)} here",
                )
            )
        described = (row.course_title, row.starts_at, row.ends_at)
        session = self.sessions.setdefault(row.session_ref, (line, *described))
        for column, theirs, mine in zip(
            ("course_title", "starts_at", "ends_at"), session[1:], described, strict=True
        ):
            if theirs != mine:
                found.append(
                    Problem(
                        line,
                        column,
                        f"session {clip(row.session_ref)} has a different {column} on line "
                        f"{session[0]}; every row of a session must agree",
                    )
                )
        agency = self.agencies.setdefault(row.agency.lower(), (line, row.sector))
        if agency[1] != row.sector:
            found.append(
                Problem(
                    line,
                    "agency_sector",
                    f"agency {quote(row.agency)} is {agency[1].value!r} on line {agency[0]} "
                    f"but {row.sector.value!r} here",
                )
            )
        found.extend(self._course(row))
        found.extend(self._place(row))
        problems.extend(found)
        return not found

    def _course(self, row: Row) -> list[Problem]:
        if row.course_length is None and row.course_type is None:
            return []
        key = row.course_title.lower()
        line, length, kind = self.courses.get(key, (row.line, None, None))
        found = []
        if row.course_length is not None:
            if length is not None and length != row.course_length:
                found.append(
                    Problem(
                        row.line,
                        "course_length",
                        f"course {quote(row.course_title)} is a {length.value} day on line "
                        f"{line} but a {row.course_length.value} day here; a course has one length",
                    )
                )
            length = length or row.course_length
        if row.course_type is not None:
            if kind is not None and kind != row.course_type:
                found.append(
                    Problem(
                        row.line,
                        "course_type",
                        f"course {quote(row.course_title)} is {kind} on line {line} but "
                        f"{row.course_type} here; a course has one type",
                    )
                )
            kind = kind or row.course_type
        self.courses[key] = (line, length, kind)
        return found

    def _place(self, row: Row) -> list[Problem]:
        """A person on a session's waiting list cannot also hold a place on it."""
        waiting = row.status is BookingStatus.WAITING
        if not waiting and row.status not in (None, *_HOLDS_A_PLACE):
            return []
        key = (row.delegate_email, row.session_ref)
        before = self.places.setdefault(key, (row.line, row.booking_ref, waiting))
        if before[1] == row.booking_ref:
            self.places[key] = (row.line, row.booking_ref, waiting)  # a later row wins
            return []
        if before[2] == waiting:
            return []
        listed, booked = (row.booking_ref, before[1]) if waiting else (before[1], row.booking_ref)
        return [
            Problem(
                row.line,
                "status",
                f"{clip(row.delegate_email)} is on the waiting list for session "
                f"{clip(row.session_ref)} (booking {clip(listed)}) and also booked on it "
                f"(booking {clip(booked)}); the other row is line {before[0]}: remove the "
                "waiting-list row or the booking",
            )
        ]
