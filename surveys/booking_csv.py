"""Reading a booking system's CSV export, one row per delegate, and checking all of it.

Every problem is collected with its line, its column and what was expected, so a coordinator can
mend the whole file at once; ``read_rows`` raises ``ImportFailed`` listing them all.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from surveys.models import (
    BookingStatus,
    Sector,
)

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
    "role",
    "min_places",
    "max_places",
    "trainer_email",
    "booked_at",
    "status",
)
EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
UK_DATE_TIME = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
DATE_HINT = "a date and time such as 2026-03-02 09:30 or 02/03/2026 09:30"

SECTOR_ALIASES: dict[str, Sector] = {
    "childrens social care": Sector.CHILDRENS_SOCIAL_CARE,
    "children social care": Sector.CHILDRENS_SOCIAL_CARE,
    "social care": Sector.CHILDRENS_SOCIAL_CARE,
    "csc": Sector.CHILDRENS_SOCIAL_CARE,
    "la": Sector.LOCAL_AUTHORITY,
    "council": Sector.LOCAL_AUTHORITY,
    "nhs": Sector.HEALTH,
    "voluntary": Sector.VOLUNTARY,
    "voluntary and community sector": Sector.VOLUNTARY,
    "vcs": Sector.VOLUNTARY,
    "vcfs": Sector.VOLUNTARY,
    "vcse": Sector.VOLUNTARY,
    "schools": Sector.EDUCATION,
    "school": Sector.EDUCATION,
}
STATUS_ALIASES: dict[str, BookingStatus] = {
    "canceled": BookingStatus.CANCELLED,
    "no show": BookingStatus.NO_SHOW,
    "noshow": BookingStatus.NO_SHOW,
    "did not attend": BookingStatus.NO_SHOW,
    "dna": BookingStatus.NO_SHOW,
    "late cancelled": BookingStatus.LATE_CANCELLATION,
    "late cancel": BookingStatus.LATE_CANCELLATION,
    "partially attended": BookingStatus.PARTLY_ATTENDED,
    "partial": BookingStatus.PARTLY_ATTENDED,
    "confirmed": BookingStatus.BOOKED,
}


@dataclass(frozen=True)
class Problem:
    line: int
    column: str | None
    message: str

    def describe(self, filename: str) -> str:
        where = f"{filename}, line {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


class ImportFailed(Exception):
    """The file was not imported; ``problems`` says every reason."""

    def __init__(self, problems: list[Problem]):
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass
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
    role: str | None = None
    min_places: int | None = None
    max_places: int | None = None
    trainer_email: str | None = None
    booked_at: datetime | None = None
    status: BookingStatus | None = None


# Reading and checking -------------------------------------------------------------------------


def read_rows(data: bytes, zone: ZoneInfo) -> list[Row]:
    """Decode, parse and check a whole export; raises ``ImportFailed`` listing every problem."""
    text = _decode(data)
    if not text.strip():
        raise ImportFailed(
            [Problem(1, None, "the file is empty; expected a header row and bookings")]
        )
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    header = next(reader)
    columns, problems = _columns(header)
    if problems:
        raise ImportFailed(problems)

    rows: list[Row] = []
    previous_line = reader.line_num
    for cells in reader:
        line = previous_line + 1
        previous_line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values = {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in columns.items()
        }
        row = _check_row(line, values, zone, problems)
        if row is not None:
            rows.append(row)
    if not rows and not problems:
        problems.append(Problem(1, None, "the file has a header but no bookings"))
    problems.extend(_check_consistency(rows))
    if problems:
        raise ImportFailed(sorted(problems, key=lambda p: p.line))
    return _deduplicated(rows)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ImportFailed(
            [
                Problem(
                    line,
                    None,
                    f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} at character {column}); "
                    "save the export as CSV UTF-8 and import it again",
                )
            ]
        ) from None


def _dialect(text: str) -> type[csv.Dialect]:
    first = text.splitlines()[0]
    if first.count(",") == 0 and (first.count(";") or first.count("\t")):
        return _Semicolon if first.count(";") >= first.count("\t") else csv.excel_tab
    return csv.excel


class _Semicolon(csv.excel):
    delimiter = ";"


def _header_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower().lstrip("\ufeff"))


def _columns(header: list[str]) -> tuple[dict[str, int], list[Problem]]:
    positions: dict[str, int] = {}
    problems: list[Problem] = []
    for index, name in enumerate(header):
        key = _header_key(name)
        if key not in REQUIRED and key not in OPTIONAL:
            continue
        if key in positions:
            problems.append(
                Problem(
                    1,
                    key,
                    f"the column appears twice (columns {positions[key] + 1} and {index + 1})",
                )
            )
        positions[key] = index
    missing = [name for name in REQUIRED if name not in positions]
    for name in missing:
        problems.append(
            Problem(1, name, "missing column; the header must name " + ", ".join(REQUIRED))
        )
    return positions, problems


def _check_row(
    line: int, values: dict[str, str], zone: ZoneInfo, problems: list[Problem]
) -> Row | None:
    found: list[Problem] = []

    def required(name: str) -> str:
        value = values.get(name, "")
        if not value:
            found.append(Problem(line, name, "empty; a value is required"))
        return value

    def when(name: str, *, optional: bool = False) -> datetime | None:
        value = values.get(name, "")
        if not value:
            if not optional:
                found.append(Problem(line, name, f"empty; expected {DATE_HINT}"))
            return None
        parsed = parse_local_datetime(value, zone, date_only_ok=optional)
        if parsed is None:
            found.append(Problem(line, name, f"expected {DATE_HINT}, got {value!r}"))
        return parsed

    def email(name: str, *, optional: bool = False) -> str | None:
        value = values.get(name, "").lower()
        if not value:
            if not optional:
                found.append(Problem(line, name, "empty; expected an email address"))
            return None
        if not EMAIL.match(value):
            found.append(
                Problem(
                    line,
                    name,
                    f"expected an email address such as name@agency.org.uk, got {value!r}",
                )
            )
            return None
        return value

    def count(name: str) -> int | None:
        value = values.get(name, "")
        if not value:
            return None
        if not value.isdigit():
            found.append(Problem(line, name, f"expected a whole number of places, got {value!r}"))
            return None
        return int(value)

    texts = {
        name: required(name)
        for name in (
            "booking_ref",
            "session_ref",
            "course_title",
            "venue",
            "delegate_name",
            "agency",
            "manager_name",
        )
    }
    starts_at, ends_at = when("starts_at"), when("ends_at")
    if starts_at and ends_at and ends_at <= starts_at:
        found.append(
            Problem(
                line,
                "ends_at",
                f"the session ends ({values['ends_at']}) before it starts ({values['starts_at']})",
            )
        )
    delegate_email, manager_email = email("delegate_email"), email("manager_email")
    sector = parse_sector(values.get("agency_sector", ""))
    if sector is None:
        allowed = ", ".join(s.value for s in Sector)
        given = values.get("agency_sector", "")
        found.append(
            Problem(line, "agency_sector", f"unknown sector {given!r}; expected one of: {allowed}")
        )
    min_places, max_places = count("min_places"), count("max_places")
    if min_places is not None and max_places is not None and min_places > max_places:
        found.append(
            Problem(
                line,
                "min_places",
                f"minimum places ({min_places}) is more than the maximum ({max_places})",
            )
        )
    status = None
    if values.get("status"):
        status = parse_status(values["status"])
        if status is None:
            allowed = ", ".join(s.value for s in BookingStatus)
            found.append(
                Problem(
                    line,
                    "status",
                    f"unknown booking status {values['status']!r}; expected one of: {allowed}",
                )
            )
    trainer_email = email("trainer_email", optional=True)
    booked_at = when("booked_at", optional=True)

    if found:
        problems.extend(found)
        return None
    assert starts_at and ends_at and delegate_email and manager_email and sector
    return Row(
        line=line,
        starts_at=starts_at,
        ends_at=ends_at,
        delegate_email=delegate_email,
        manager_email=manager_email,
        sector=sector,
        course_level=values.get("course_level") or None,
        role=values.get("role") or None,
        min_places=min_places,
        max_places=max_places,
        trainer_email=trainer_email,
        booked_at=booked_at,
        status=status,
        **texts,
    )


def parse_local_datetime(
    value: str, zone: ZoneInfo, *, date_only_ok: bool = False
) -> datetime | None:
    """ISO 8601 or UK ``dd/mm/yyyy HH:MM``, local time unless the value gives its own offset."""
    value = value.strip()
    parsed: datetime | None = None
    uk = UK_DATE_TIME.match(value)
    try:
        if uk:
            day, month, year, hour, minute, second = uk.groups()
            if hour is None and not date_only_ok:
                return None
            parsed = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
            )
        else:
            if not date_only_ok and len(value) <= 10:
                return None
            parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _plain(value: str) -> str:
    return re.sub(
        r"\s+", " ", value.strip().lower().replace("&", "and").replace("'", "").replace("’", "")
    )


def parse_sector(value: str) -> Sector | None:
    plain = _plain(value)
    for sector in Sector:
        if plain == _plain(sector.value):
            return sector
    return SECTOR_ALIASES.get(plain)


def parse_status(value: str) -> BookingStatus | None:
    plain = _plain(value).replace("_", " ").replace("-", " ")
    for status in BookingStatus:
        if plain == status.value.replace("-", " "):
            return status
    return STATUS_ALIASES.get(plain)


def _check_consistency(rows: Iterable[Row]) -> list[Problem]:
    """Rows that contradict each other: one booking with two delegates, one session two ways."""
    problems: list[Problem] = []
    bookings: dict[str, Row] = {}
    sessions: dict[str, Row] = {}
    agencies: dict[str, Row] = {}
    for row in rows:
        first = bookings.setdefault(row.booking_ref, row)
        if first is not row and first.delegate_email != row.delegate_email:
            problems.append(
                Problem(
                    row.line,
                    "delegate_email",
                    f"booking {row.booking_ref} is for {first.delegate_email} on line {first.line} "
                    f"but for {row.delegate_email} here; one booking reference is one delegate",
                )
            )
        if first is not row and first.session_ref != row.session_ref:
            problems.append(
                Problem(
                    row.line,
                    "session_ref",
                    f"booking {row.booking_ref} is on session {first.session_ref} on line "
                    f"{first.line} but on {row.session_ref} here",
                )
            )
        session = sessions.setdefault(row.session_ref, row)
        for column in ("course_title", "starts_at", "ends_at"):
            if getattr(session, column) != getattr(row, column):
                problems.append(
                    Problem(
                        row.line,
                        column,
                        f"session {row.session_ref} has a different {column} on line "
                        f"{session.line}; every row of a session must agree",
                    )
                )
        agency = agencies.setdefault(row.agency.lower(), row)
        if agency.sector != row.sector:
            problems.append(
                Problem(
                    row.line,
                    "agency_sector",
                    f"agency {row.agency!r} is {agency.sector.value!r} on line {agency.line} "
                    f"but {row.sector.value!r} here",
                )
            )
    return problems


def _deduplicated(rows: list[Row]) -> list[Row]:
    """Later rows for the same booking win (an export may repeat a booking it updated)."""
    latest: dict[str, Row] = {}
    for row in rows:
        latest[row.booking_ref] = row
    return list(latest.values())
