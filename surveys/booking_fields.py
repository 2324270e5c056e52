"""The values of a booking export's cells: what each column accepts and how it is read.

Every reader returns the value or raises ``BadValue`` with what was expected; the row checker
in ``surveys.booking_csv`` adds the line and the column. Values are checked against the limits
of the columns they are stored in (``text_limit``), so nothing reaches the database that it
would refuse. Readers of values that repeat down an export (dates, sectors, numbers) are cached.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    Duration,
    Person,
    Sector,
)

QUOTED = 60  # an error shows at most this many characters of the bad value
EMAIL = re.compile(r"^[^@\s,;<>\x00-\x1f\x7f]+@[^@\s,;<>\x00-\x1f\x7f]+\.[^@\s,;<>\x00-\x1f\x7f]+$")
UK_DATE_TIME = re.compile(
    r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})(?:\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?$"
)
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_HINT = "a date and time such as 2026-03-02 09:30 or 02/03/2026 09:30"
FIRST_YEAR, LAST_YEAR = 1970, 2100
MAX_PLACES = 100_000
HALF_DAY_HOURS = 4  # a session of at most this many hours is a half day
HOURS = re.compile(r"^([0-9]{1,2}(?:\.[0-9]{1,2})?)\s*(?:h|hr|hrs|hour|hours)?$")
DRAMA = re.compile(r"^7700900[0-9]{3}$")
COURSE_TYPES = ("face to face", "e-learning", "conference", "briefing")

# Which table column each text cell is stored in: its length is the cell's limit.
STORED_IN: dict[str, Any] = {
    "booking_ref": Booking.__table__.c.ref,  # type: ignore[attr-defined]
    "session_ref": CourseSession.__table__.c.ref,  # type: ignore[attr-defined]
    "course_title": Course.__table__.c.title,  # type: ignore[attr-defined]
    "venue": CourseSession.__table__.c.venue,  # type: ignore[attr-defined]
    "delegate_name": Person.__table__.c.name,  # type: ignore[attr-defined]
    "manager_name": Person.__table__.c.name,  # type: ignore[attr-defined]
    "trainer_name": Person.__table__.c.name,  # type: ignore[attr-defined]
    "delegate_email": Person.__table__.c.email,  # type: ignore[attr-defined]
    "manager_email": Person.__table__.c.email,  # type: ignore[attr-defined]
    "trainer_email": Person.__table__.c.email,  # type: ignore[attr-defined]
    "agency": Agency.__table__.c.name,  # type: ignore[attr-defined]
    "course_level": Course.__table__.c.level,  # type: ignore[attr-defined]
    "role": Person.__table__.c.role,  # type: ignore[attr-defined]
    "joining_link": CourseSession.__table__.c.joining_link,  # type: ignore[attr-defined]
}

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
    "wait listed": BookingStatus.WAITING,
    "waitlisted": BookingStatus.WAITING,
    "waiting list": BookingStatus.WAITING,
}
LENGTH_ALIASES: dict[str, Duration] = {
    "half day": Duration.HALF,
    "half": Duration.HALF,
    "full day": Duration.FULL,
    "full": Duration.FULL,
    "whole day": Duration.FULL,
    "1 day": Duration.FULL,
    "one day": Duration.FULL,
}
TYPE_ALIASES: dict[str, str] = {
    "face to face": "face to face",
    "f2f": "face to face",
    "in person": "face to face",
    "classroom": "face to face",
    "e learning": "e-learning",
    "elearning": "e-learning",
    "conference": "conference",
    "briefing": "briefing",
}


class BadValue(ValueError):
    """A cell's value is not what its column takes; the message says what was expected."""


def quote(value: str) -> str:
    """The value as an error shows it: at most ``QUOTED`` characters, with the length if longer."""
    if len(value) <= QUOTED:
        return repr(value)
    return f"{value[: QUOTED - 1]!r}… ({len(value):,} characters)"


