"""No-show notices: queued once a register closes, taken back when a mark changes, and reasons.

A no-show without prior notice gets a notice (with a link to give a reason), and so does the
approving manager, with the policy's charge recorded. A notice already sent about a mark that is
later changed is followed by a correction; one still waiting in the outbox is withdrawn instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.cancellation import BookingFacts, booking_link, charge_for, facts, format_pence
from schedules.planning import day_length, offer_telegram
from schedules.policy import Policy
from schedules.register import AttendanceError
from surveys import audit, outbox
from surveys.models import (
    Booking,
    BookingStatus,
    CourseSession,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    SessionStatus,
)
from surveys.text import clean_text

log = logging.getLogger(__name__)

NO_SHOW_TEMPLATES = ("no-show-delegate", "no-show-manager")
# How long the delegate's link to give a reason for a no-show keeps working.
REASON_LINK_LIFE = timedelta(days=90)


def process_closed_registers(
    session: Session, *, now: datetime, policy: Policy, secret: bytes, zone: ZoneInfo
) -> int:
    """Queue the no-show notices of closed registers; returns how many bookings were notified.

    For each booking marked no-show on a closed register, with no prior notice and not notified
    yet: a notice to the delegate (with a link to give a reason) and one to the approving manager,
    due in the sending window; the policy's charge recorded; an audit entry. The tick calls this
    every pass; a booking is claimed with a conditional UPDATE, so it is notified once.
    """
    rows = session.exec(
        select(Booking, CourseSession)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .where(
            Booking.status == BookingStatus.NO_SHOW,
            col(Booking.no_show_notified_at).is_(None),
            col(CourseSession.register_closed_at).is_not(None),
            CourseSession.status == SessionStatus.SCHEDULED,
            or_(
                col(Booking.no_show_reason_at).is_(None),
                col(Booking.no_show_reason_at) > col(CourseSession.register_closed_at),
            ),
        )
        .order_by(col(Booking.id))
    ).all()
    notified = 0
    for booking, _course_session in rows:
        claimed = session.execute(
            update(Booking)
            .where(
                col(Booking.id) == booking.id,
                col(Booking.status) == BookingStatus.NO_SHOW,
                col(Booking.no_show_notified_at).is_(None),
            )
            .values(no_show_notified_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            continue
        session.refresh(booking)
        _notify_no_show(
            session, facts(session, booking), now=now, policy=policy, secret=secret, zone=zone
        )
        notified += 1
    return notified


def _notify_no_show(
    session: Session,
    found: BookingFacts,
    *,
    now: datetime,
    policy: Policy,
    secret: bytes,
    zone: ZoneInfo,
) -> None:
    booking = found.booking
    own = policy.for_course(found.course.title)
    due = next_send_time(now, own, zone)
    amount = charge_for(policy, found.course)
    if amount > 0:
        booking.charge_pence = amount
        booking.charge_note = (
            f"No-show without prior notice at {found.course_session.ref}: "
            f"{day_length(found.course)} charge {format_pence(amount)}"
        )
        session.add(booking)
    round_ = _notice_round(session, booking)
    context = found.context() | {
        "charge": format_pence(amount) if amount else None,
        "manager_name": found.manager.name if found.manager else None,
        "no_show_terms": own.no_show_terms,
    }
    reason = booking_link(
        session,
        secret,
        LinkPurpose.REASON,
        booking,
        person_id=found.delegate.id,
        expires_at=now + REASON_LINK_LIFE,
    )
    outbox.enqueue(
        session,
        key=f"no-show:{booking.id}:{round_}:delegate",
        person=found.delegate,
        template="no-show-delegate",
        context=context | {"links": {"reason": reason}},
        due_at=due,
        kind=MessageKind.NOTICE,
        booking_id=booking.id,
    )
    if found.manager is not None:
        outbox.enqueue(
            session,
            key=f"no-show:{booking.id}:{round_}:manager",
            person=found.manager,
            template="no-show-manager",
            context=context | {"links": offer_telegram(session, secret, found.manager)},
            due_at=due,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
    else:
        log.warning("No-show %s has no approving manager to tell.", booking.ref)
    audit.record(
        session,
        at=now,
        actor="system",
        action="no_show.notified",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        session_ref=found.course_session.ref,
        delegate=found.delegate.email,
        manager=found.manager.email if found.manager else None,
        charge_pence=amount or None,
        due_at=due.isoformat(),
    )


def _notice_round(session: Session, booking: Booking) -> int:
    """0 for a booking's first no-show notices; 1 if those were corrected and it is marked again."""
    earlier = session.exec(
        select(OutboxMessage.id).where(
            OutboxMessage.booking_id == booking.id,
            OutboxMessage.template == "no-show-delegate",
        )
    ).all()
    return len(earlier)


def _take_back_no_show(
    session: Session,
    found: BookingFacts,
    *,
    now: datetime,
    actor: str,
    policy: Policy,
    zone: ZoneInfo,
    prior_notice: bool = False,
) -> tuple[int, int]:
    """A no-show mark changed after its notices were queued (or found to have had prior notice,
    ``prior_notice``): withdraw the notices not sent yet, correct those that were."""
    booking = found.booking
    notices = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.booking_id == booking.id,
            col(OutboxMessage.template).in_(NO_SHOW_TEMPLATES),
            OutboxMessage.state != OutboxState.WITHDRAWN,
        )
    ).all()
    charge = format_pence(booking.charge_pence) if booking.charge_pence else None
    withdrawn = corrections = 0
    due = next_send_time(now, policy.for_course(found.course.title), zone)
    for notice in notices:
        if notice.state in (OutboxState.PENDING, OutboxState.FAILED):
            notice.state = OutboxState.WITHDRAWN
            notice.last_error = f"the no-show mark was changed to {booking.status}"
            session.add(notice)
            withdrawn += 1
            continue
        if notice.state == OutboxState.DEAD:
            continue  # never reached them, so there is nothing to correct
        person = found.manager if notice.template == "no-show-manager" else found.delegate
        if person is None:
            continue
        queued = outbox.enqueue(
            session,
            key=f"{notice.idempotency_key}:correction",
            person=person,
            template="no-show-correction",
            context=found.context()
            | {
                "status": str(booking.status),
                "to_manager": notice.template == "no-show-manager",
                "charge_withdrawn": charge,
                "prior_notice": prior_notice,
            },
            due_at=due,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
        corrections += queued is not None
    if booking.charge_pence is not None:
        booking.charge_pence = None
        booking.charge_note = None
    booking.no_show_notified_at = None
    session.add(booking)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="no_show.corrected",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        status=str(booking.status),
        corrections=corrections,
        withdrawn=withdrawn,
        charge_withdrawn=charge,
        prior_notice=prior_notice,
    )
    return corrections, withdrawn


def record_reason(
    session: Session, booking: Booking, reason: str, *, now: datetime, actor: str
) -> None:
    """Store the delegate's reason for a no-show (from the reason page); audited."""
    reason = clean_text(reason)
    if not reason:
        raise AttendanceError("Please write a reason before sending.")
    if len(reason) > 2000:
        raise AttendanceError("Please keep the reason under 2000 characters.")
    if booking.status != BookingStatus.NO_SHOW:
        raise AttendanceError(
            f"Booking {booking.ref} is no longer recorded as a no-show, so no reason is needed."
        )
    booking.no_show_reason = reason
    booking.no_show_reason_at = now
    booking.updated_at = now
    session.add(booking)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="no_show.reason",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        reason=reason,
    )
