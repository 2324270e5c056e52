"""The trainer's report on each session (``Stage.TRAINER``), kept by the tick.

Unlike the delegates' surveys it belongs to a session, not a booking: one invitation per
session (``SurveyInvitation.session_id``), to the session's trainer (``CourseSession.trainer_id``).

- Planned for every scheduled session with a trainer while the policy's ``trainer_report`` is on,
  at the times of ``[policy.stages.trainer]``: by default it opens when the session ends (with
  the delegates' end-of-course evaluation, whether or not the register has been closed, so that
  a forgotten register costs no report), is reminded once two days later and closes after seven
  days. A session imported after its report would have closed gets none.
- While it has not opened it follows its session: new times when the session moves, the new
  trainer when the trainer changes. Once open, its link is out and it stays as it is.
- Withdrawn when its session is cancelled or loses its trainer (or the trainer is erased: an
  erased person is asked nothing); planned again if a trainer comes back before it would have
  closed.
- Its invitation and reminder are the delegates' messages (``survey-invitation``,
  ``survey-reminder`` with ``stage`` "trainer"), by the trainer's channel: email, or Telegram once
  linked. The tick's generic steps open and close it and withdraw its unsent messages once it is
  finished, closed or withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from schedules.bulk_insert import _bulk_insert
from schedules.calendar import next_send_time
from schedules.message_context import FirstQuestions, session_context
from schedules.message_links import link_rows, person_links
from schedules.outbox_rows import queue_message
from schedules.plan_constants import (
    COURSE_TABLE,
    INVITATION,
    INVITATION_TABLE,
    LINK_TABLE,
    LIVE_INVITATION,
    PERSON_TABLE,
    REMINDER,
    SESSION_TABLE,
)
from schedules.policy import Policy
from schedules.reminders import claim_reminder, reminder_base, reminders_due
from schedules.survey_timing import signature, stage_times
from surveys.models import (
    Course,
    CourseSession,
    InvitationStatus,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
    SessionStatus,
    Stage,
    SurveyInvitation,
    utcnow,
)

TRAINER = Stage.TRAINER.value


@dataclass
class TrainerPlan:
    """What one pass of planning did to the trainers' reports."""

    planned: int = 0  # new invitations
    moved: int = 0  # not yet open: new times or a new trainer
    withdrawn: int = 0  # their session cancelled or left without a trainer


@dataclass(frozen=True)
class _NoBooking:
    """A trainer's report has no booking: what its links are recorded with instead."""

    id: int | None = None
    ref: str = ""


def _horizon(policy: Policy) -> timedelta:
    """How long after its end a session may still have a report to plan, under any course's
    policy (a start anchor is earlier than the end, so the end bounds both)."""
    longest = timedelta()
    for each in (policy, *policy.courses.values()):
        stage = each.stage(Stage.TRAINER)
        longest = max(longest, stage.opens_after.longest() + stage.closes_after.longest())
    return longest + timedelta(days=1)


