"""Sessions as a whole: full ones, under-filled ones, and cancelling one.

- At its maximum: a new booking (imported, never planned) beyond ``max_places`` becomes a
  waiting-list entry before planning would confirm it (``overflow_to_waiting``). Only bookings
  that have never been planned move: a booking once confirmed keeps its place whatever
  ``max_places`` says later, and places held for open offers count as taken.
- Under its minimum: at ``min_places_check`` working days before the start, a session with fewer
  active bookings than ``min_places`` is reported to the coordinator once, with the figures and
  the two ways on: a places campaign, or cancelling the session (``check_under_filled``;
  ``under_filled_sessions`` lists them for the console).
- Cancelling: ``cancel_session`` refuses what cannot be cancelled, then marks the session
  cancelled (``schedules.planning.cancel_session``); the next tick withdraws its messages and
  tells its delegates, their managers and its waiting list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from schedules import planning
from schedules.calendar import working_days_before
from schedules.planning import ACTIVE, session_context
from schedules.policy import Policy
from schedules.waitlist import coordinator, queue_order
from surveys import audit, outbox
from surveys.models import (
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    MessageKind,
    OfferState,
    PlaceOffer,
    SessionStatus,
    SurveyInvitation,
    Vacancy,
)

log = logging.getLogger(__name__)

UNDER_FILLED = "session-under-filled"


# -- A session at its maximum -------------------------------------------------------------------


def overflow_to_waiting(session: Session, *, now: datetime) -> int:
    """New bookings beyond their session's ``max_places`` become waiting-list entries, before
    planning would confirm them; returns how many.

    "New" is imported and never planned (no survey invitation yet): a booking confirmed once is
    never moved to the list. The places taken are the session's planned active bookings and its
    open offers; the new bookings keep what is left in the order of their ``booked_at``.

    A session's first bookings (none of its bookings planned yet) are taken as the export gives
    them: the booking system decided them, and a coordinator may book beyond the maximum on
    purpose. Only requests that arrive once Evalbot has confirmed places are held to it.
    """
    new = session.exec(
        select(Booking, CourseSession)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .where(
            Booking.planned_version == 0,
            Booking.status == BookingStatus.BOOKED,
            col(Booking.replaces_id).is_(None),
            col(CourseSession.max_places).is_not(None),
            CourseSession.status == SessionStatus.SCHEDULED,
            ~select(SurveyInvitation.id).where(SurveyInvitation.booking_id == Booking.id).exists(),
        )
        .order_by(*queue_order())
    ).all()
    by_session: dict[int, list[Booking]] = defaultdict(list)
    sessions: dict[int, CourseSession] = {}
    for booking, course_session in new:
        by_session[course_session.id or 0].append(booking)
        sessions[course_session.id or 0] = course_session
    moved = 0
    for session_id, bookings in by_session.items():
        course_session = sessions[session_id]
        new_ids = [b.id for b in bookings]
        confirmed = session.exec(
            select(func.count())
            .select_from(Booking)
            .where(
                Booking.session_id == session_id,
                col(Booking.status).in_(ACTIVE),
                col(Booking.id).not_in(new_ids),
            )
        ).one()
        held = held_places(session, session_id)
        if confirmed == 0 and held == 0:
            continue  # the session's first bookings: as the booking system gave them
        taken = confirmed + held
        room = max((course_session.max_places or 0) - taken, 0)
        for booking in bookings[room:]:
            result = session.execute(
                update(Booking)
                .where(
                    col(Booking.id) == booking.id,
                    col(Booking.status) == BookingStatus.BOOKED,
                    col(Booking.planned_version) == 0,
                )
                .values(status=BookingStatus.WAITING, status_changed_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if int(result.rowcount) != 1:  # type: ignore[attr-defined]
                continue
            moved += 1
            audit.record(
                session,
                at=now,
                actor="system",
                action="booking.waitlisted",
                entity="booking",
                entity_id=booking.id,
                booking=booking.ref,
                session_ref=course_session.ref,
                why=f"the session is full ({course_session.max_places} places)",
            )
    return moved


def held_places(session: Session, session_id: int) -> int:
    """Places held for an open offer on this session."""
    return session.exec(
        select(func.count())
        .select_from(PlaceOffer)
        .join(Vacancy, col(Vacancy.id) == PlaceOffer.vacancy_id)
        .where(Vacancy.session_id == session_id, PlaceOffer.state == OfferState.OPEN)
    ).one()


# -- Under-filled sessions ------------------------------------------------------------


def check_under_filled(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    admin_email: str | None,
) -> int:
    """At ``min_places_check`` working days before the start, compare each session's bookings
    with its ``min_places`` (once); a session under it is reported to the coordinator with the
    figures. Returns the sessions reported."""
    # Ten working days are at most about three weeks, bank holidays and all.
    horizon = now + timedelta(days=policy_horizon(policy))
    rows = session.exec(
        select(CourseSession, Course)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(
            CourseSession.status == SessionStatus.SCHEDULED,
            col(CourseSession.min_places).is_not(None),
            col(CourseSession.places_checked_at).is_(None),
            col(CourseSession.starts_at) > now,
            col(CourseSession.starts_at) <= horizon,
        )
    ).all()
    reported = 0
    for course_session, course in rows:
        own = policy.for_course(course.title)
        if working_days_before(course_session.starts_at, own.min_places_check, own, zone) > now:
            continue
        claimed = session.execute(
            update(CourseSession)
            .where(
                col(CourseSession.id) == course_session.id,
                col(CourseSession.places_checked_at).is_(None),
            )
            .values(places_checked_at=now)
            .execution_options(synchronize_session=False)
        )
        if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
            continue
        figures = session_figures(session, course_session)
        if figures["booked"] >= (course_session.min_places or 0):
            continue
        reported += 1
        _report_under_filled(
            session, course_session, course, figures, now=now, admin_email=admin_email
        )
    return reported


def policy_horizon(policy: Policy) -> int:
    """Calendar days that surely cover the longest ``min_places_check`` of any course."""
    days = max([policy.min_places_check, *(p.min_places_check for p in policy.courses.values())])
    return days * 2 + 14


def session_figures(session: Session, course_session: CourseSession) -> dict[str, Any]:
    """Booked, waiting, minimum and maximum places of a session."""
    counts = dict(
        session.exec(
            select(Booking.status, func.count())
            .where(Booking.session_id == course_session.id)
            .group_by(col(Booking.status))
        ).all()
    )
    return {
        "booked": sum(counts.get(status, 0) for status in ACTIVE),
        "waiting": counts.get(BookingStatus.WAITING, 0),
        "min_places": course_session.min_places,
        "max_places": course_session.max_places,
    }


def _report_under_filled(
    session: Session,
    course_session: CourseSession,
    course: Course,
    figures: dict[str, Any],
    *,
    now: datetime,
    admin_email: str | None,
) -> None:
    audit.record(
        session,
        at=now,
        actor="system",
        action="session.under_filled",
        entity="course_session",
        entity_id=course_session.id,
        session_ref=course_session.ref,
        told=admin_email or None,
        **figures,
    )
    if not admin_email:
        log.warning(
            "Session %s has %s of at least %s places booked, but EVALBOT_ADMIN_EMAIL is not set, "
            "so no one was emailed.",
            course_session.ref,
            figures["booked"],
            figures["min_places"],
        )
        return
    outbox.enqueue(
        session,
        key=f"session:{course_session.id}:under-filled",
        person=coordinator(admin_email),
        template=UNDER_FILLED,
        context=session_context(course_session, course) | figures,
        due_at=now,
        kind=MessageKind.NOTICE,
    )


@dataclass(frozen=True)
class UnderFilled:
    """A coming session with fewer bookings than its minimum, for the console."""

    session_ref: str
    course_title: str
    starts_at: datetime
    booked: int
    waiting: int
    min_places: int
    max_places: int | None
    reported_at: datetime | None  # when the coordinator was told, if yet


def under_filled_sessions(session: Session, *, now: datetime) -> list[UnderFilled]:
    """Scheduled sessions still to start whose active bookings are under ``min_places``."""
    rows = session.exec(
        select(CourseSession, Course)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(
            CourseSession.status == SessionStatus.SCHEDULED,
            col(CourseSession.min_places).is_not(None),
            col(CourseSession.starts_at) > now,
        )
        .order_by(col(CourseSession.starts_at))
    ).all()
    found = []
    for course_session, course in rows:
        figures = session_figures(session, course_session)
        if figures["booked"] < (course_session.min_places or 0):
            found.append(
                UnderFilled(
                    session_ref=course_session.ref,
                    course_title=course.title,
                    starts_at=course_session.starts_at,
                    booked=figures["booked"],
                    waiting=figures["waiting"],
                    min_places=course_session.min_places or 0,
                    max_places=course_session.max_places,
                    reported_at=course_session.places_checked_at,
                )
            )
    return found


class SessionCancelError(ValueError):
    """A session that cannot be cancelled; the message says why."""


def cancel_session(
    session: Session, session_ref: str, *, now: datetime, actor: str
) -> CourseSession:
    """Cancel the session ``session_ref``: the next tick withdraws its unsent messages and
    surveys and tells its delegates, their managers and everyone on its waiting list. Raises
    ``SessionCancelError`` (nothing changed) for an unknown, cancelled or finished session."""
    course_session = session.exec(
        select(CourseSession).where(CourseSession.ref == session_ref)
    ).first()
    if course_session is None:
        raise SessionCancelError(f"No session has the reference {session_ref!r}.")
    if course_session.status == SessionStatus.CANCELLED:
        raise SessionCancelError(f"Session {session_ref} is already cancelled.")
    if course_session.ends_at <= now:
        raise SessionCancelError(
            f"Session {session_ref} has already taken place, so it cannot be cancelled."
        )
    planning.cancel_session(session, course_session, now=now, actor=actor)
    return course_session
