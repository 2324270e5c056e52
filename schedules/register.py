"""The register itself: which bookings are on it, when it opens, and the error marking raises."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from schedules.policy import Policy
from surveys.models import Booking, BookingStatus, Course, CourseSession, SessionStatus

MARKS = (BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED, BookingStatus.NO_SHOW)
# Bookings that belong on the register: still booked, or already marked.
ON_REGISTER = (BookingStatus.BOOKED, *MARKS)
LONDON = ZoneInfo("Europe/London")


class AttendanceError(ValueError):
    """A mark or a closing that cannot be made; the message says why, for the person."""


def register_opens_at(course_session: CourseSession, policy: Policy) -> datetime:
    return (-policy.register_opens_before).after(course_session.starts_at)


def register_is_open(course_session: CourseSession, now: datetime, policy: Policy) -> bool:
    """Whether the trainer can mark the register at ``now``: opened, and not closed yet."""
    return (
        course_session.status == SessionStatus.SCHEDULED
        and course_session.register_closed_at is None
        and now >= register_opens_at(course_session, policy)
    )


def register_bookings(session: Session, course_session: CourseSession) -> list[Booking]:
    """The bookings on a session's register, by reference."""
    return list(
        session.exec(
            select(Booking)
            .where(
                Booking.session_id == course_session.id,
                col(Booking.status).in_(ON_REGISTER),
            )
            .order_by(col(Booking.ref))
        ).all()
    )


def unmarked(session: Session, course_session: CourseSession) -> list[Booking]:
    return [
        booking
        for booking in register_bookings(session, course_session)
        if booking.status == BookingStatus.BOOKED
    ]


def _course_policy(session: Session, course_session: CourseSession, policy: Policy) -> Policy:
    course = session.get(Course, course_session.course_id)
    return policy.for_course(course.title) if course else policy


def bookings_by_ref(session: Session, refs: Iterable[str]) -> dict[str, Booking]:
    """The bookings with these references (those that exist)."""
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    found = session.exec(select(Booking).where(col(Booking.ref).in_(wanted))).all()
    return {booking.ref: booking for booking in found}
