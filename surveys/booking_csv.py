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
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from surveys.booking_agreement import Agreement
from surveys.booking_fields import (
    DATE_HINT,
    BadValue,
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
    text_limit,
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
    """One checked row. Its fields come in three groups: the delegate's own, then those the
    same on every row of an agency, then those the same on every row of a session."""

    line: int
    booking_ref: str
    delegate_name: str
    delegate_email: str
    role: str | None
    booked_at: datetime | None
    status: BookingStatus | None
    delegate_mobile: str | None
    agency: str
    agency_key: str  # the agency's name in lower case: agencies are matched by it
    sector: Sector
    manager_name: str
    manager_email: str
    manager_mobile: str | None
    session_ref: str
    course_title: str
    starts_at: datetime
    ends_at: datetime
    venue: str
    course_level: str | None
    course_length: Duration | None
    course_type: str | None
    min_places: int | None
    max_places: int | None
    trainer_email: str | None
    trainer_name: str | None
    joining_link: str | None


# The columns read into each group of ``Row``'s fields (agency_sector is its ``sector``).
DELEGATE = (
    "booking_ref",
    "delegate_name",
    "delegate_email",
    "role",
    "booked_at",
    "status",
    "delegate_mobile",
)
AGENCY = ("agency", "agency_sector", "manager_name", "manager_email", "manager_mobile")
SESSION = (
    "session_ref",
    "course_title",
    "starts_at",
    "ends_at",
    "venue",
    "course_level",
    "course_length",
    "course_type",
    "min_places",
    "max_places",
    "trainer_email",
    "trainer_name",
    "joining_link",
)
_UNSET = dict.fromkeys(Row.__slots__)


class Export:
    """One export being read; ``rows()`` then ``finish()``."""

    def __init__(self, source: bytes | Path, zone: ZoneInfo):
        self.zone = zone
        self.problems: list[Problem] = []
        self.columns: dict[str, int] = {}
        self.rows_read = 0
        self._source = source
        self._agreement = Agreement()
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
            repeats = _Repeats(self.columns, self._plan)
            agreement, problems = self._agreement, self.problems
            previous_line = reader.line_num
            for cells in reader:
                line, previous_line = previous_line + 1, reader.line_num
                if not (cells and cells[0].strip()) and not "".join(cells).strip():
                    continue  # a blank row
                self.rows_read += 1
                row = repeats.row(line, cells)
                if row is not None:
                    if agreement.check_delegate(row, problems):
                        yield row
                    continue
                row = self._check(line, cells)
                if row is not None and agreement.check(row, problems):
                    repeats.remember(row, cells)
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
        row = Row(**{**_UNSET, **fields, "agency_key": fields["agency"].lower()})
        found = _row_agrees(row, cells, self.columns)
        if found:
            self.problems.extend(found)
            return None
        return row


class _Repeats:
    """The agency's and the session's cells of rows that passed every check, with their values.

    Most rows of an export repeat an earlier row's agency and session cells exactly: of those,
    only the delegate's own cells are read, and only their own booking is checked against
    earlier rows (``Agreement.check_delegate``). Any other row, and one whose own cells are not
    right, is read cell by cell (``Export._check``), so its problems are reported as ever.
    """

    def __init__(self, columns: dict[str, int], plan: list[_Reader]):
        readers = {reader[0]: reader for reader in plan}
        # Each own cell the file has: where it is, where its value goes, how it is read.
        self.own = [
            (index, at, read, required, memo, _PLAIN.get(column, 0))
            for at, column in enumerate(DELEGATE, start=1)
            if column in readers
            for _, index, _, read, required, memo in [readers[column]]
        ]
        self.width = max(columns.values()) + 1
        self.agency_cells = itemgetter(*(columns[c] for c in AGENCY if c in columns))
        self.session_cells = itemgetter(*(columns[c] for c in SESSION if c in columns))
        self.agencies: dict[Any, tuple[Any, ...]] = {}
        self.sessions: dict[Any, tuple[Any, ...]] = {}

    def row(self, line: int, cells: list[str]) -> Row | None:
        """The row, when its agency's and session's cells are known and its own are right."""
        if len(cells) < self.width:
            return None
        agency = self.agencies.get(self.agency_cells(cells))
        session = self.sessions.get(self.session_cells(cells))
        if agency is None or session is None:
            return None
        values: list[Any] = [line, None, None, None, None, None, None, None]
        for index, at, read, required, memo, plain in self.own:
            value = cells[index].strip()
            if not value:
                if required:
                    return None
            elif len(value) <= plain and value.isprintable():
                values[at] = value  # text within its column's limit (a quick check_text)
            elif memo is not None and (known := memo.get(value)) is not None:
                values[at] = known
            else:
                try:
                    values[at] = read(value)
                except BadValue:
                    return None
        return Row(*values, *agency, *session)

    def remember(self, row: Row, cells: list[str]) -> None:
        """Note the agency's and session's cells of a row that passed every check."""
        for seen, key, values in (
            (self.agencies, self.agency_cells, _AGENCY_FIELDS),
            (self.sessions, self.session_cells, _SESSION_FIELDS),
        ):
            try:
                cells_seen = key(cells)
            except IndexError:
                return
            if len(seen) >= _MEMO:
                seen.clear()
            seen[cells_seen] = values(row)


# The own cells read as plain text, with their limits (see ``text_reader``).
_PLAIN = {column: text_limit(column) or 0 for column in ("booking_ref", "delegate_name", "role")}
_AGENCY_FIELDS = attrgetter(
    "agency", "agency_key", "sector", "manager_name", "manager_email", "manager_mobile"
)
_SESSION_FIELDS = attrgetter(*SESSION)  # named as their columns


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
