"""The cancellation policy: in time, late (a colleague may take the place), or refused.

Before the cut-off (``schedules.calendar.cancellation_cutoff``) a booking is simply cancelled: its
unsent messages are withdrawn, the admin hears that a place is free and the delegate gets a
confirmation. After it, the cancellation is late: the approving manager is asked to nominate a
colleague from the same agency, whose booking replaces the original with no charge; when no one
has been nominated by the start, the policy's charge (if any) is recorded against the booking.

Every function takes ``now`` and writes through the caller's session; the caller commits. A booking
changes status with a conditional UPDATE, so two clicks (or two processes) cancel it once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session, col, select

from schedules.calendar import cancellation_cutoff
from schedules.planning import (
    charge_pence,
    offer_telegram,
    session_context,
    withdraw_invitations,
)
from schedules.policy import Policy
from schedules.waitlist import place_offered, release_place
from surveys import audit, outbox, tokens
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    Duration,
    LinkPurpose,
    MessageKind,
    Person,
    SessionStatus,
)

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\"]+$")


# -- Facts about a booking, shared by the cancellation, attendance and certificate notices --------


@dataclass(frozen=True)
class BookingFacts:
    """A booking with the rows every notice about it needs."""

    booking: Booking
    course_session: CourseSession
    course: Course
    delegate: Person
    manager: Person | None

    def context(self) -> dict[str, Any]:
        """The JSON context every booking notice starts from (dates as ISO text)."""
        return {
            **session_context(self.course_session, self.course),
            "booking_ref": self.booking.ref,
            "delegate_name": self.delegate.name,
            "day_length": day_length(self.course),
        }


def facts(session: Session, booking: Booking) -> BookingFacts:
    course_session = session.get(CourseSession, booking.session_id)
    if course_session is None:
        raise LookupError(
            f"booking {booking.ref} names session {booking.session_id}, which is gone"
        )
    course = session.get(Course, course_session.course_id)
    delegate = session.get(Person, booking.delegate_id)
    if course is None or delegate is None:
        raise LookupError(f"booking {booking.ref} has lost its course or delegate")
    manager = session.get(Person, booking.manager_id) if booking.manager_id else None
    return BookingFacts(booking, course_session, course, delegate, manager)


def day_length(course: Course) -> str:
    return "half day" if course.duration == Duration.HALF else "full day"


def charge_for(policy: Policy, course: Course) -> int:
    """The charge in pence for a late cancellation or no-show on this course (0: none)."""
    return charge_pence(policy.for_course(course.title), course)


def format_pence(pence: int) -> str:
    """``7500`` to ``"£75"``, ``7550`` to ``"£75.50"``."""
    pounds, rest = divmod(pence, 100)
    return f"£{pounds:,}" if rest == 0 else f"£{pounds:,}.{rest:02d}"


def describe_cutoff(policy: Policy) -> str:
    """The cut-off as the partnership would say it."""
    if policy.cutoff_hours is not None:
        hours = policy.cutoff_hours
        return f"{hours} hour{'s' if hours != 1 else ''} before the start"
    days = policy.cutoff_working_days
    if days == 0:
        return "the start of the course"
    return f"{days} working day{'s' if days != 1 else ''} before the course"


def booking_subject(booking: Booking) -> str:
    """The subject of a personal link about a booking: cancel, nominate, reason, certificate."""
    return f"booking:{booking.id}"


def booking_link(
    session: Session,
    secret: bytes,
    purpose: LinkPurpose,
    booking: Booking,
    *,
    person_id: int | None,
    expires_at: datetime | None = None,
) -> list[str]:
    """Record a personal link about ``booking`` for ``person_id`` and return it as a ``links``
    entry for a message context (``[purpose, "booking:<id>"]``)."""
    tokens.issue(
        session,
        secret,
        purpose,
        subject=booking_subject(booking),
        person_id=person_id,
        booking_id=booking.id,
        expires_at=expires_at,
    )
    return [purpose.value, booking_subject(booking)]


def withdraw_booking_messages(session: Session, booking: Booking, reason: str) -> int:
    """Withdraw a booking's unsent messages and its surveys not yet finished; returns messages."""
    assert booking.id is not None
    withdrawn = outbox.withdraw(session, booking_id=booking.id, reason=reason)
    withdraw_invitations(session, [booking.id])
    return withdrawn


