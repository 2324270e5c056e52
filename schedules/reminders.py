"""Reminders the tick queues: each open survey's due reminder, and the trainer's register reminder.

Both are claimed with a conditional update before anything is queued (``reminders_sent`` on the
invitation, ``register_reminded_at`` on the session), so ticks in two processes send each once.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time, shift
from schedules.planning import (
    ACTIVE,
    INVITATION,
    OUTBOX_TABLE,
    REMINDER,
    UNSENT,
    FirstQuestions,
    queue_survey_message,
    select_open_invitations,
    signature,
    stage_times,
    withdraw_messages,
)
from schedules.policy import Policy, StagePolicy
from surveys import outbox
from surveys.models import (
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    Person,
    SessionStatus,
    Stage,
    SurveyInvitation,
)

REGISTER_REMINDER = "register-reminder"
ON_REGISTER = (*ACTIVE, BookingStatus.NO_SHOW)


def reminder_base(
    stage: StagePolicy, course_session: CourseSession, sent_at: datetime, zone: ZoneInfo
) -> datetime:
    """What a stage's reminder offsets count from: the opening, or the invitation's sending if
    the sending window held it back, so a reminder never arrives with its invitation."""
    opens_at, _ = stage_times(course_session, stage, zone)
    return max(opens_at, sent_at)


def reminders_due(stage: StagePolicy, base: datetime, now: datetime, zone: ZoneInfo) -> int:
    """How many of the stage's reminders (within its cap) have fallen due by ``now``."""
    return sum(1 for offset in stage.reminder_offsets() if shift(base, offset, zone) <= now)


def queue_reminders(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    definitions_dir: Path | None = None,
    telegram: bool = True,
) -> int:
    """Queue the due reminder of each open, unfinished invitation; returns how many.

    After downtime several reminders may have fallen due at once: only the last is sent.
    """
    rows = session.exec(select_open_invitations(now)).all()
    candidates = []
    for invitation, booking, course_session, course in rows:
        stage = policy.for_course(course.title).stage(Stage(invitation.stage))
        offsets = stage.reminder_offsets()
        if invitation.reminders_sent >= len(offsets):
            continue
        opens_at, _ = stage_times(course_session, stage, zone)
        if shift(opens_at, offsets[invitation.reminders_sent], zone) > now:
            continue  # not due even counted from the opening
        candidates.append((invitation, booking, course_session, course, stage))
    if not candidates:
        return 0
    sent = dict(
        session.exec(
            select(OutboxMessage.invitation_id, func.min(OutboxMessage.sent_at))
            .where(
                col(OutboxMessage.invitation_id).in_([row[0].id for row in candidates]),
                OutboxMessage.template == INVITATION,
                col(OutboxMessage.sent_at).is_not(None),
            )
            .group_by(col(OutboxMessage.invitation_id))
        ).all()
    )
    questions = FirstQuestions(definitions_dir)
    queued = 0
    for invitation, booking, course_session, course, stage in candidates:
        sent_at = sent.get(invitation.id)
        if sent_at is None:
            continue  # the invitation itself has not gone out: nothing to remind of
        base = reminder_base(stage, course_session, sent_at, zone)
        due_count = reminders_due(stage, base, now, zone)
        if due_count <= invitation.reminders_sent:
            continue
        claimed = session.execute(
            update(SurveyInvitation)
            .where(
                col(SurveyInvitation.id) == invitation.id,
                col(SurveyInvitation.reminders_sent) == invitation.reminders_sent,
                col(SurveyInvitation.status) == InvitationStatus.OPEN,
            )
            .values(reminders_sent=due_count, last_reminder_at=now)
            .execution_options(synchronize_session=False)
        )
        if int(claimed.rowcount) != 1:  # type: ignore[attr-defined]
            continue
        due_at = next_send_time(now, policy.for_course(course.title), zone)
        if due_at >= invitation.closes_at:
            continue  # the survey closes before the window opens again
        queued += queue_survey_message(
            session,
            secret,
            questions,
            invitation,
            booking,
            course_session,
            course,
            key=f"inv:{invitation.id}:reminder:{due_count}:{signature(course_session)}",
            template=REMINDER,
            kind=MessageKind.REMINDER,
            due_at=due_at,
            telegram=telegram,
            extra={"reminder_number": due_count, "reminders_total": len(stage.reminder_offsets())},
        )
    return queued


def remind_registers(session: Session, *, now: datetime, policy: Policy, zone: ZoneInfo) -> int:
    """Remind each trainer, once, of a register still open ``register_reminder_after`` the end.

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
