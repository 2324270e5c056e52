"""What every section's queries are built from: the tables, the period's sessions, counts and
ratios computed by the database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    Table,
    and_,
    case,
    cast,
    func,
)
from sqlalchemy.sql import ColumnElement, FromClause
from sqlmodel import SQLModel

from surveys.models import BookingStatus, InvitationStatus, SessionStatus, Stage
from surveys.report.periods import (
    Period,
)
from surveys.report.rows import (
    AttendanceRow,
)

_TABLES = SQLModel.metadata.tables
SESSION: Table = _TABLES["course_session"]
COURSE: Table = _TABLES["course"]
BOOKING: Table = _TABLES["booking"]
PERSON: Table = _TABLES["person"]
AGENCY: Table = _TABLES["agency"]
INVITATION: Table = _TABLES["survey_invitation"]
ANSWER: Table = _TABLES["answer"]
DEFINITION: Table = _TABLES["survey_definition_version"]

NO_AGENCY = "No agency recorded"
NO_SECTOR = "not recorded"
MEASURES = ("knowledge", "confidence")
TRANSITIONS: tuple[tuple[Stage, Stage], ...] = ((Stage.PRE, Stage.END), (Stage.END, Stage.IMPACT))
SENT = (InvitationStatus.OPEN, InvitationStatus.FINISHED, InvitationStatus.CLOSED)
EXPECTED = (BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED, BookingStatus.NO_SHOW)
# Building blocks -------------------------------------------------------------------------------


def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def ratio(numerator: ColumnElement[Any], denominator: ColumnElement[Any]) -> ColumnElement[Any]:
    """numerator / denominator as a float, NULL when the denominator is 0."""
    return cast(numerator, Float) / func.nullif(cast(denominator, Float), 0.0)


def average(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(func.avg(value), Float)


def starts_in(period: Period, zone: ZoneInfo) -> ColumnElement[bool]:
    start, end = period.bounds(zone)
    return and_(SESSION.c.starts_at >= start, SESSION.c.starts_at < end)


def ran_in(period: Period, zone: ZoneInfo) -> ColumnElement[bool]:
    """Sessions of the period that were not cancelled."""
    return and_(starts_in(period, zone), SESSION.c.status != SessionStatus.CANCELLED.value)


def bookings_from() -> FromClause:
    return (
        BOOKING.join(SESSION, SESSION.c.id == BOOKING.c.session_id)
        .join(COURSE, COURSE.c.id == SESSION.c.course_id)
        .join(PERSON, PERSON.c.id == BOOKING.c.delegate_id)
        .outerjoin(AGENCY, AGENCY.c.id == PERSON.c.agency_id)
    )


def invitations_from() -> FromClause:
    return INVITATION.join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id).join(
        SESSION, SESSION.c.id == BOOKING.c.session_id
    )


def answers_joined() -> FromClause:
    """Answers joined to their invitation, booking, session and course."""
    return (
        ANSWER.join(INVITATION, INVITATION.c.id == ANSWER.c.invitation_id)
        .join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id)
        .join(SESSION, SESSION.c.id == BOOKING.c.session_id)
        .join(COURSE, COURSE.c.id == SESSION.c.course_id)
    )


def answers_from(stage: Stage) -> tuple[FromClause, ColumnElement[bool]]:
    """Answers of one stage on the period's bookings, joined to their course."""
    joined = answers_joined()
    condition = and_(
        INVITATION.c.stage == stage.value,
        INVITATION.c.status != InvitationStatus.WITHDRAWN.value,
    )
    return joined, condition


STATUS_COUNTS = {
    "attended": (BookingStatus.ATTENDED,),
    "partly": (BookingStatus.PARTLY_ATTENDED,),
    "no_shows": (BookingStatus.NO_SHOW,),
    "late_cancellations": (BookingStatus.LATE_CANCELLATION,),
    "cancellations": (BookingStatus.CANCELLED,),
    "replaced": (BookingStatus.REPLACED,),
    "unmarked": (BookingStatus.BOOKED,),
}


def attendance_row(group: str, sector: str | None, row: Any) -> AttendanceRow:
    return AttendanceRow(
        group=group,
        sector=sector,
        booked=int(row.booked),
        attended=int(row.attended),
        partly=int(row.partly),
        no_shows=int(row.no_shows),
        late_cancellations=int(row.late_cancellations),
        cancellations=int(row.cancellations),
        replaced=int(row.replaced),
        unmarked=int(row.unmarked),
        charges_pence=int(row.charges_pence),
        no_show_rate=row.no_show_rate,
    )


def outcome_text(outcomes: Any, index: int | None) -> str | None:
    if index is None or not isinstance(outcomes, list) or not 0 <= index < len(outcomes):
        return None
    return str(outcomes[index])


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def humanise(key: str) -> str:
    text = key.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