def plan_trainer_reports(
    session: Session, *, now: datetime, policy: Policy, zone: ZoneInfo
) -> TrainerPlan:
    """Plan, move or withdraw each session's report (see the module's docstring)."""
    report = TrainerPlan()
    report.withdrawn = _withdraw(session)
    i, s, c = INVITATION_TABLE.c, SESSION_TABLE.c, COURSE_TABLE.c
    rows = session.execute(
        core_select(
            s.id,
            s.starts_at,
            s.ends_at,
            s.trainer_id,
            c.title,
            i.id.label("invitation_id"),
            i.person_id,
            i.status,
            i.opens_at,
            i.closes_at,
        )
        .select_from(
            SESSION_TABLE.join(COURSE_TABLE, c.id == s.course_id)
            .join(PERSON_TABLE, PERSON_TABLE.c.id == s.trainer_id)
            .outerjoin(INVITATION_TABLE, and_(i.session_id == s.id, i.stage == TRAINER))
        )
        .where(
            s.status == SessionStatus.SCHEDULED.value,
            PERSON_TABLE.c.erased_at.is_(None),  # an erased trainer is asked nothing
            s.ends_at > now - _horizon(policy),
            i.status.is_(None)
            | i.status.in_((InvitationStatus.PLANNED.value, InvitationStatus.WITHDRAWN.value)),
        )
        .order_by(s.id)
    ).all()
    new: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    for row in rows:
        course_policy = policy.for_course(row.title)
        opens_at, closes_at = stage_times(row, course_policy.stage(Stage.TRAINER), zone)
        if closes_at <= now:
            continue
        if row.invitation_id is None:
            if course_policy.trainer_report:
                new.append(
                    {
                        "booking_id": None,
                        "session_id": row.id,
                        "person_id": row.trainer_id,
                        "stage": TRAINER,
                        "opens_at": opens_at,
                        "closes_at": closes_at,
                        "status": InvitationStatus.PLANNED.value,
                        "reminders_sent": 0,
                        "created_at": utcnow(),
                    }
                )
            continue
        current = (row.person_id, row.status, row.opens_at, row.closes_at)
        wanted = (row.trainer_id, InvitationStatus.PLANNED.value, opens_at, closes_at)
        if current != wanted:
            moved.append(
                {
                    "row_id": row.invitation_id,
                    "person_id": row.trainer_id,
                    "status": InvitationStatus.PLANNED.value,
                    "opens_at": opens_at,
                    "closes_at": closes_at,
                    "reminders_sent": 0,
                }
            )
    if new:
        report.planned = _bulk_insert(session, INVITATION_TABLE, new, ["session_id", "stage"], [])
    if moved:
        # Only an invitation still planned or withdrawn (never sent as it is now) is changed.
        session.execute(
            update(INVITATION_TABLE).where(
                i.id == bindparam("row_id"),
                (i.status == InvitationStatus.PLANNED.value)
                | (i.status == InvitationStatus.WITHDRAWN.value),
            ),
            moved,
        )
        report.moved = len(moved)
    return report


