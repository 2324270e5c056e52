"""Late cancellations: a colleague nominated for the place, and the charge when nobody is.

After a late cancellation the approving manager may nominate a colleague from the same agency,
whose booking replaces the original with no charge (``nominate_replacement``). When no one has
been nominated by the start, the policy's charge (if any) is recorded against the booking
(``record_late_cancellation_charges``, run by the tick). A place that has passed to the waiting
list (``schedules.waitlist``) can no longer be nominated for.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from schedules.booking_facts import (
    BookingFacts,
    cancel_link,
    charge_for,
    facts,
    format_pence,
)
from schedules.plan_constants import REPLACEMENT_JOINING
from schedules.planning import day_length
from schedules.policy import Policy
from schedules.waitlist import place_offered
from surveys import audit, outbox
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    MessageKind,
    Person,
    SessionStatus,
)
from surveys.text import clean_text

_EMAIL = re.compile(r"^[^@\s<>(),;:\"]+@[^@\s<>(),;:\"]+\.[^@\s<>(),;:\"]+$")


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
    name = " ".join(clean_text(name).split())
    email = clean_text(email).lower()
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
        key=f"{REPLACEMENT_JOINING}:{replacement.id}",
        person=person,
        template=REPLACEMENT_JOINING,
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
