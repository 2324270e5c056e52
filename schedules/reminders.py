"""The reminders the tick queues for open surveys: each invitation's due reminder.

Each is claimed with a conditional update of ``reminders_sent`` before anything is queued, so
ticks in two processes send each once. The trainer's register reminder is
``schedules.register_reminders``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time, shift
from schedules.planning import (
    ACTIVE,
    INVITATION,
    REMINDER,
    FirstQuestions,
    queue_survey_message,
    select_open_invitations,
    signature,
    stage_times,
)
from schedules.policy import Policy, StagePolicy
from surveys.models import (
    BookingStatus,
    CourseSession,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
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
        if not claim_reminder(session, invitation, due_count, now):
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


def claim_reminder(
    session: Session, invitation: SurveyInvitation, due_count: int, now: datetime
) -> bool:
    """Take the reminder for this tick, so that two processes never both queue it."""
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
    return int(claimed.rowcount) == 1  # type: ignore[attr-defined]
