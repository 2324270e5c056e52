"""Closing the register: every booking marked (or the rest given one mark), then closed once."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col

from schedules.cancellation import facts
from schedules.marking import mark
from schedules.policy import Policy, default_policy
from schedules.register import (
    LONDON,
    MARKS,
    AttendanceError,
    _course_policy,
    register_bookings,
    register_opens_at,
    unmarked,
)
from surveys import audit
from surveys.models import Booking, BookingStatus, CourseSession, SessionStatus


def close_register(
    session: Session,
    course_session: CourseSession,
    *,
    now: datetime,
    actor: str,
    policy: Policy | None = None,
    zone: ZoneInfo = LONDON,
    rest: BookingStatus | None = None,
) -> bool:
    """Close the register; False if it was already closed. Raises ``AttendanceError``.

    Every booking must be marked first, unless ``rest`` gives the mark for those still unmarked
    (a trainer's "everyone else was a no-show"). The no-show notices follow on the next tick.
    """
    policy = _course_policy(session, course_session, policy or default_policy())
    if course_session.register_closed_at is not None:
        return False
    if course_session.status == SessionStatus.CANCELLED:
        raise AttendanceError(f"Session {course_session.ref} was cancelled, so it has no register.")
    opens = register_opens_at(course_session, policy)
    if now < opens:
        raise AttendanceError(
            f"The register for {course_session.ref} cannot be closed before it opens "
            f"({opens.astimezone(zone):%H:%M on %A %-d %B %Y})."
        )
    waiting = unmarked(session, course_session)
    if waiting and rest is None:
        names = ", ".join(
            f"{booking.ref} ({_delegate_name(session, booking)})" for booking in waiting
        )
        raise AttendanceError(
            f"The register for {course_session.ref} cannot be closed: {len(waiting)} "
            f"still to mark: {names}. Mark them attended, partly attended or no-show first."
        )
    for booking in waiting:
        mark(session, booking, rest or BookingStatus.NO_SHOW, now=now, actor=actor, policy=policy)
    result = session.execute(
        update(CourseSession)
        .where(
            col(CourseSession.id) == course_session.id,
            col(CourseSession.register_closed_at).is_(None),
        )
        .values(register_closed_at=now, register_closed_by=actor, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.refresh(course_session)
        return False
    session.refresh(course_session)
    counts = {value.value: 0 for value in MARKS}
    for booking in register_bookings(session, course_session):
        counts[str(booking.status)] = counts.get(str(booking.status), 0) + 1
    audit.record(
        session,
        at=now,
        actor=actor,
        action="register.closed",
        entity="course_session",
        entity_id=course_session.id,
        session_ref=course_session.ref,
        marks=counts,
    )
    return True


def _delegate_name(session: Session, booking: Booking) -> str:
    return facts(session, booking).delegate.name