def clip(value: str) -> str:
    """A reference or address as a message names it: at most ``QUOTED`` characters."""
    return value if len(value) <= QUOTED else value[: QUOTED - 1] + "…"


def text_limit(column: str) -> int | None:
    stored = STORED_IN.get(column)
    return getattr(stored.type, "length", None) if stored is not None else None


def check_text(column: str, value: str) -> str:
    """A text cell fits its database column and holds no control characters."""
    return text_reader(column)(value)


@lru_cache(maxsize=64)
def text_reader(column: str) -> Callable[[str], str]:
    """``check_text`` for one column, its limit looked up once."""
    limit = text_limit(column) or 1 << 30

    def read(value: str) -> str:
        if len(value) > limit:
            raise BadValue(f"expected at most {limit} characters, got {quote(value)}")
        if not value.isprintable() and CONTROL.search(value):
            raise BadValue(
                f"expected text without control characters (such as NUL), got {quote(value)}"
            )
        return value

    return read


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def read_email(column: str, value: str) -> str:
    return email_reader(column)(value)


@lru_cache(maxsize=8)
def email_reader(column: str) -> Callable[[str], str]:
    """``read_email`` for one column, its limit looked up once."""
    limit = text_limit(column) or 1 << 30

    def read(value: str) -> str:
        value = value.lower()
        if not EMAIL.match(value):
            raise BadValue(
                f"expected an email address such as name@agency.org.uk, got {quote(value)}"
            )
        if len(value) > limit:
            raise BadValue(f"expected at most {limit} characters, got {quote(value)}")
        return value

    return read


@lru_cache(maxsize=16384)
def read_when(value: str, zone: ZoneInfo, date_only_ok: bool = False) -> datetime:
    """ISO 8601 or UK ``dd/mm/yyyy HH:MM``, local time unless the value gives its own offset."""
    uk = UK_DATE_TIME.match(value)
    try:
        if uk:
            day, month, year, hour, minute, second = uk.groups()
            if hour is None and not date_only_ok:
                raise BadValue(f"expected {DATE_HINT} (with the time), got {quote(value)}")
            parsed = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
            )
        elif ISO_DATE.match(value) and value.isascii():
            if not date_only_ok and len(value) <= 10:
                raise BadValue(f"expected {DATE_HINT} (with the time), got {quote(value)}")
            parsed = datetime.fromisoformat(value)
        else:
            raise BadValue(f"expected {DATE_HINT}, got {quote(value)}")
    except ValueError as exc:
        if isinstance(exc, BadValue):
            raise
        raise BadValue(_not_real(value, uk)) from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise BadValue(f"expected a date between {FIRST_YEAR} and {LAST_YEAR}, got {quote(value)}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)  # the years checked keep this clear of datetime's limits


_ISO_PARTS = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2}))?")


def _not_real(value: str, uk: re.Match[str] | None) -> str:
    """Why a value shaped like a date is not one: 30/02/2027 is not a real date."""
    iso = _ISO_PARTS.match(value)
    if uk:
        day, month, year, hour, minute = (int(n or 0) for n in uk.groups()[:5])
    elif iso:
        year, month, day, hour, minute = (int(n or 0) for n in iso.groups())
    else:
        return f"expected {DATE_HINT}, got {quote(value)}"
    if not 1 <= month <= 12:
        why = f"there is no month {month}"
    elif day < 1 or day > calendar.monthrange(max(year, 1), month)[1]:
        days = calendar.monthrange(max(year, 1), month)[1]
        why = f"{calendar.month_name[month]} {year} has {days} days"
    elif hour > 23 or minute > 59:
        why = f"{hour:02d}:{minute:02d} is not a time of day"
    else:
        return f"expected {DATE_HINT}, got {quote(value)}"
    return f"{quote(value)} is not a real date: {why}"


def parse_local_datetime(
    value: str, zone: ZoneInfo, *, date_only_ok: bool = False
) -> datetime | None:
    """``read_when``, or None when the value is not a date and time."""
    try:
        return read_when(value.strip(), zone, date_only_ok)
    except BadValue:
        return None


