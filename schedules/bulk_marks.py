"""Several marks at once, for the CLI and the web page: check them all, then make them all; and
the attendance CSV import that reads a register file into mark requests.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from schedules.marking import MarkResult, check_mark, mark, parse_mark
from schedules.policy import Policy
from schedules.register import AttendanceError, bookings_by_ref
from surveys.booking_csv import ImportFailed, _decode, _dialect, _header_key
from surveys.models import BookingStatus, CourseSession


@dataclass(frozen=True)
class MarkRequest:
    """One mark asked for, and where it was asked (for errors): a CLI option or a CSV line."""

    ref: str
    status: BookingStatus
    prior_notice: str | None = None
    option: str | None = None  # "--attended"
    filename: str | None = None
    line: int | None = None

    def where(self, column: str | None = None) -> str:
        if self.line is not None:
            place = f"{self.filename or 'the file'}, line {self.line}"
            return f"{place}, column {column}" if column else place
        return f"{self.option or 'mark'} {self.ref}"


class RegisterError(AttendanceError):
    """Marks that were not made; ``problems`` lists every reason, each naming where."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def apply_marks(
    session: Session,
    requests: list[MarkRequest],
    *,
    now: datetime,
    actor: str,
    policy: Policy,
    zone: ZoneInfo,
    admin: bool,
    course_session: CourseSession | None = None,
    secret: bytes | None = None,
) -> list[MarkResult]:
    """Check every mark, then make them all, or raise ``RegisterError`` having written nothing.

    With ``course_session`` every booking must be on that session.
    """
    problems: list[str] = []
    found = bookings_by_ref(session, (request.ref for request in requests))
    first: dict[str, MarkRequest] = {}
    for request in requests:
        earlier = first.setdefault(request.ref, request)
        if earlier is not request and (
            earlier.status != request.status or earlier.prior_notice != request.prior_notice
        ):
            problems.append(
                f"{request.where('booking_ref')}: {request.ref} is also marked {earlier.status} "
                f"({earlier.where()}); give one mark per booking"
            )
    sessions: dict[int, CourseSession] = {}
    for request in first.values():
        booking = found.get(request.ref)
        if booking is None:
            problems.append(f"{request.where('booking_ref')}: no booking has this reference")
            continue
        if course_session is not None and booking.session_id != course_session.id:
            other = session.get(CourseSession, booking.session_id)
            problems.append(
                f"{request.where('booking_ref')}: {request.ref} is booked on "
                f"{other.ref if other else 'another session'}, not {course_session.ref}"
            )
            continue
        if booking.session_id not in sessions:
            own = session.get(CourseSession, booking.session_id)
            assert own is not None
            sessions[booking.session_id] = own
        problem = check_mark(
            session, booking, request.status, now=now, policy=policy, admin=admin, zone=zone
        )
        if problem is not None:
            problems.append(f"{request.where()}: {problem}")
    if problems:
        raise RegisterError(problems)
    return [
        mark(
            session,
            found[request.ref],
            request.status,
            now=now,
            actor=actor,
            policy=policy,
            zone=zone,
            admin=admin,
            prior_notice=request.prior_notice,
            secret=secret,
        )
        for request in first.values()
    ]


def read_marks_csv(data: bytes, filename: str) -> list[MarkRequest]:
    """A register file: columns ``booking_ref`` and ``status`` (and optionally ``prior_notice``).

    Raises ``RegisterError`` listing every problem by line and column.
    """
    try:
        text = _decode(data)
    except ImportFailed as failed:
        raise RegisterError([problem.describe(filename) for problem in failed.problems]) from None
    if not text.strip():
        raise RegisterError([f"{filename}: the file is empty; expected booking_ref,status"])
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    header = [_header_key(name) for name in next(reader)]
    missing = [name for name in ("booking_ref", "status") if name not in header]
    if missing:
        raise RegisterError(
            [
                f"{filename}, line 1: missing column {name}; the header must name "
                "booking_ref and status (prior_notice is optional)"
                for name in missing
            ]
        )
    columns = {
        name: header.index(name)
        for name in ("booking_ref", "status", "prior_notice")
        if name in header
    }
    problems: list[str] = []
    requests: list[MarkRequest] = []
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
        where = f"{filename}, line {line}"
        if not values["booking_ref"]:
            problems.append(f"{where}, column booking_ref: empty; expected a booking reference")
        try:
            status = parse_mark(values["status"])
        except AttendanceError:
            problems.append(
                f"{where}, column status: {values['status']!r} is not a mark; "
                "expected attended, partly attended or no-show"
            )
            continue
        notice = values.get("prior_notice") or None
        if notice is not None and status is not BookingStatus.NO_SHOW:
            problems.append(f"{where}, column prior_notice: prior notice only goes with a no-show")
            continue
        if values["booking_ref"]:
            requests.append(
                MarkRequest(values["booking_ref"], status, notice, filename=filename, line=line)
            )
    if not requests and not problems:
        problems.append(f"{filename}: the file has a header but no marks")
    if problems:
        raise RegisterError(problems)
    return requests