def _withdraw(session: Session) -> int:
    """The live reports of sessions cancelled, or left without a trainer (or with one whose
    personal data was erased)."""
    i, s = INVITATION_TABLE.c, SESSION_TABLE.c
    erased = core_select(PERSON_TABLE.c.id).where(PERSON_TABLE.c.erased_at.is_not(None))
    gone = core_select(s.id).where(
        (s.status == SessionStatus.CANCELLED.value)
        | s.trainer_id.is_(None)
        | s.trainer_id.in_(erased)
    )
    result = session.execute(
        update(INVITATION_TABLE)
        .where(
            i.stage == TRAINER,
            i.status.in_([status.value for status in LIVE_INVITATION]),
            i.finished_at.is_(None),
            i.session_id.in_(gone),
        )
        .values(status=InvitationStatus.WITHDRAWN.value)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- messages -----------------------------------------------------------------------------------


def queue_trainer_messages(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    definitions_dir: Path | None = None,
    telegram: bool = True,
) -> tuple[int, int]:
    """Queue each open report's invitation, and its due reminder; returns (invitations,
    reminders). As for the delegates' surveys: the reminder counts from when the invitation
    went out, is claimed before it is queued, and nothing is queued that would arrive after the
    report closes."""
    rows = session.exec(
        select(SurveyInvitation, CourseSession, Course)
        .join(CourseSession, col(CourseSession.id) == col(SurveyInvitation.session_id))
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .where(
            col(SurveyInvitation.stage) == Stage.TRAINER,
            col(SurveyInvitation.status) == InvitationStatus.OPEN,
            col(SurveyInvitation.finished_at).is_(None),
            col(SurveyInvitation.closes_at) > now,
            col(CourseSession.status) == SessionStatus.SCHEDULED,
        )
        .order_by(col(SurveyInvitation.id))
    ).all()
    if not rows:
        return 0, 0
    # Sent to the report's trainer as it is now: a report passed to a new trainer is
    # theirs to be invited to, and reminded from when their own invitation went.
    sent = dict(
        session.exec(
            select(OutboxMessage.invitation_id, func.min(OutboxMessage.sent_at))
            .join(SurveyInvitation, col(SurveyInvitation.id) == col(OutboxMessage.invitation_id))
            .where(
                col(OutboxMessage.invitation_id).in_([row[0].id for row in rows]),
                col(OutboxMessage.person_id) == col(SurveyInvitation.person_id),
                OutboxMessage.template == INVITATION,
                OutboxMessage.state != OutboxState.WITHDRAWN,
            )
            .group_by(col(OutboxMessage.invitation_id))
        ).all()
    )
    messages = _Messages(session, secret, FirstQuestions(definitions_dir), telegram)
    invitations = reminders = 0
    for invitation, course_session, course in rows:
        course_policy = policy.for_course(course.title)
        due_at = next_send_time(now, course_policy, zone)
        if due_at >= invitation.closes_at:
            continue
        if invitation.id not in sent:
            invitations += messages.queue(
                invitation,
                course_session,
                course,
                key=f"inv:{invitation.id}:open:p{invitation.person_id}:{signature(course_session)}",
                template=INVITATION,
                kind=MessageKind.INVITATION,
                due_at=due_at,
            )
            continue
        sent_at = sent[invitation.id]
        stage = course_policy.stage(Stage.TRAINER)
        if sent_at is None or invitation.reminders_sent >= len(stage.reminder_offsets()):
            continue  # not gone out yet (waiting for the window), or reminded already
        base = reminder_base(stage, course_session, sent_at, zone)
        due_count = reminders_due(stage, base, now, zone)
        if due_count <= invitation.reminders_sent or not claim_reminder(
            session, invitation, due_count, now
        ):
            continue
        reminders += messages.queue(
            invitation,
            course_session,
            course,
            key=(
                f"inv:{invitation.id}:reminder:{due_count}:p{invitation.person_id}:"
                f"{signature(course_session)}"
            ),
            template=REMINDER,
            kind=MessageKind.REMINDER,
            due_at=due_at,
            extra={"reminder_number": due_count, "reminders_total": len(stage.reminder_offsets())},
        )
    return invitations, reminders


class _Messages:
    """Queues a report's invitation or reminder to its trainer, with its links recorded."""

    def __init__(
        self, session: Session, secret: bytes, questions: FirstQuestions, telegram: bool
    ) -> None:
        self.session = session
        self.secret = secret
        self.questions = questions
        self.telegram = telegram

    def queue(
        self,
        invitation: SurveyInvitation,
        course_session: CourseSession,
        course: Course,
        *,
        key: str,
        template: str,
        kind: MessageKind,
        due_at: datetime,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        trainer = self.session.get(Person, invitation.person_id)
        assert trainer is not None
        links = {"survey": [LinkPurpose.SURVEY.value, f"invitation:{invitation.id}"]}
        links.update(person_links(trainer, self.telegram))
        context: dict[str, Any] = {
            **session_context(course_session, course),
            "stage": TRAINER,
            "opens_at": invitation.opens_at.isoformat(),
            "closes_at": invitation.closes_at.isoformat(),
            "delegate_name": trainer.name,  # the person the survey is about: the trainer
            "first_question": self.questions.preview(Stage.TRAINER, course, trainer.name),
            "links": links,
            **(extra or {}),
        }
        rows = link_rows(
            self.secret,
            links,
            person=trainer,
            booking=_NoBooking(),
            invitation=invitation,
            starts_at=course_session.starts_at,
            created_at=utcnow(),
        )
        _bulk_insert(self.session, LINK_TABLE, rows, "token_hash", ["expires_at"])
        return queue_message(
            self.session,
            key=key,
            person=trainer,
            template=template,
            context=context,
            due_at=due_at,
            kind=kind,
            booking_id=None,
            invitation_id=invitation.id,
        )