@lru_cache(maxsize=1024)
def read_places(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or int(value) > MAX_PLACES:
        raise BadValue(
            f"expected a whole number of places from 0 to {MAX_PLACES:,}, got {quote(value)}"
        )
    return int(value)


def _plain(value: str) -> str:
    return re.sub(
        r"\s+", " ", value.strip().lower().replace("&", "and").replace("'", "").replace("’", "")
    )


@lru_cache(maxsize=1024)
def parse_sector(value: str) -> Sector | None:
    plain = _plain(value)
    for sector in Sector:
        if plain == _plain(sector.value):
            return sector
    return SECTOR_ALIASES.get(plain)


def read_sector(value: str) -> Sector:
    sector = parse_sector(value)
    if sector is None:
        allowed = ", ".join(s.value for s in Sector)
        raise BadValue(f"unknown sector {quote(value)}; expected one of: {allowed}")
    return sector


@lru_cache(maxsize=256)
def parse_status(value: str) -> BookingStatus | None:
    plain = _plain(value).replace("_", " ").replace("-", " ")
    for status in BookingStatus:
        if plain == status.value.replace("-", " "):
            return status
    return STATUS_ALIASES.get(plain)


def read_status(value: str) -> BookingStatus:
    status = parse_status(value)
    if status is None:
        allowed = ", ".join(s.value for s in BookingStatus)
        raise BadValue(f"unknown booking status {quote(value)}; expected one of: {allowed}")
    return status


@lru_cache(maxsize=256)
def read_length(value: str) -> Duration:
    """``half day``, ``full day`` or hours (``3.5``, ``3.5 hours``): at most 4 hours is half."""
    plain = _plain(value).replace("-", " ")
    if plain in LENGTH_ALIASES:
        return LENGTH_ALIASES[plain]
    hours = HOURS.match(plain)
    if hours and 0 < float(hours.group(1)) <= 24:
        return Duration.HALF if float(hours.group(1)) <= HALF_DAY_HOURS else Duration.FULL
    raise BadValue(
        f"expected half day, full day or a number of hours such as 3.5, got {quote(value)}"
    )


def length_of(starts_at: datetime, ends_at: datetime) -> Duration:
    """A session's length from its times, for a course the export gives no length for."""
    short = ends_at - starts_at <= timedelta(hours=HALF_DAY_HOURS)
    return Duration.HALF if short else Duration.FULL


@lru_cache(maxsize=256)
def read_course_type(value: str) -> str:
    found = TYPE_ALIASES.get(_plain(value).replace("-", " "))
    if found is None:
        raise BadValue(
            f"unknown course type {quote(value)}; expected one of: {', '.join(COURSE_TYPES)}"
        )
    return found


@lru_cache(maxsize=65536)
def read_mobile(value: str) -> str:
    """A UK mobile number (07911 123456, +44 7911 123456) in E.164: +447911123456."""
    import phonenumbers  # imported when an export has a mobile column

    expected = f"expected a UK mobile number such as 07911 123456, got {quote(value)}"
    if len(value) > 40:
        raise BadValue(expected)
    try:
        number = phonenumbers.parse(value, "GB")
    except phonenumbers.NumberParseException:
        raise BadValue(expected) from None
    mobile = phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    valid = mobile and phonenumbers.is_valid_number(number)
    # Ofcom keeps 07700 900000-900999 for drama: examples and tests use them to ring nobody.
    drama = DRAMA.match(str(number.national_number)) is not None
    if number.country_code != 44 or not (valid or drama):
        raise BadValue(expected)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def read_link(column: str, value: str) -> str:
    expected = f"expected a web address starting https:// or http://, got {quote(value)}"
    if any(c.isspace() for c in value):
        raise BadValue(expected)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise BadValue(expected) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise BadValue(expected)
    return check_text(column, value)
