"""The cancellation policy: in time, late (a colleague may take the place), or refused.

Before the cut-off (``schedules.calendar.cancellation_cutoff``) a booking is simply cancelled: its
unsent messages are withdrawn, the admin hears that a place is free and the delegate gets a
confirmation; while someone is on the session's waiting list, the place goes to them instead
(``schedules.waitlist``). After it, the cancellation is late: the approving manager is asked to
nominate a colleague from the same agency, whose booking replaces the original with no charge;
when no one has been nominated by the start, the policy's charge (if any) is recorded against the
booking (both in ``schedules.nomination``).

Every function takes ``now`` and writes through the caller's session; the caller commits. A booking
changes status with a conditional UPDATE, so two clicks (or two processes) cancel it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

# Facts about a booking, and nominating a replacement, live in modules of their own; their names
# are kept here too, where callers have always found them.
from schedules.booking_facts import BookingFacts as BookingFacts
from schedules.booking_facts import booking_link as booking_link
from schedules.booking_facts import booking_subject as booking_subject
from schedules.booking_facts import cancel_link as cancel_link
from schedules.booking_facts import charge_for as charge_for
from schedules.booking_facts import describe_cutoff as describe_cutoff
from schedules.booking_facts import facts as facts
from schedules.booking_facts import format_pence as format_pence
from schedules.booking_facts import withdraw_booking_messages as withdraw_booking_messages
from schedules.calendar import cancellation_cutoff
from schedules.nomination import NominationError as NominationError
from schedules.nomination import nominate_replacement as nominate_replacement
from schedules.nomination import nomination_problem as nomination_problem
from schedules.nomination import (
    record_late_cancellation_charges as record_late_cancellation_charges,
)
from schedules.planning import day_length as day_length
from schedules.planning import (
    offer_telegram,
)
from schedules.policy import Policy
from schedules.waitlist import release_place
from surveys import audit, outbox
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    CourseSession,
    LinkPurpose,
    MessageKind,
    Person,
    SessionStatus,
)
from surveys.text import clean_text

log = logging.getLogger(__name__)

# -- What cancelling now would do ----------------------------------------------------------------


class CancelStatus(StrEnum):
    CANCELLED = "cancelled"
    LATE = "late cancellation"
    REFUSED = "refused"


@dataclass(frozen=True)
class CancelTerms:
    """What cancelling at ``now`` would do, for the Cancel page and for ``cancel_booking``."""

    status: CancelStatus
    cutoff: datetime
    cutoff_text: str  # "2 working days before the course"
    charge_pence: int
    refusal: str | None  # why it cannot be cancelled, when status is REFUSED

    @property
    def charge(self) -> str | None:
        return format_pence(self.charge_pence) if self.charge_pence else None

    def consequence(self) -> str:
        """One sentence for the person: what will happen if they cancel now."""
        if self.refusal is not None:
            return self.refusal
        if self.status is CancelStatus.CANCELLED:
            return (
                "You are cancelling in time: your place will be released for someone else "
                "and there is no charge."
            )
        tail = (
            f" If no one takes your place, your agency will be charged {self.charge}."
            if self.charge
            else ""
        )
        return (
            f"This is a late cancellation (the cut-off is {self.cutoff_text}): your line manager "
            "will be asked to nominate a colleague from your agency to take your place, "
            f"with no charge.{tail}"
        )


def cancellation_terms(
    session: Session, booking: Booking, *, now: datetime, policy: Policy, zone: ZoneInfo
) -> CancelTerms:
    """Whether ``booking`` can be cancelled at ``now``, and whether that would be late."""
    found = facts(session, booking)
    own = policy.for_course(found.course.title)
    cutoff = cancellation_cutoff(found.course_session.starts_at, own, zone)
    refusal = _refusal(found, now, zone)
    if refusal is not None:
        status = CancelStatus.REFUSED
    elif now < cutoff:
        status = CancelStatus.CANCELLED
    else:
        status = CancelStatus.LATE
    return CancelTerms(
        status=status,
        cutoff=cutoff,
        cutoff_text=describe_cutoff(own),
        charge_pence=charge_for(policy, found.course),
        refusal=refusal,
    )


def _local(at: datetime | None, zone: ZoneInfo) -> str:
    if at is None:
        return "earlier"
    return at.astimezone(zone).strftime("%A %-d %B %Y at %H:%M")


def _refusal(found: BookingFacts, now: datetime, zone: ZoneInfo) -> str | None:
    booking, course_session = found.booking, found.course_session
    ref = booking.ref
    if course_session.status == SessionStatus.CANCELLED:
        return f"Booking {ref} cannot be cancelled: the session itself has been cancelled."
    status = BookingStatus(booking.status)
    if status is BookingStatus.CANCELLED:
        when = _local(booking.cancelled_at, zone)
        return f"Booking {ref} was already cancelled on {when}."
    if status is BookingStatus.LATE_CANCELLATION:
        when = _local(booking.cancelled_at, zone)
        return f"Booking {ref} was already cancelled (late) on {when}."
    if status is BookingStatus.REPLACED:
        return f"Booking {ref} has already been passed to a colleague, so it cannot be cancelled."
    if status in (BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED, BookingStatus.NO_SHOW):
        return (
            f"Booking {ref} cannot be cancelled: the register already shows it as {status.value}."
        )
    if now >= course_session.starts_at:
        return (
            f"Booking {ref} cannot be cancelled: the course started on "
            f"{_local(course_session.starts_at, zone)}. If you could not attend, please tell "
            "the training team."
        )
    return None


# -- Cancelling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelOutcome:
    """What ``cancel_booking`` did: ``status``, and ``message``, a sentence for the person."""

    status: CancelStatus
    message: str
    booking: Booking
    withdrawn: int = 0  # unsent messages withdrawn
    told: list[str] = field(default_factory=list)  # who was sent a notice, for the CLI


def cancel_booking(
    session: Session,
    booking: Booking,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    actor: str,
    reason: str | None = None,
    admin_email: str | None = None,
) -> CancelOutcome:
    """Cancel ``booking`` under the policy: in time, late, or refused (nothing changes then).

    ``admin_email`` is where "a place is free" goes (``settings.admin_email``); without it the
    free place is logged and recorded in the audit log instead.
    """
    terms = cancellation_terms(session, booking, now=now, policy=policy, zone=zone)
    if terms.status is CancelStatus.REFUSED:
        return CancelOutcome(CancelStatus.REFUSED, terms.consequence(), booking)
    new_status = (
        BookingStatus.CANCELLED
        if terms.status is CancelStatus.CANCELLED
        else BookingStatus.LATE_CANCELLATION
    )
    reason = clean_text(reason or "") or None
    if not _claim(session, booking, BookingStatus.BOOKED, new_status, now, reason):
        session.refresh(booking)
        return CancelOutcome(CancelStatus.REFUSED, _already_changed(booking), booking)
    found = facts(session, booking)
    withdrawn = withdraw_booking_messages(session, booking, f"booking {new_status.value}")
    audit.record(
        session,
        at=now,
        actor=actor,
        action="booking.cancelled" if new_status is BookingStatus.CANCELLED else "booking.late",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        session_ref=found.course_session.ref,
        reason=reason,
        cutoff=terms.cutoff.isoformat(),
        withdrawn=withdrawn,
    )
    if new_status is BookingStatus.CANCELLED:
        if release_place(
            session,
            booking,
            found.course_session,
            found.course,
            reason="cancelled",
            now=now,
            policy=policy,
            zone=zone,
        ):
            # Someone is waiting: the tick offers them the place; the coordinator hears only
            # if nobody on the list takes it.
            told = _confirm_cancellation(session, found, now=now, late=False, charge=None)
            told.append("the waiting list (the place is offered to the first in line)")
        else:
            told = _in_time_notices(session, found, now=now, actor=actor, admin_email=admin_email)
        message = (
            f"Booking {booking.ref} for {found.course.title} is cancelled. The place has been "
            "released and there is no charge."
        )
    else:
        told = _late_notices(session, found, terms, now=now, actor=actor, secret=secret)
        message = _late_message(found, terms)
    return CancelOutcome(terms.status, message, booking, withdrawn=withdrawn, told=told)


def _claim(
    session: Session,
    booking: Booking,
    expected: BookingStatus,
    new: BookingStatus,
    now: datetime,
    reason: str | None,
) -> bool:
    """Move the booking from ``expected`` to ``new`` unless someone else changed it first."""
    result = session.execute(
        update(Booking)
        .where(col(Booking.id) == booking.id, col(Booking.status) == expected)
        .values(
            status=new,
            status_changed_at=now,
            cancelled_at=now,
            cancel_reason=reason,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    session.refresh(booking)
    return True


def _already_changed(booking: Booking) -> str:
    return (
        f"Booking {booking.ref} was changed a moment ago (it is now {booking.status}); "
        "nothing more was done."
    )


def _confirm_cancellation(
    session: Session,
    found: BookingFacts,
    *,
    now: datetime,
    late: bool,
    charge: str | None,
    **details: Any,
) -> list[str]:
    """Queue the delegate's ``cancellation-confirmed``, in time or late (``details`` adds to its
    context); returns who was told, for ``CancelOutcome.told``."""
    booking = found.booking
    context = found.context() | {
        "late": late,
        "charge": charge,
        "cancel_reason": booking.cancel_reason,
        **details,
    }
    queued = outbox.enqueue(
        session,
        key=f"cancellation-confirmed:{booking.id}",
        person=found.delegate,
        template="cancellation-confirmed",
        context=context,
        due_at=now,
        kind=MessageKind.NOTICE,
        booking_id=booking.id,
    )
    return [f"{found.delegate.name} (confirmation)"] if queued else []


def _in_time_notices(
    session: Session, found: BookingFacts, *, now: datetime, actor: str, admin_email: str | None
) -> list[str]:
    booking = found.booking
    told = _confirm_cancellation(session, found, now=now, late=False, charge=None)
    free = {
        **found.context(),
        "recipient_name": "Training coordinator",
        "agency_name": _agency_name(session, found.delegate),
        "places_left": _free_places(session, found.course_session),
        "max_places": found.course_session.max_places,
    }
    if admin_email:
        admin = Person(name="Training coordinator", email=admin_email.strip().lower())
        # Not stored: the admin is an address in the settings, not a person in the bookings.
        queued = outbox.enqueue(
            session,
            key=f"place-free:{booking.id}",
            person=admin,
            template="place-free",
            context=free,
            due_at=now,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
        if queued is not None:
            told.append(f"the admin at {admin.email} (a place is free)")
    else:
        log.warning(
            "A place is free on %s (booking %s cancelled), but EVALBOT_ADMIN_EMAIL is not set, "
            "so no one was emailed.",
            found.course_session.ref,
            booking.ref,
        )
        audit.record(
            session,
            at=now,
            actor=actor,
            action="place.free.unsent",
            entity="booking",
            entity_id=booking.id,
            booking=booking.ref,
            session_ref=found.course_session.ref,
            why="no admin email is set (EVALBOT_ADMIN_EMAIL)",
        )
        told.append("no admin (EVALBOT_ADMIN_EMAIL is not set; recorded in the audit log)")
    return told


def _late_notices(
    session: Session,
    found: BookingFacts,
    terms: CancelTerms,
    *,
    now: datetime,
    actor: str,
    secret: bytes,
) -> list[str]:
    booking = found.booking
    told = _confirm_cancellation(
        session,
        found,
        now=now,
        late=True,
        charge=terms.charge,
        manager_name=found.manager.name if found.manager else None,
    )
    if found.manager is None:
        log.warning("Booking %s was cancelled late and has no approving manager.", booking.ref)
        audit.record(
            session,
            at=now,
            actor=actor,
            action="nominate.unsent",
            entity="booking",
            entity_id=booking.id,
            booking=booking.ref,
            why="no approving manager is recorded for the booking",
        )
        told.append("no manager (none is recorded for this booking)")
        return told
    nominate = booking_link(
        session,
        secret,
        LinkPurpose.NOMINATE,
        booking,
        person_id=found.manager.id,
        expires_at=found.course_session.starts_at,
    )
    request = found.context() | {
        "charge": terms.charge,
        "cutoff_text": terms.cutoff_text,
        "agency_name": _agency_name(session, found.delegate),
        "cancel_reason": booking.cancel_reason,
        "links": {"nominate": nominate, **offer_telegram(session, secret, found.manager)},
    }
    if outbox.enqueue(
        session,
        key=f"nominate-request:{booking.id}",
        person=found.manager,
        template="nominate-request",
        context=request,
        due_at=now,
        kind=MessageKind.NOTICE,
        booking_id=booking.id,
    ):
        told.append(f"{found.manager.name} (asked to nominate a replacement)")
    return told


def _late_message(found: BookingFacts, terms: CancelTerms) -> str:
    ref = found.booking.ref
    head = (
        f"Booking {ref} for {found.course.title} is cancelled late "
        f"(after the cut-off, {terms.cutoff_text})."
    )
    if found.manager is None:
        return (
            f"{head} No approving manager is on record, so please ask the training team "
            "about a replacement."
        )
    tail = (
        f" If no one takes the place, a charge of {terms.charge} applies." if terms.charge else ""
    )
    return (
        f"{head} {found.manager.name} has been asked to nominate a colleague to take the place, "
        f"with no charge.{tail}"
    )


def _agency_name(session: Session, person: Person) -> str:
    agency = session.get(Agency, person.agency_id) if person.agency_id else None
    return agency.name if agency else ""


def _free_places(session: Session, course_session: CourseSession) -> int | None:
    if course_session.max_places is None:
        return None
    taken = session.exec(
        select(Booking.id).where(
            Booking.session_id == course_session.id,
            col(Booking.status).in_([BookingStatus.BOOKED]),
        )
    ).all()
    return max(course_session.max_places - len(taken), 0)
