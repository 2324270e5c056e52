"""What the staff console shows, read with a few aggregate queries each.

Read only: every change the console makes goes through the same ``schedules``/``surveys``
function as the CLI. Figures follow the quarterly report's definitions (``surveys.report``):
a survey is *invited* once its invitation has opened (open, finished or closed), *started* once
a first answer came, *finished* when completed; withdrawn invitations are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, case, func, or_, select
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session, SQLModel

from surveys.models import (
    BookingStatus,
    InvitationStatus,
    OutboxState,
    SessionStatus,
    Stage,
)

_TABLES = SQLModel.metadata.tables
SESSION: Table = _TABLES["course_session"]
COURSE: Table = _TABLES["course"]
BOOKING: Table = _TABLES["booking"]
PERSON: Table = _TABLES["person"]
AGENCY: Table = _TABLES["agency"]
INVITATION: Table = _TABLES["survey_invitation"]
OUTBOX: Table = _TABLES["outbox"]

# Bookings that hold a place on a session (as the places campaign counts them).
HOLDING = (
    BookingStatus.BOOKED.value,
    BookingStatus.ATTENDED.value,
    BookingStatus.PARTLY_ATTENDED.value,
    BookingStatus.NO_SHOW.value,
)
INVITED = (
    InvitationStatus.OPEN.value,
    InvitationStatus.FINISHED.value,
    InvitationStatus.CLOSED.value,
)
DELEGATE_STAGES = (Stage.PRE, Stage.END, Stage.IMPACT)


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@dataclass(frozen=True)
class SessionLine:
    id: int
    ref: str
    course: str
    starts_at: datetime
    ends_at: datetime
    venue: str | None
    online: bool
    status: str
    min_places: int | None
    max_places: int | None
    booked: int
    waiting: int
    register_closed: bool

    @property
    def under_minimum(self) -> bool:
        return (
            self.status != SessionStatus.CANCELLED
            and self.min_places is not None
            and self.booked < self.min_places
        )

    @property
    def full(self) -> bool:
        return self.max_places is not None and self.booked >= self.max_places


def _session_lines(session: Session, *conditions: Any, order: Any, limit: int | None) -> Any:
    holding = _count(BOOKING.c.status.in_(HOLDING))
    waiting = _count(BOOKING.c.status == BookingStatus.WAITING.value)
    query = (
        select(
            SESSION.c.id,
            SESSION.c.ref,
            COURSE.c.title,
            SESSION.c.starts_at,
            SESSION.c.ends_at,
            SESSION.c.venue,
            SESSION.c.online,
            SESSION.c.status,
            SESSION.c.min_places,
            SESSION.c.max_places,
            SESSION.c.register_closed_at,
            holding.label("booked"),
            waiting.label("waiting"),
        )
        .select_from(
            SESSION.join(COURSE, COURSE.c.id == SESSION.c.course_id).outerjoin(
                BOOKING, BOOKING.c.session_id == SESSION.c.id
            )
        )
        .where(*conditions)
        .group_by(SESSION.c.id, COURSE.c.title)
        .order_by(*order)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    return [_line(row) for row in rows]


def _line(row: Any) -> SessionLine:
    return SessionLine(
        id=row.id,
        ref=row.ref,
        course=row.title,
        starts_at=_aware(row.starts_at),
        ends_at=_aware(row.ends_at),
        venue=row.venue,
        online=bool(row.online),
        status=row.status,
        min_places=row.min_places,
        max_places=row.max_places,
        booked=int(row.booked),
        waiting=int(row.waiting),
        register_closed=row.register_closed_at is not None,
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def coming_sessions(session: Session, now: datetime, weeks: int = 6) -> list[SessionLine]:
    """Sessions starting from now to ``weeks`` ahead, soonest first, cancelled ones included."""
    return list(
        _session_lines(
            session,
            SESSION.c.starts_at >= now,
            SESSION.c.starts_at < now + timedelta(weeks=weeks),
            order=(SESSION.c.starts_at, SESSION.c.ref),
            limit=200,
        )
    )


@dataclass(frozen=True)
class OpenRegister:
    id: int
    ref: str
    course: str
    ends_at: datetime
    unmarked: int


def open_registers(session: Session, now: datetime, limit: int = 50) -> list[OpenRegister]:
    """Sessions that have ended with their register not closed: the oldest first."""
    unmarked = _count(BOOKING.c.status == BookingStatus.BOOKED.value)
    query = (
        select(SESSION.c.id, SESSION.c.ref, COURSE.c.title, SESSION.c.ends_at, unmarked)
        .select_from(
            SESSION.join(COURSE, COURSE.c.id == SESSION.c.course_id).outerjoin(
                BOOKING, BOOKING.c.session_id == SESSION.c.id
            )
        )
        .where(
            SESSION.c.ends_at < now,
            SESSION.c.register_closed_at.is_(None),
            SESSION.c.status != SessionStatus.CANCELLED.value,
        )
        .group_by(SESSION.c.id, COURSE.c.title)
        .order_by(SESSION.c.ends_at)
        .limit(limit)
    )
    return [
        OpenRegister(row[0], row[1], row[2], _aware(row[3]), int(row[4]))
        for row in session.execute(query)
    ]


@dataclass(frozen=True)
class StageFigures:
    invited: int = 0
    started: int = 0
    finished: int = 0

    @property
    def finished_rate(self) -> float | None:
        return self.finished / self.invited if self.invited else None


@dataclass
class SessionResponses:
    id: int
    ref: str
    course: str
    starts_at: datetime
    stages: dict[str, StageFigures] = field(default_factory=dict)


def _stage_columns() -> list[Any]:
    status = INVITATION.c.status
    invited = status.in_(INVITED)
    return [
        _count(invited).label("invited"),
        _count(
            and_(
                invited,
                or_(
                    INVITATION.c.started_at.is_not(None),
                    status == InvitationStatus.FINISHED.value,
                ),
            )
        ).label("started"),
        _count(status == InvitationStatus.FINISHED.value).label("finished"),
    ]


def recent_responses(
    session: Session, now: datetime, weeks: int = 6, limit: int = 25
) -> list[SessionResponses]:
    """Response figures per stage for the sessions that started in the last ``weeks``."""
    recent = (
        select(SESSION.c.id)
        .where(
            SESSION.c.starts_at < now,
            SESSION.c.starts_at >= now - timedelta(weeks=weeks),
            SESSION.c.status != SessionStatus.CANCELLED.value,
        )
        .order_by(SESSION.c.starts_at.desc())
        .limit(limit)
    )
    ids = [row[0] for row in session.execute(recent)]
    if not ids:
        return []
    found: dict[int, SessionResponses] = {}
    for row in session.execute(
        select(SESSION.c.id, SESSION.c.ref, COURSE.c.title, SESSION.c.starts_at)
        .select_from(SESSION.join(COURSE, COURSE.c.id == SESSION.c.course_id))
        .where(SESSION.c.id.in_(ids))
        .order_by(SESSION.c.starts_at.desc())
    ):
        found[row.id] = SessionResponses(row.id, row.ref, row.title, _aware(row.starts_at))
    query = (
        select(BOOKING.c.session_id, INVITATION.c.stage, *_stage_columns())
        .select_from(INVITATION.join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id))
        .where(
            BOOKING.c.session_id.in_(ids),
            INVITATION.c.status != InvitationStatus.WITHDRAWN.value,
        )
        .group_by(BOOKING.c.session_id, INVITATION.c.stage)
    )
    for row in session.execute(query):
        found[row.session_id].stages[row.stage] = StageFigures(
            int(row.invited), int(row.started), int(row.finished)
        )
    return list(found.values())


@dataclass(frozen=True)
class UndeliveredMessage:
    id: int
    state: str
    channel: str
    recipient: str
    template: str
    attempts: int
    last_error: str | None
    available_at: datetime
    person_id: int | None


def undelivered_counts(session: Session) -> dict[str, int]:
    """How many messages are failed (to be retried) and dead."""
    rows = session.execute(
        select(OUTBOX.c.state, func.count())
        .where(OUTBOX.c.state.in_([OutboxState.FAILED.value, OutboxState.DEAD.value]))
        .group_by(OUTBOX.c.state)
    ).all()
    counts = {OutboxState.FAILED.value: 0, OutboxState.DEAD.value: 0}
    counts.update({state: int(count) for state, count in rows})
    return counts


def undelivered(
    session: Session, state: OutboxState, *, limit: int = 50, offset: int = 0
) -> list[UndeliveredMessage]:
    """Failed or dead messages, the latest first, with the reason each did not go."""
    query = (
        select(
            OUTBOX.c.id,
            OUTBOX.c.state,
            OUTBOX.c.channel,
            OUTBOX.c.recipient,
            OUTBOX.c.template,
            OUTBOX.c.attempts,
            OUTBOX.c.last_error,
            OUTBOX.c.available_at,
            OUTBOX.c.person_id,
        )
        .where(OUTBOX.c.state == state.value)
        .order_by(OUTBOX.c.available_at.desc(), OUTBOX.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        UndeliveredMessage(
            id=row.id,
            state=row.state,
            channel=row.channel,
            recipient=row.recipient,
            template=row.template,
            attempts=int(row.attempts),
            last_error=row.last_error,
            available_at=_aware(row.available_at),
            person_id=row.person_id,
        )
        for row in session.execute(query)
    ]


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
    return list(_session_lines(session, *conditions, order=order, limit=limit + offset))[offset:]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def session_line(session: Session, session_id: int) -> SessionLine | None:
    found = _session_lines(session, SESSION.c.id == session_id, order=(SESSION.c.id,), limit=1)
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
            cancelled_at=_aware(row.cancelled_at) if row.cancelled_at else None,
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


def session_responses(session: Session, session_id: int) -> dict[str, StageFigures]:
    """One session's response figures per stage."""
    query = (
        select(INVITATION.c.stage, *_stage_columns())
        .select_from(INVITATION.join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id))
        .where(
            BOOKING.c.session_id == session_id,
            INVITATION.c.status != InvitationStatus.WITHDRAWN.value,
        )
        .group_by(INVITATION.c.stage)
    )
    return {
        row.stage: StageFigures(int(row.invited), int(row.started), int(row.finished))
        for row in session.execute(query)
    }


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
