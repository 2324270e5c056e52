"""Quarters and years, calendar or financial, read from text, as UTC bounds."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

QuarterScheme = Literal["calendar", "financial"]
MONTHS = list(calendar.month_name)[1:]


class QuarterError(ValueError):
    """A quarter or year that cannot be read; the message shows what is expected."""


class Period(Protocol):
    """What a section of a report is computed over: a quarter or a year."""

    @property
    def label(self) -> str: ...

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]: ...


def _bounds(first: date, after: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Days as a half-open UTC interval, from local midnight to local midnight."""
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(after, time(0), tzinfo=zone).astimezone(UTC)
    return start, end


@dataclass(frozen=True)
class Quarter:
    """A calendar quarter, or a quarter of the financial year that starts on 1 April.

    For financial quarters ``year`` is the year the financial year starts: 2026Q1 is April to
    June 2026 and 2026Q4 is January to March 2027.
    """

    year: int
    number: int
    scheme: QuarterScheme = "calendar"

    @property
    def first_day(self) -> date:
        month = 3 * (self.number - 1) + (4 if self.scheme == "financial" else 1)
        year = self.year + (month - 1) // 12
        return date(year, (month - 1) % 12 + 1, 1)

    @property
    def next_day(self) -> date:
        """The first day after the quarter."""
        first = self.first_day
        month = first.month + 3
        return date(first.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)

    @property
    def last_day(self) -> date:
        return date.fromordinal(self.next_day.toordinal() - 1)

    @property
    def label(self) -> str:
        if self.scheme == "financial":
            return f"{self.year}/{(self.year + 1) % 100:02d} Q{self.number}"
        return f"{self.year} Q{self.number}"

    @property
    def months(self) -> str:
        first, last = self.first_day, self.last_day
        return f"{MONTHS[first.month - 1]} to {MONTHS[last.month - 1]} {last.year}"

    @property
    def slug(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def short(self) -> str:
        """The quarter within its year, for a column heading: "Q1"."""
        return f"Q{self.number}"

    @property
    def previous(self) -> Quarter:
        if self.number == 1:
            return Quarter(self.year - 1, 4, self.scheme)
        return Quarter(self.year, self.number - 1, self.scheme)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The quarter as a half-open UTC interval, from local midnight to local midnight."""
        return _bounds(self.first_day, self.next_day, zone)


@dataclass(frozen=True)
class Year:
    """A calendar year, or a financial year from 1 April (``year`` is the year it starts)."""

    year: int
    scheme: QuarterScheme = "calendar"

    @property
    def quarters(self) -> list[Quarter]:
        return [Quarter(self.year, number, self.scheme) for number in range(1, 5)]

    @property
    def first_day(self) -> date:
        return self.quarters[0].first_day

    @property
    def last_day(self) -> date:
        return self.quarters[-1].last_day

    @property
    def label(self) -> str:
        if self.scheme == "financial":
            return f"{self.year}/{(self.year + 1) % 100:02d}"
        return str(self.year)

    @property
    def months(self) -> str:
        first, last = self.first_day, self.last_day
        return f"{MONTHS[first.month - 1]} {first.year} to {MONTHS[last.month - 1]} {last.year}"

    @property
    def slug(self) -> str:
        return str(self.year)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        return _bounds(self.first_day, self.quarters[-1].next_day, zone)


_QUARTER = re.compile(r"^\s*(\d{4})(?:\s*/\s*(\d{2}))?\s*[- ]?\s*Q([1-4])\s*$", re.IGNORECASE)


def parse_quarter(text: str, scheme: QuarterScheme = "calendar") -> Quarter:
    """``2026Q1`` (also ``2026-Q1``, ``2026 Q1``; ``2026/27 Q1`` for financial quarters)."""
    match = _QUARTER.match(text)
    if match is None:
        raise QuarterError(f"{text!r} is not a quarter: write the year and quarter, like 2026Q1")
    year, number = int(match[1]), int(match[3])
    if match[2] is not None and (scheme != "financial" or int(match[2]) != (year + 1) % 100):
        raise QuarterError(
            f"{text!r}: a year like 2026/27 names a financial year; "
            f"quarters here are {scheme} quarters (write {year}Q{number})"
        )
    return Quarter(year, number, scheme)


_YEAR = re.compile(r"^\s*(\d{4})(?:\s*/\s*(\d{2}))?\s*$")


def parse_year(text: str, scheme: QuarterScheme = "calendar") -> Year:
    """``2026``; also ``2026/27`` for a financial year."""
    match = _YEAR.match(text)
    if match is None:
        example = "2026 (or 2026/27)" if scheme == "financial" else "2026"
        raise QuarterError(f"{text!r} is not a year: write it like {example}")
    year = int(match[1])
    if match[2] is not None and (scheme != "financial" or int(match[2]) != (year + 1) % 100):
        raise QuarterError(
            f"{text!r}: a year like 2026/27 names a financial year; "
            f"years here are {scheme} years (write {year})"
        )
    return Year(year, scheme)
