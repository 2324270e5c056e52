"""Facts about a booking, shared by the cancellation, attendance and certificate notices: the
booking with its session, course and people, the context every notice about it starts from, and
its personal links (cancel, nominate, reason, certificate)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from schedules.planning import booking_context, charge_pence, withdraw_invitations
from schedules.policy import Policy
from surveys import outbox, tokens
from surveys.models import Booking, Course, CourseSession, LinkPurpose, Person


@dataclass(frozen=True)
class BookingFacts:
    """A booking with the rows every notice about it needs."""

    booking: Booking
    course_session: CourseSession
    course: Course
    delegate: Person
    manager: Person | None

    def context(self) -> dict[str, Any]:
        """The JSON context every booking notice starts from (dates as ISO text)."""
        return booking_context(self.course_session, self.course, self.booking, self.delegate)


def facts(session: Session, booking: Booking) -> BookingFacts:
    course_session = session.get(CourseSession, booking.session_id)
    if course_session is None:
        raise LookupError(
            f"booking {booking.ref} names session {booking.session_id}, which is gone"
        )
    course = session.get(Course, course_session.course_id)
    delegate = session.get(Person, booking.delegate_id)
    if course is None or delegate is None:
        raise LookupError(f"booking {booking.ref} has lost its course or delegate")
    manager = session.get(Person, booking.manager_id) if booking.manager_id else None
    return BookingFacts(booking, course_session, course, delegate, manager)


def charge_for(policy: Policy, course: Course) -> int:
    """The charge in pence for a late cancellation or no-show on this course (0: none)."""
    return charge_pence(policy.for_course(course.title), course)


def format_pence(pence: int) -> str:
    """``7500`` to ``"£75"``, ``7550`` to ``"£75.50"``."""
    pounds, rest = divmod(pence, 100)
    return f"£{pounds:,}" if rest == 0 else f"£{pounds:,}.{rest:02d}"


def describe_cutoff(policy: Policy) -> str:
    """The cut-off as the partnership would say it."""
    if policy.cutoff_hours is not None:
        hours = policy.cutoff_hours
        return f"{hours} hour{'s' if hours != 1 else ''} before the start"
    days = policy.cutoff_working_days
    if days == 0:
        return "the start of the course"
    return f"{days} working day{'s' if days != 1 else ''} before the course"


def booking_subject(booking: Booking) -> str:
    """The subject of a personal link about a booking: cancel, nominate, reason, certificate."""
    return f"booking:{booking.id}"


def booking_link(
    session: Session,
    secret: bytes,
    purpose: LinkPurpose,
    booking: Booking,
    *,
    person_id: int | None,
    expires_at: datetime | None = None,
) -> list[str]:
    """Record a personal link about ``booking`` for ``person_id`` and return it as a ``links``
    entry for a message context (``[purpose, "booking:<id>"]``)."""
    tokens.issue(
        session,
        secret,
        purpose,
        subject=booking_subject(booking),
        person_id=person_id,
        booking_id=booking.id,
        expires_at=expires_at,
    )
    return [purpose.value, booking_subject(booking)]


def withdraw_booking_messages(session: Session, booking: Booking, reason: str) -> int:
    """Withdraw a booking's unsent messages and its surveys not yet finished; returns messages."""
    assert booking.id is not None
    withdrawn = outbox.withdraw(session, booking_id=booking.id, reason=reason)
    withdraw_invitations(session, [booking.id])
    return withdrawn


def cancel_link(session: Session, booking: Booking, *, secret: bytes) -> list[str]:
    """Record the booking's Cancel link and return it as a ``links`` entry for a message context.

    Planning puts it in every pre-course message: ``context["links"]["cancel"] = cancel_link(...)``.
    The link works until the session starts.
    """
    course_session = session.get(CourseSession, booking.session_id)
    assert course_session is not None and booking.id is not None
    return booking_link(
        session,
        secret,
        LinkPurpose.CANCEL,
        booking,
        person_id=booking.delegate_id,
        expires_at=course_session.starts_at,
    )