def cancel_link(session: Session, booking: Booking, *, secret: bytes) -> list[str]:
    """Record the booking's Cancel link and return it as a ``links`` entry for a message context.

    Planning puts it in every pre-course message: ``context["links"]["cancel"] = cancel_link(...)``.
    The link works until the session starts.
    """
    course_session = session.get(CourseSession, booking.session_id)
    assert course_session is not None and booking.id is not None
    return booking_link(
        session,
        secret,
        LinkPurpose.CANCEL,
        booking,
        person_id=booking.delegate_id,
        expires_at=course_session.starts_at,
    )


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
    reason = (reason or "").strip() or None
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


# -- Nominating a replacement ---------------------------------------------------------------------


class NominationError(ValueError):
    """A nomination that cannot be taken; the message says why, for the person nominating."""


def nomination_problem(session: Session, booking: Booking, *, now: datetime) -> str | None:
    """Why no replacement can be nominated for ``booking`` now, or None when one can."""
    found = facts(session, booking)
    if booking.status == BookingStatus.REPLACED:
        replacement = (
            session.get(Booking, booking.replaced_by_id) if booking.replaced_by_id else None
        )
        who = session.get(Person, replacement.delegate_id) if replacement else None
        name = f" by {who.name}" if who else ""
        return f"The place on booking {booking.ref} has already been taken{name}."
    if booking.status != BookingStatus.LATE_CANCELLATION:
        return f"Booking {booking.ref} is {booking.status}, so there is no place to pass on."
    if found.course_session.status == SessionStatus.CANCELLED:
        return "The session has been cancelled, so there is no place to pass on."
    if place_offered(session, booking):
        return (
            "The nomination deadline has passed and the place has been offered to the "
            "session's waiting list."
        )
    if now >= found.course_session.starts_at:
        return "The course has already started, so it is too late to nominate a replacement."
    return None


