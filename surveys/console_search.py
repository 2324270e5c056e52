"""Finding things in the staff console: sessions by course, reference or date; a session's
bookings with where each delegate stands; people by name or email address. Read only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlmodel import Session

from surveys.console import (
    AGENCY,
    BOOKING,
    COURSE,
    INVITATION,
    PERSON,
    SESSION,
    SessionLine,
    as_utc,
    session_lines,
)
from surveys.models import BookingStatus, InvitationStatus

# --- the sessions list and a session's page ------------------------------------------------

When = Literal["upcoming", "past", "all"]


def find_sessions(
    session: Session,
    *,
    now: datetime,
    zone: ZoneInfo,
    text: str = "",
    on: date | None = None,
    when: When = "upcoming",
    limit: int = 50,
    offset: int = 0,
) -> list[SessionLine]:
    """Sessions whose course title or reference contains ``text`` (any case), on the local
    date ``on``; upcoming ones soonest first, past ones latest first."""
    conditions: list[Any] = []
    words = text.strip()
    if words:
        pattern = f"%{_escape_like(words.lower())}%"
        conditions.append(
            or_(
                func.lower(COURSE.c.title).like(pattern, escape="\\"),
                func.lower(SESSION.c.ref).like(pattern, escape="\\"),
            )
        )
    if on is not None:
        start = datetime.combine(on, time(0), tzinfo=zone)
        end = datetime.combine(on + timedelta(days=1), time(0), tzinfo=zone)
        conditions += [SESSION.c.starts_at >= start, SESSION.c.starts_at < end]
    if when == "upcoming":
        conditions.append(SESSION.c.ends_at >= now)
        order: tuple[Any, ...] = (SESSION.c.starts_at, SESSION.c.ref)
    elif when == "past":
        conditions.append(SESSION.c.ends_at < now)
        order = (SESSION.c.starts_at.desc(), SESSION.c.ref)
    else:
        order = (SESSION.c.starts_at.desc(), SESSION.c.ref)
    return list(session_lines(session, *conditions, order=order, limit=limit + offset))[offset:]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def session_line(session: Session, session_id: int) -> SessionLine | None:
    found = session_lines(session, SESSION.c.id == session_id, order=(SESSION.c.id,), limit=1)
    return found[0] if found else None


@dataclass
class RosterLine:
    booking_id: int
    booking_ref: str
    status: str
    delegate: str
    email: str
    agency: str | None
    manager: str | None
    cancelled_at: datetime | None
    surveys: dict[str, str] = field(default_factory=dict)  # stage: where the delegate stands

    @property
    def attendance(self) -> str:
        marks = {
            BookingStatus.ATTENDED.value: "Attended",
            BookingStatus.PARTLY_ATTENDED.value: "Partly attended",
            BookingStatus.NO_SHOW.value: "No-show",
            BookingStatus.BOOKED.value: "Not marked",
        }
        return marks.get(self.status, "–")

    @property
    def cancellable(self) -> bool:
        return self.status == BookingStatus.BOOKED.value


SURVEY_STANDING = {
    InvitationStatus.PLANNED.value: "Not open yet",
    InvitationStatus.OPEN.value: "Invited",
    InvitationStatus.FINISHED.value: "Finished",
    InvitationStatus.CLOSED.value: "Closed unanswered",
    InvitationStatus.WITHDRAWN.value: "Withdrawn",
}


def roster(session: Session, session_id: int) -> list[RosterLine]:
    """A session's bookings, with the delegate, agency, manager and each survey's standing."""
    manager = PERSON.alias("manager")
    delegate = PERSON.alias("delegate")
    rows = session.execute(
        select(
            BOOKING.c.id,
            BOOKING.c.ref,
            BOOKING.c.status,
            BOOKING.c.cancelled_at,
            delegate.c.name,
            delegate.c.email,
            AGENCY.c.name.label("agency"),
            manager.c.name.label("manager"),
        )
        .select_from(
            BOOKING.join(delegate, delegate.c.id == BOOKING.c.delegate_id)
            .outerjoin(AGENCY, AGENCY.c.id == delegate.c.agency_id)
            .outerjoin(manager, manager.c.id == BOOKING.c.manager_id)
        )
        .where(BOOKING.c.session_id == session_id)
        .order_by(delegate.c.name, BOOKING.c.ref)
    ).all()
    lines = {
        row.id: RosterLine(
            booking_id=row.id,
            booking_ref=row.ref,
            status=row.status,
            delegate=row.name,
            email=row.email,
            agency=row.agency,
            manager=row.manager,
            cancelled_at=as_utc(row.cancelled_at) if row.cancelled_at else None,
        )
        for row in rows
    }
    if not lines:
        return []
    for booking_id, stage, status, started_at in session.execute(
        select(
            INVITATION.c.booking_id,
            INVITATION.c.stage,
            INVITATION.c.status,
            INVITATION.c.started_at,
        )
        .select_from(INVITATION.join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id))
        .where(BOOKING.c.session_id == session_id)
    ):
        standing = SURVEY_STANDING.get(status, status)
        if status == InvitationStatus.OPEN.value and started_at is not None:
            standing = "Started"
        lines[booking_id].surveys[stage] = standing
    return list(lines.values())


# --- people ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonLine:
    id: int
    name: str
    email: str
    agency: str | None
    bookings: int
    erased: bool


def find_people(session: Session, text: str, limit: int = 50) -> list[PersonLine]:
    """People whose name or email address contains ``text`` (any case), by name."""
    words = text.strip().lower()
    if not words:
        return []
    pattern = f"%{_escape_like(words)}%"
    bookings = (
        select(func.count())
        .select_from(BOOKING)
        .where(BOOKING.c.delegate_id == PERSON.c.id)
        .scalar_subquery()
    )
    query = (
        select(
            PERSON.c.id,
            PERSON.c.name,
            PERSON.c.email,
            AGENCY.c.name.label("agency"),
            bookings.label("bookings"),
            PERSON.c.erased_at,
        )
        .select_from(PERSON.outerjoin(AGENCY, AGENCY.c.id == PERSON.c.agency_id))
        .where(
            or_(
                PERSON.c.email.like(pattern, escape="\\"),
                func.lower(PERSON.c.name).like(pattern, escape="\\"),
            )
        )
        .order_by(PERSON.c.name, PERSON.c.email)
        .limit(limit)
    )
    return [
        PersonLine(
            row.id, row.name, row.email, row.agency, int(row.bookings), row.erased_at is not None
        )
        for row in session.execute(query)
    ]
