"""Certificates of attendance.

A delegate marked attended who has finished the end-of-course evaluation gets a certificate: a
page at ``/certificate/<token>`` that prints on one A4 sheet. The partnerships give certificates
only for attending every part of a course, so a partly attended delegate gets none, and is told
why; one who has not finished the evaluation is asked to finish it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.cancellation import booking_subject, facts
from schedules.planning import day_length
from schedules.policy import Policy
from surveys import audit, outbox, tokens
from surveys.models import (
    Booking,
    BookingStatus,
    InvitationStatus,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    Stage,
    SurveyInvitation,
)

TEMPLATE = "certificate-ready"


class CertificateState(StrEnum):
    READY = "ready"
    PARTLY_ATTENDED = "partly attended"
    EVALUATION_UNFINISHED = "evaluation unfinished"
    NOT_ATTENDED = "not attended"
    NOT_MARKED = "not marked"


@dataclass(frozen=True)
class CertificateStatus:
    """Whether a booking has a certificate, what it says, and a sentence for the delegate."""

    state: CertificateState
    message: str
    booking_ref: str
    delegate_name: str
    course_title: str
    starts_at: datetime
    ends_at: datetime
    day_length: str  # "full day" or "half day"
    # The end-of-course evaluation, for the "finish it first" link while it is open.
    evaluation_id: int | None = None
    evaluation_open: bool = False

    @property
    def ready(self) -> bool:
        return self.state is CertificateState.READY

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def duration_text(self) -> str:
        """``"7 hours"``, ``"3 hours 30 minutes"``."""
        hours, minutes = divmod(self.minutes, 60)
        parts = []
        if hours:
            parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
        if minutes or not hours:
            parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
        return " ".join(parts)

    @property
    def evaluation_subject(self) -> str | None:
        """The survey link's subject (``invitation:<id>``) while the evaluation can be finished."""
        if self.evaluation_id is None or not self.evaluation_open:
            return None
        return f"invitation:{self.evaluation_id}"


def certificate_status(session: Session, booking: Booking) -> CertificateStatus:
    """Whether ``booking`` earns a certificate now; reads only."""
    found = facts(session, booking)
    evaluation = session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.booking_id == booking.id, SurveyInvitation.stage == Stage.END
        )
    ).first()
    state, message = _decide(booking, evaluation)
    return CertificateStatus(
        state=state,
        message=message,
        booking_ref=booking.ref,
        delegate_name=found.delegate.name,
        course_title=found.course.title,
        starts_at=found.course_session.starts_at,
        ends_at=found.course_session.ends_at,
        day_length=day_length(found.course),
        evaluation_id=evaluation.id if evaluation else None,
        evaluation_open=evaluation is not None and evaluation.status == InvitationStatus.OPEN,
    )


def _decide(booking: Booking, evaluation: SurveyInvitation | None) -> tuple[CertificateState, str]:
    status = BookingStatus(booking.status)
    if status is BookingStatus.PARTLY_ATTENDED:
        return (
            CertificateState.PARTLY_ATTENDED,
            "The register shows you attended part of the course. Certificates of attendance are "
            "given only for attending every part of a course, so there is no certificate for "
            "this booking. Please ask the training team about the next date to complete it.",
        )
    if status is BookingStatus.BOOKED:
        return (
            CertificateState.NOT_MARKED,
            "Your attendance has not been recorded yet. The certificate is ready once the "
            "trainer has marked the register and you have finished the end-of-course evaluation.",
        )
    if status is not BookingStatus.ATTENDED:
        return (
            CertificateState.NOT_ATTENDED,
            f"There is no certificate for this booking: it is recorded as {status.value}.",
        )
    if evaluation is not None and evaluation.status == InvitationStatus.FINISHED:
        return CertificateState.READY, "Your certificate of attendance is ready."
    if evaluation is not None and evaluation.status == InvitationStatus.OPEN:
        return (
            CertificateState.EVALUATION_UNFINISHED,
            "Please finish the end-of-course evaluation first: your certificate of attendance "
            "is ready as soon as you have.",
        )
    if evaluation is not None and evaluation.status == InvitationStatus.PLANNED:
        return (
            CertificateState.EVALUATION_UNFINISHED,
            "The end-of-course evaluation opens at the end of the course. Your certificate of "
            "attendance is ready as soon as you have finished it.",
        )
    return (
        CertificateState.EVALUATION_UNFINISHED,
        "The certificate of attendance is given once the end-of-course evaluation is finished, "
        "and that evaluation is no longer open. Please contact the training team.",
    )


def certificate_link(session: Session, booking: Booking, *, secret: bytes) -> str:
    """Record the booking's certificate link and return its token (for ``/certificate/<token>``).

    The thank-you page and the bot call this; a message context can name it instead as
    ``links["certificate"] = ["certificate", "booking:<id>"]``.
    """
    return tokens.issue(
        session,
        secret,
        LinkPurpose.CERTIFICATE,
        subject=booking_subject(booking),
        person_id=booking.delegate_id,
        booking_id=booking.id,
    )


def queue_certificate_notices(
    session: Session, *, now: datetime, policy: Policy, zone: ZoneInfo, secret: bytes
) -> int:
    """Tell each attended delegate who has finished the evaluation that a certificate is ready.

    One message per booking (keyed ``certificate-ready:<booking id>``), due in the sending
    window; the tick calls this every pass. Returns how many were queued.
    """
    already = select(OutboxMessage.id).where(
        OutboxMessage.booking_id == Booking.id, OutboxMessage.template == TEMPLATE
    )
    rows = session.exec(
        select(Booking)
        .join(SurveyInvitation, col(SurveyInvitation.booking_id) == Booking.id)
        .where(
            Booking.status == BookingStatus.ATTENDED,
            SurveyInvitation.stage == Stage.END,
            SurveyInvitation.status == InvitationStatus.FINISHED,
            ~already.exists(),
        )
        .order_by(col(Booking.id))
    ).all()
    queued = 0
    for booking in rows:
        found = facts(session, booking)
        status = certificate_status(session, booking)
        certificate_link(session, booking, secret=secret)
        context = found.context() | {
            "duration": status.duration_text,
            "links": {"certificate": [LinkPurpose.CERTIFICATE.value, booking_subject(booking)]},
        }
        message = outbox.enqueue(
            session,
            key=f"{TEMPLATE}:{booking.id}",
            person=found.delegate,
            template=TEMPLATE,
            context=context,
            due_at=next_send_time(now, policy.for_course(found.course.title), zone),
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
        if message is None:
            continue
        audit.record(
            session,
            at=now,
            actor="system",
            action="certificate.sent",
            entity="booking",
            entity_id=booking.id,
            booking=booking.ref,
        )
        queued += 1
    return queued
