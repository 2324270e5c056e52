"""Changes to bookings and sessions that planning takes up on the next tick: a booking to plan
afresh, a session cancelled."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from surveys.models import (
    Booking,
    CourseSession,
    SessionStatus,
)


def request_replan(session: Session, booking: Booking) -> None:
    """Plan this booking afresh on the next tick."""
    booking.planned_version = 0
    session.add(booking)


def cancel_session(
    session: Session, course_session: CourseSession, *, now: datetime, actor: str
) -> None:
    """Cancel a session; the next tick withdraws its messages and tells its people."""
    from surveys.audit import record

    course_session.status = SessionStatus.CANCELLED
    course_session.cancelled_at = now
    course_session.updated_at = now
    session.add(course_session)
    record(
        session,
        at=now,
        actor=actor,
        action="session.cancelled",
        entity="course_session",
        entity_id=course_session.id,
    )
