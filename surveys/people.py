"""A person's data on request: everything Evalbot holds about them, and erasure.

``person_record`` gathers what a subject access request asks for. ``erase_person`` removes what
identifies someone while keeping what the partnership's figures need: their bookings stay (with
their status, so attendance counts still add up) and so do their scored and chosen answers,
which no longer point to anyone; their name, email, role, Telegram chat, free-text answers,
reasons, personal links and the contents of every message to or about them go. Unsent messages
to or about them are withdrawn and their open surveys too, so nothing more is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlmodel import Session, col, select

from surveys import audit
from surveys.models import (
    Agency,
    Answer,
    AuditEntry,
    Booking,
    Channel,
    Course,
    CourseSession,
    InvitationStatus,
    Link,
    OutboxMessage,
    OutboxState,
    Person,
    SurveyInvitation,
    TelegramChat,
)
from surveys.scrub import Traces, scrub_everywhere, scrub_linked

ERASED_NAME = "Erased person"
UNSENT = (OutboxState.PENDING, OutboxState.FAILED)
NOT_ANSWERED = (InvitationStatus.PLANNED, InvitationStatus.OPEN)
# Audit details that hold what a person wrote (a cancellation or no-show reason).
FREE_TEXT_KEYS = {"reason", "note", "text"}


class PersonNotFound(LookupError):
    """No one has that email address."""


def find_person(session: Session, email: str) -> Person:
    person = session.exec(select(Person).where(Person.email == email.strip().lower())).first()
    if person is None:
        raise PersonNotFound(f"no one has the email address {email.strip()!r}")
    return person


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def person_record(session: Session, person: Person) -> dict[str, Any]:
    """Everything held about ``person``, as plain data ready for JSON."""
    agency = session.get(Agency, person.agency_id) if person.agency_id else None
    bookings = session.exec(
        select(Booking, CourseSession, Course)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(or_(col(Booking.delegate_id) == person.id, col(Booking.manager_id) == person.id))
        .order_by(col(CourseSession.starts_at))
    ).all()
    # A booking's surveys, and a trainer's reports on the sessions they ran (no booking).
    invitations = session.exec(
        select(SurveyInvitation, Booking, CourseSession)
        .outerjoin(Booking, col(Booking.id) == SurveyInvitation.booking_id)
        .outerjoin(CourseSession, col(CourseSession.id) == SurveyInvitation.session_id)
        .where(SurveyInvitation.person_id == person.id)
        .order_by(col(SurveyInvitation.opens_at))
    ).all()
    answers: dict[int, list[Answer]] = {}
    ids = [i.id for i, _, _ in invitations if i.id is not None]
    if ids:
        query = select(Answer).where(col(Answer.invitation_id).in_(ids)).order_by(col(Answer.id))
        for answer in session.exec(query).all():
            answers.setdefault(answer.invitation_id, []).append(answer)
    messages = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.person_id == person.id)
        .order_by(col(OutboxMessage.id))
    ).all()
    return {
        "person": {
            "name": person.name,
            "email": person.email,
            "agency": agency.name if agency else None,
            "role": person.role,
            "mobile": person.mobile,
            "competency_group": person.competency_group,
            "telegram_linked": person.telegram_chat_id is not None,
            "preferred_channel": str(person.preferred_channel),
            "email_opt_out": person.email_opt_out,
            "telegram_opt_out": person.telegram_opt_out,
            "created_at": _when(person.created_at),
            "erased_at": _when(person.erased_at),
        },
        "bookings": [
            {
                "ref": booking.ref,
                "as": "delegate" if booking.delegate_id == person.id else "line manager",
                "course": course.title,
                "session": course_session.ref,
                "starts_at": _when(course_session.starts_at),
                "status": str(booking.status),
                "cancelled_at": _when(booking.cancelled_at),
                "cancel_reason": booking.cancel_reason,
                "no_show_reason": booking.no_show_reason,
                "charge_pence": booking.charge_pence,
            }
            for booking, course_session, course in bookings
        ],
        "surveys": [
            {
                "booking": booking.ref if booking is not None else None,
                **({"session": reported.ref} if reported is not None else {}),
                "stage": str(invitation.stage),
                "status": str(invitation.status),
                "opens_at": _when(invitation.opens_at),
                "finished_at": _when(invitation.finished_at),
                "answers": [
                    {
                        "question": answer.question_key,
                        "value": answer.value_text
                        if answer.value_text is not None
                        else answer.value_json
                        if answer.value_json is not None
                        else answer.value_num,
                        "answered_at": _when(answer.answered_at),
                    }
                    for answer in answers.get(invitation.id or 0, [])
                ],
            }
            for invitation, booking, reported in invitations
        ],
        "messages": [
            {
                "template": message.template,
                "channel": str(message.channel),
                "state": str(message.state),
                "due_at": _when(message.due_at),
                "sent_at": _when(message.sent_at),
            }
            for message in messages
        ],
    }


@dataclass
class Erasure:
    """What ``erase_person`` changed, for the admin who asked."""

    people: int = 0
    bookings: int = 0
    answers_cleared: int = 0
    surveys_withdrawn: int = 0
    messages_withdrawn: int = 0
    messages_emptied: int = 0
    links_removed: int = 0
    values_scrubbed: int = 0  # names, emails and free text removed from other columns
    traces: Traces = field(default_factory=Traces)


def erase_person(session: Session, person: Person, *, now: datetime, actor: str) -> Erasure:
    """Erase what identifies ``person`` (see the module's docstring), in the caller's transaction.

    Raises ``ValueError`` for someone already erased.
    """
    return erase_people(session, [person], now=now, actor=actor)


def erase_people(session: Session, people: list[Person], *, now: datetime, actor: str) -> Erasure:
    """Erase each of ``people``, then remove their strings from every table (``surveys.scrub``).

    ``Erasure.traces`` says what was removed, for what lies outside the database (written mail).
    """
    found = Erasure(people=len(people))
    for person in people:
        _gather(session, person, found.traces)
    for person in people:
        _erase(session, person, now=now, actor=actor, found=found)
    session.flush()
    found.values_scrubbed = scrub_linked(session, found.traces)
    found.values_scrubbed += scrub_everywhere(session, found.traces)
    return found


def _gather(session: Session, person: Person, traces: Traces) -> None:
    """Note what identifies ``person``, what they wrote, and the rows linked to them."""
    if person.erased_at is not None:
        raise ValueError(f"this person was already erased on {person.erased_at:%d %B %Y}")
    assert person.id is not None
    traces.person_ids.add(person.id)
    # The chat id too: an audit entry's actor names the chat an admin or trainer worked from.
    traces.add_identity(person.name, person.email, person.mobile, person.telegram_chat_id)
    bookings = session.exec(select(Booking).where(Booking.delegate_id == person.id)).all()
    booking_ids = {b.id for b in bookings if b.id is not None}
    traces.booking_ids |= booking_ids
    for booking in bookings:
        traces.add_private(booking.cancel_reason, booking.no_show_reason)
    invitation_ids = {
        i
        for i in session.exec(
            select(SurveyInvitation.id).where(
                or_(
                    col(SurveyInvitation.person_id) == person.id,
                    col(SurveyInvitation.booking_id).in_(booking_ids),
                )
            )
        ).all()
        if i is not None
    }
    traces.invitation_ids |= invitation_ids
    if invitation_ids:
        traces.add_private(
            *session.exec(
                select(Answer.value_text).where(
                    col(Answer.invitation_id).in_(invitation_ids),
                    col(Answer.value_text).is_not(None),
                )
            ).all()
        )
    messages = session.exec(
        select(OutboxMessage.id, OutboxMessage.message_id).where(
            or_(
                col(OutboxMessage.person_id) == person.id,
                col(OutboxMessage.booking_id).in_(booking_ids),
                col(OutboxMessage.invitation_id).in_(invitation_ids),
            )
        )
    ).all()
    traces.outbox_ids |= {row_id for row_id, _ in messages if row_id is not None}
    traces.message_ids |= {message_id for _, message_id in messages if message_id}
    # Reasons given earlier and since changed live on only in the audit log.
    about = or_(
        (col(AuditEntry.entity) == "person") & (col(AuditEntry.entity_id) == person.id),
        (col(AuditEntry.entity) == "booking") & col(AuditEntry.entity_id).in_(booking_ids),
    )
    for detail in session.exec(select(AuditEntry.detail).where(about)).all():
        traces.add_private(*(v for k, v in detail.items() if k in FREE_TEXT_KEYS))


def _erase(session: Session, person: Person, *, now: datetime, actor: str, found: Erasure) -> None:
    assert person.id is not None
    booking_ids = list(
        session.exec(select(Booking.id).where(Booking.delegate_id == person.id)).all()
    )
    found.bookings += len(booking_ids)
    session.execute(
        update(Booking)
        .where(col(Booking.id).in_(booking_ids))
        .values(cancel_reason=None, no_show_reason=None, updated_at=now)
    )
    invitation_ids = list(
        session.exec(
            select(SurveyInvitation.id).where(
                or_(  # hers, and her line manager's surveys about her
                    col(SurveyInvitation.person_id) == person.id,
                    col(SurveyInvitation.booking_id).in_(booking_ids),
                )
            )
        ).all()
    )
    found.answers_cleared += _count(
        session.execute(
            update(Answer)
            .where(
                col(Answer.invitation_id).in_(invitation_ids), col(Answer.value_text).is_not(None)
            )
            .values(value_text=None)
        )
    )
    found.surveys_withdrawn += _count(
        session.execute(
            update(SurveyInvitation)
            .where(
                col(SurveyInvitation.id).in_(invitation_ids),
                col(SurveyInvitation.status).in_(NOT_ANSWERED),
            )
            .values(status=InvitationStatus.WITHDRAWN)
        )
    )
    about = or_(
        col(OutboxMessage.person_id) == person.id, col(OutboxMessage.booking_id).in_(booking_ids)
    )
    found.messages_withdrawn += _count(
        session.execute(
            update(OutboxMessage)
            .where(about, col(OutboxMessage.state).in_(UNSENT))
            .values(state=OutboxState.WITHDRAWN, last_error="the person was erased")
        )
    )
    # A message being sent this moment keeps what it needs; every other one loses its contents.
    found.messages_emptied += _count(
        session.execute(
            update(OutboxMessage)
            .where(about, col(OutboxMessage.state) != OutboxState.CLAIMED)
            .values(context={}, server_reply=None)
        )
    )
    session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.person_id) == person.id)
        .values(recipient="erased")
    )
    found.links_removed += _count(
        session.execute(
            delete(Link).where(
                or_(col(Link.person_id) == person.id, col(Link.booking_id).in_(booking_ids))
            )
        )
    )
    if person.telegram_chat_id is not None:
        session.execute(
            delete(TelegramChat).where(col(TelegramChat.chat_id) == person.telegram_chat_id)
        )
    person.name = ERASED_NAME
    person.email = f"erased-{person.id}@erased.invalid"
    person.role = None
    person.mobile = None
    person.competency_group = None
    person.telegram_chat_id = None
    person.preferred_channel = Channel.EMAIL
    person.email_opt_out = person.telegram_opt_out = True
    person.email_status_reason = person.telegram_status_reason = None
    person.erased_at = person.updated_at = now
    session.add(person)
    audit.record(
        session, at=now, actor=actor, action="person.erased", entity="person", entity_id=person.id
    )


def inactive_since(session: Session, cutoff: datetime, limit: int | None = None) -> list[Person]:
    """People not yet erased whose every booking (as delegate or line manager) ended before
    ``cutoff`` and who were added before it: those a retention period has run out for."""
    last_as_delegate = select(Booking.delegate_id.label("person_id"), CourseSession.ends_at).join(  # type: ignore[attr-defined]
        CourseSession, col(CourseSession.id) == Booking.session_id
    )
    last_as_manager = (
        select(Booking.manager_id.label("person_id"), CourseSession.ends_at)  # type: ignore[union-attr]
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .where(col(Booking.manager_id).is_not(None))
    )
    both = last_as_delegate.union_all(last_as_manager).subquery()
    recent = select(both.c.person_id).where(both.c.ends_at >= cutoff)
    trainers = select(CourseSession.trainer_id).where(
        col(CourseSession.trainer_id).is_not(None), col(CourseSession.ends_at) >= cutoff
    )
    query = (
        select(Person)
        .where(
            col(Person.erased_at).is_(None),
            col(Person.created_at) < cutoff,
            col(Person.id).not_in(recent),
            col(Person.id).not_in(trainers),
        )
        .order_by(col(Person.id))
        .limit(limit)
    )
    return list(session.exec(query).all())


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