def nominate_replacement(
    session: Session,
    booking: Booking,
    *,
    name: str,
    email: str,
    now: datetime,
    actor: str,
    secret: bytes | None = None,
) -> Booking:
    """Book a colleague from the delegate's agency into a late-cancelled place; no charge.

    The replacement booking is ``<original ref>-R<n>`` (source ``"replacement"``, not yet planned,
    so the next tick plans its pre-course questionnaire) and is sent the joining details at once.
    Raises ``NominationError`` naming what is wrong; nothing is written then.
    """
    name = " ".join(name.split())
    email = email.strip().lower()
    problem = nomination_problem(session, booking, now=now)
    if problem is not None:
        raise NominationError(problem)
    if not name:
        raise NominationError("Enter your colleague's full name.")
    if len(name) > 200:
        raise NominationError("The name is too long: use at most 200 characters.")
    if not _EMAIL.match(email) or len(email) > 254:
        raise NominationError("Enter your colleague's email address, like name@example.org.")
    found = facts(session, booking)
    if email == found.delegate.email:
        raise NominationError(
            f"{email} is the address of {found.delegate.name}, who cancelled: nominate a colleague."
        )
    person = session.exec(select(Person).where(Person.email == email)).first()
    if person is not None:
        _check_colleague(session, person, found)
    else:
        person = Person(
            name=name,
            email=email,
            agency_id=found.delegate.agency_id,
            created_at=now,
            updated_at=now,
        )
        session.add(person)
        session.flush()
    replacement = Booking(
        ref=_replacement_ref(session, booking),
        session_id=booking.session_id,
        delegate_id=person.id,  # type: ignore[arg-type]
        manager_id=booking.manager_id,
        booked_at=now,
        status=BookingStatus.BOOKED,
        status_changed_at=now,
        replaces_id=booking.id,
        source="replacement",
        created_at=now,
        updated_at=now,
    )
    session.add(replacement)
    session.flush()
    claimed = session.execute(
        update(Booking)
        .where(
            col(Booking.id) == booking.id,
            col(Booking.status) == BookingStatus.LATE_CANCELLATION,
            col(Booking.replaced_by_id).is_(None),
        )
        .values(
            status=BookingStatus.REPLACED,
            replaced_by_id=replacement.id,
            status_changed_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        # Someone nominated at the same moment; the caller's transaction must not keep ours.
        raise NominationError(f"The place on booking {booking.ref} has just been taken.")
    session.refresh(booking)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="booking.replaced",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        replacement=replacement.ref,
        replacement_name=person.name,
        replacement_email=person.email,
        session_ref=found.course_session.ref,
    )
    joining = facts(session, replacement).context() | {
        "replaces_name": found.delegate.name,
        "manager_name": found.manager.name if found.manager else None,
    }
    if secret is not None:
        joining["links"] = {"cancel": cancel_link(session, replacement, secret=secret)}
    outbox.enqueue(
        session,
        key=f"replacement-joining:{replacement.id}",
        person=person,
        template="replacement-joining",
        context=joining,
        due_at=now,
        kind=MessageKind.NOTICE,
        booking_id=replacement.id,
    )
    return replacement


def _check_colleague(session: Session, person: Person, found: BookingFacts) -> None:
    agency = found.delegate.agency_id
    if agency is not None and person.agency_id is not None and person.agency_id != agency:
        theirs = session.get(Agency, person.agency_id)
        ours = session.get(Agency, agency)
        raise NominationError(
            f"{person.email} belongs to {theirs.name if theirs else 'another agency'}; the place "
            f"can only pass to a colleague from {ours.name if ours else 'the same agency'}."
        )
    taken = session.exec(
        select(Booking.ref).where(
            Booking.session_id == found.course_session.id,
            Booking.delegate_id == person.id,
            col(Booking.status).in_(
                [BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED]
            ),
        )
    ).first()
    if taken is not None:
        raise NominationError(f"{person.name} is already booked on this session ({taken}).")


def _replacement_ref(session: Session, booking: Booking) -> str:
    """``BK-1-R1``, then ``BK-1-R2`` for a replacement's replacement, and so on."""
    root = booking
    seen = {booking.id}
    while root.replaces_id is not None and root.replaces_id not in seen:
        earlier = session.get(Booking, root.replaces_id)
        if earlier is None:
            break
        seen.add(earlier.id)
        root = earlier
    taken = set(
        session.exec(select(Booking.ref).where(col(Booking.ref).startswith(f"{root.ref}-R"))).all()
    )
    number = 1
    while f"{root.ref}-R{number}" in taken:
        number += 1
    return f"{root.ref}-R{number}"


# -- The late-cancellation charge -----------------------------------------------------------------


def record_late_cancellation_charges(session: Session, *, now: datetime, policy: Policy) -> int:
    """Record the policy's charge on late cancellations not replaced by the start; returns how many.

    The tick calls this every pass; a booking is charged once (its ``charge_pence`` is then set).
    """
    rows = session.exec(
        select(Booking, CourseSession, Course)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(
            Booking.status == BookingStatus.LATE_CANCELLATION,
            col(Booking.charge_pence).is_(None),
            CourseSession.status == SessionStatus.SCHEDULED,
            CourseSession.starts_at <= now,
        )
    ).all()
    charged = 0
    for booking, course_session, course in rows:
        amount = charge_for(policy, course)
        if amount <= 0:
            continue
        note = (
            f"Late cancellation not replaced by the start of {course_session.ref}: "
            f"{day_length(course)} charge {format_pence(amount)}"
        )
        result = session.execute(
            update(Booking)
            .where(
                col(Booking.id) == booking.id,
                col(Booking.status) == BookingStatus.LATE_CANCELLATION,
                col(Booking.charge_pence).is_(None),
            )
            .values(charge_pence=amount, charge_note=note, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            continue
        session.refresh(booking)
        audit.record(
            session,
            at=now,
            actor="system",
            action="charge.recorded",
            entity="booking",
            entity_id=booking.id,
            booking=booking.ref,
            session_ref=course_session.ref,
            why="late cancellation, no replacement",
            charge_pence=amount,
        )
        charged += 1
    return charged
