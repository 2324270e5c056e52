"""Checks between the rows of a booking export: what a row says must agree with earlier rows.

One booking reference is one delegate on one session; every row of a session describes it the
same way, every row of an agency gives it the same sector, and a course has one length and one
type; a person on a session's waiting list cannot also hold a place on it. ``Agreement`` keeps a
little of each row it has seen, and reports each contradiction at the later row's line.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from surveys.booking_fields import clip, quote
from surveys.booking_text import Problem
from surveys.models import BookingStatus, Duration, Sector

if TYPE_CHECKING:
    from surveys.booking_csv import Row

_HOLDS_A_PLACE = (BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED)
_PLACE_OR_NONE = frozenset({None, *_HOLDS_A_PLACE})  # no status: booked
_BOOKED_OR_NONE = frozenset({None, BookingStatus.BOOKED})


class Agreement:
    """Rows that contradict earlier rows: one booking with two delegates, one session two ways,
    one person both waiting and booked on a session. Keeps a little of each row it has seen."""

    def __init__(self) -> None:
        self.bookings: dict[str, tuple[int, str, str]] = {}
        self.sessions: dict[str, tuple[int, str, datetime, datetime]] = {}
        self.agencies: dict[str, tuple[int, Sector]] = {}
        self.courses: dict[str, tuple[int, Duration | None, str | None]] = {}
        self.places: dict[tuple[str, str], tuple[int, str, bool]] = {}

    def check(self, row: Row, problems: list[Problem]) -> bool:
        """Every check; whether the row agrees with those before it."""
        found = self._booking(row)
        found.extend(self._session(row))
        found.extend(self._agency(row))
        found.extend(self._course(row))
        found.extend(self._place(row))
        problems.extend(found)
        return not found

    def check_delegate(self, row: Row, problems: list[Problem]) -> bool:
        """The checks of the row's own booking, for a row whose session, course and agency cells
        are those of an earlier row that agreed: they agree again, and change nothing kept."""
        line, email, session_ref = row.line, row.delegate_email, row.session_ref
        first = self.bookings.setdefault(row.booking_ref, (line, email, session_ref))
        if first[0] == line and row.status in _BOOKED_OR_NONE:
            # The most common row by far: a new booking of a place, whose person is on the
            # session once (as ``_place`` finds, more slowly).
            mine = (line, row.booking_ref, False)
            if self.places.setdefault((email, session_ref), mine) is mine:
                return True
        found = self._place(row) if first[0] == line else self._booking(row) + self._place(row)
        problems.extend(found)
        return not found

    def _booking(self, row: Row) -> list[Problem]:
        line = row.line
        first = self.bookings.setdefault(
            row.booking_ref, (line, row.delegate_email, row.session_ref)
        )
        if first[0] == line:
            return []
        found = []
        if first[1] != row.delegate_email:
            found.append(
                Problem(
                    line,
                    "delegate_email",
                    f"booking {clip(row.booking_ref)} is for {clip(first[1])} on line "
                    f"{first[0]} but for {clip(row.delegate_email)} here; one booking "
                    "reference is one delegate",
                )
            )
        if first[2] != row.session_ref:
            found.append(
                Problem(
                    line,
                    "session_ref",
                    f"booking {clip(row.booking_ref)} is on session {clip(first[2])} on line "
                    f"{first[0]} but on {clip(row.session_ref)} here",
                )
            )
        return found

    def _session(self, row: Row) -> list[Problem]:
        described = (row.course_title, row.starts_at, row.ends_at)
        session = self.sessions.setdefault(row.session_ref, (row.line, *described))
        return [
            Problem(
                row.line,
                column,
                f"session {clip(row.session_ref)} has a different {column} on line "
                f"{session[0]}; every row of a session must agree",
            )
            for column, theirs, mine in zip(
                ("course_title", "starts_at", "ends_at"), session[1:], described, strict=True
            )
            if theirs != mine
        ]

    def _agency(self, row: Row) -> list[Problem]:
        line, sector = self.agencies.setdefault(row.agency_key, (row.line, row.sector))
        if sector == row.sector:
            return []
        return [
            Problem(
                row.line,
                "agency_sector",
                f"agency {quote(row.agency)} is {sector.value!r} on line {line} "
                f"but {row.sector.value!r} here",
            )
        ]

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
        if not waiting and row.status not in _PLACE_OR_NONE:
            return []
        key = (row.delegate_email, row.session_ref)
        mine = (row.line, row.booking_ref, waiting)
        before = self.places.setdefault(key, mine)
        if before is mine:
            return []
        if before[1] == row.booking_ref:
            self.places[key] = mine  # a later row wins
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
