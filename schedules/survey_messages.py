"""Survey messages queued when they fall due (by ``schedules.tick``): each open survey's
invitation, and the invitation or reminder of one survey with its links and first question."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from schedules.calendar import next_send_time
from schedules.message_context import (
    FirstQuestions,
    survey_context,
)
from schedules.message_links import (
    issue_links,
)
from schedules.outbox_rows import queue_message
from schedules.plan_constants import (
    ACTIVE,
    INVITATION,
)
from schedules.policy import Policy
from schedules.survey_timing import signature
from surveys.models import (
    Booking,
    Course,
    CourseSession,
    InvitationStatus,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
    SessionStatus,
    SurveyInvitation,
)


def queue_invitation_messages(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    definitions_dir: Path | None = None,
    telegram: bool = True,
) -> int:
    """Queue the ``survey-invitation`` of each open survey that has none yet; returns how many.

    An open survey whose message went out (for these times or earlier ones) has one; so does one
    waiting for the sending window. One whose message was withdrawn because its session moved
    gets a new one, for the new times. A survey that would close before the window opens again
    gets none.
    """
    has_message = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.invitation_id == SurveyInvitation.id,
            OutboxMessage.template == INVITATION,
            OutboxMessage.state != OutboxState.WITHDRAWN,
        )
        .exists()
    )
    rows = session.exec(
        select_open_invitations(now).where(~has_message).order_by(col(SurveyInvitation.id))
    ).all()
    questions = FirstQuestions(definitions_dir)
    queued = 0
    for invitation, booking, course_session, course in rows:
        due_at = next_send_time(now, policy.for_course(course.title), zone)
        if due_at >= invitation.closes_at:
            continue
        queued += queue_survey_message(
            session,
            secret,
            questions,
            invitation,
            booking,
            course_session,
            course,
            key=f"inv:{invitation.id}:open:{signature(course_session)}",
            template=INVITATION,
            kind=MessageKind.INVITATION,
            due_at=due_at,
            telegram=telegram,
        )
    return queued


def select_open_invitations(
    now: datetime,
) -> Select[SurveyInvitation, Booking, CourseSession, Course]:
    """Invitations open at ``now`` and unfinished, of active bookings on scheduled sessions,
    each with its booking, session and course: those that may be sent a message."""
    return (
        select(SurveyInvitation, Booking, CourseSession, Course)
        .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .where(
            col(SurveyInvitation.status) == InvitationStatus.OPEN,
            col(SurveyInvitation.finished_at).is_(None),
            col(SurveyInvitation.closes_at) > now,
            col(Booking.status).in_(ACTIVE),
            col(CourseSession.status) == SessionStatus.SCHEDULED,
        )
    )


def queue_survey_message(
    session: Session,
    secret: bytes,
    questions: FirstQuestions,
    invitation: SurveyInvitation,
    booking: Booking,
    course_session: CourseSession,
    course: Course,
    *,
    key: str,
    template: str,
    kind: MessageKind,
    due_at: datetime,
    telegram: bool,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Queue a ``survey-invitation`` or ``survey-reminder`` to the invitation's person, its
    links recorded; ``extra`` adds to the context. True if this call queued it."""
    recipient = session.get(Person, invitation.person_id)
    delegate = session.get(Person, booking.delegate_id)
    assert recipient is not None and delegate is not None
    context = survey_context(
        invitation,
        booking,
        course_session,
        course,
        recipient,
        delegate,
        questions,
        telegram=telegram,
    )
    context.update(extra or {})
    issue_links(
        session,
        secret,
        context["links"],
        person=recipient,
        booking=booking,
        invitation=invitation,
        starts_at=course_session.starts_at,
    )
    return queue_message(
        session,
        key=key,
        person=recipient,
        template=template,
        context=context,
        due_at=due_at,
        kind=kind,
        booking_id=booking.id,
        invitation_id=invitation.id,
    )
