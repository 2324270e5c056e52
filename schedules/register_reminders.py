"""The trainer's register reminder: step 5 of the tick (``schedules.tick``).

A register still open ``register_reminder_after`` the end of its session (24 hours by default)
gets one reminder to the trainer, with the trainer's personal register link
(``schedules.register_links``); a reminder waiting for the sending window is withdrawn once the
register is closed or the session cancelled.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time, shift
from schedules.planning import ACTIVE, OUTBOX_TABLE, UNSENT, stage_times, withdraw_messages
from schedules.policy import Policy
from schedules.register_links import register_link
from surveys import outbox
from surveys.models import (
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    MessageKind,
    Person,
    SessionStatus,
    Stage,
)

REGISTER_REMINDER = "register-reminder"
ON_REGISTER = (*ACTIVE, BookingStatus.NO_SHOW)


def remind_registers(
    session: Session, *, now: datetime, policy: Policy, zone: ZoneInfo, secret: bytes
) -> int:
    """Remind each trainer, once, of a register still open ``register_reminder_after`` the end,
    with the trainer's personal register link (``schedules.register_links``).

    Not for a session whose end-of-course survey has already closed (an old session imported
    late is not a register anyone will mark now). A reminder waiting for the sending window is
    withdrawn if the register closes first.
    """
    _withdraw_register_reminders(session, now)
    rows = session.exec(
        select(CourseSession, Course)
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .where(
            col(CourseSession.status) == SessionStatus.SCHEDULED,
            col(CourseSession.trainer_id).is_not(None),
            col(CourseSession.register_closed_at).is_(None),
            col(CourseSession.register_reminded_at).is_(None),
            col(CourseSession.ends_at) <= now,
        )
    ).all()
    queued = 0
    for course_session, course in rows:
        course_policy = policy.for_course(course.title)
        end_survey = course_policy.stage(Stage.END)
        if shift(course_session.ends_at, course_policy.register_reminder_after, zone) > now:
            continue
        if stage_times(course_session, end_survey, zone)[1] <= now:
            continue
        marks = Counter(
            session.exec(
                select(Booking.status).where(
                    Booking.session_id == course_session.id,
                    col(Booking.status).in_(ON_REGISTER),
                )
            ).all()
        )
        if not marks:
            continue
        claimed = session.execute(
            update(CourseSession)
            .where(
                col(CourseSession.id) == course_session.id,
                col(CourseSession.register_reminded_at).is_(None),
                col(CourseSession.register_closed_at).is_(None),
            )
            .values(register_reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
            continue
        trainer = session.get(Person, course_session.trainer_id)
        assert trainer is not None
        context: dict[str, Any] = {
            "course_title": course.title,
            "session_ref": course_session.ref,
            "session_starts_at": course_session.starts_at.isoformat(),
            "session_ends_at": course_session.ends_at.isoformat(),
            "venue": course_session.venue or "",
            "on_register": sum(marks.values()),
            "unmarked": marks.get(BookingStatus.BOOKED, 0),
            "links": {"register": register_link(session, secret, course_session)},
        }
        message = outbox.enqueue(
            session,
            key=f"session:{course_session.id}:register-reminder",
            person=trainer,
            template=REGISTER_REMINDER,
            context=context,
            due_at=next_send_time(now, course_policy, zone),
            kind=MessageKind.NOTICE,
        )
        queued += message is not None
    return queued


def _withdraw_register_reminders(session: Session, now: datetime) -> None:
    """A reminder still waiting for the window is withdrawn once its register is closed."""
    closed = session.exec(
        select(CourseSession.id).where(
            col(CourseSession.register_reminded_at) >= now - timedelta(days=30),
            or_(
                col(CourseSession.register_closed_at).is_not(None),
                col(CourseSession.status) == SessionStatus.CANCELLED,
            ),
        )
    ).all()
    keys = [f"session:{session_id}:register-reminder" for session_id in closed]
    waiting = session.execute(
        core_select(OUTBOX_TABLE.c.id).where(
            OUTBOX_TABLE.c.idempotency_key.in_(keys), OUTBOX_TABLE.c.state.in_(UNSENT)
        )
    ).scalars()
    withdraw_messages(session, list(waiting), "the register was closed")
