"""The waiting list: who waits for a place on a session, and what happens to places that free.

A waiting-list entry is a booking with status ``waiting`` (an export's ``waiting`` or
``wait-listed`` row, or a request beyond the session's ``max_places``); the list is in the order
of ``booked_at``, then of the booking's id. A waiting delegate gets no survey and no
confirmation, only ``waitlist-joined`` ("you are on the waiting list, number N").

A place frees when a booking is cancelled in time (``schedules.cancellation``), cancelled late
and its manager nominates nobody by the nomination deadline, or cancelled in the booking system
and imported so. While someone waits, the freed place becomes a ``Vacancy``; ``schedules.offers``
offers it down the list. When nobody waits, the coordinator hears "a place is free" as before.

Sessions at their maximum: a new booking beyond ``max_places`` (see ``schedules.sessions``) becomes
a waiting-list entry before it is planned, so it is never confirmed; a booking already planned
is never moved to the list, whatever ``max_places`` says later.

Every function takes ``now`` and writes through the caller's session; the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time, working_days_before
from schedules.conditional_update import changed_one
from schedules.planning import OUTBOX_TABLE, booking_context, chunks, outbox_row
from schedules.planning import _bulk_insert as bulk_insert
from schedules.policy import Policy
from surveys import audit, outbox
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    MessageKind,
    OfferState,
    Person,
    PlaceOffer,
    SessionStatus,
    Vacancy,
    VacancyState,
)

log = logging.getLogger(__name__)

WAITLIST_JOINED = "waitlist-joined"
WAITLIST_SESSION_CANCELLED = "waitlist-session-cancelled"
PLACE_FREE = "place-free"
UNDER_FILLED = "session-under-filled"
COORDINATOR = "Training coordinator"
# Vacancies still looking for someone: the tick looks only at these.
LIVE_VACANCY = (VacancyState.NOMINATING, VacancyState.OFFERING)


# -- The list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingEntry:
    """One person on a session's waiting list, for the CLI and the staff console."""

    position: int
    booking_ref: str
    delegate_name: str
    delegate_email: str
    agency: str
    booked_at: datetime | None
    offer_expires_at: datetime | None  # while an offer to them is open


def queue_order() -> tuple[Any, Any]:
    """The waiting list's order: first booked, first offered (the id breaks ties)."""
    return col(Booking.booked_at).asc().nulls_last(), col(Booking.id).asc()


def waiting_list(session: Session, session_id: int) -> list[WaitingEntry]:
    """The session's waiting list in order, each with any offer now open to them."""
    rows = session.exec(
        select(Booking, Person, Agency)
        .join(Person, col(Person.id) == Booking.delegate_id)
        .join(Agency, col(Agency.id) == Person.agency_id, isouter=True)
        .where(Booking.session_id == session_id, Booking.status == BookingStatus.WAITING)
        .order_by(*queue_order())
    ).all()
    ids = [booking.id for booking, _, _ in rows if booking.id is not None]
    open_offers: dict[int, datetime] = {}
    for part in chunks(ids):
        open_offers.update(
            session.exec(
                select(PlaceOffer.booking_id, PlaceOffer.expires_at).where(
                    col(PlaceOffer.booking_id).in_(part), PlaceOffer.state == OfferState.OPEN
                )
            ).all()
        )
    return [
        WaitingEntry(
            position=number,
            booking_ref=booking.ref,
            delegate_name=person.name,
            delegate_email=person.email,
            agency=agency.name if agency else "",
            booked_at=booking.booked_at,
            offer_expires_at=open_offers.get(booking.id or 0),
        )
        for number, (booking, person, agency) in enumerate(rows, start=1)
    ]


def waiting_ids(session: Session, session_id: int) -> list[int]:
    """The ids of the session's waiting bookings, in the list's order."""
    return [
        booking_id
        for booking_id in session.exec(
            select(Booking.id)
            .where(Booking.session_id == session_id, Booking.status == BookingStatus.WAITING)
            .order_by(*queue_order())
        ).all()
        if booking_id is not None
    ]


def has_waiting(session: Session, session_id: int) -> bool:
    return (
        session.exec(
            select(Booking.id).where(
                Booking.session_id == session_id, Booking.status == BookingStatus.WAITING
            )
        ).first()
        is not None
    )


def offers_close(starts_at: datetime, policy: Policy, zone: ZoneInfo) -> datetime:
    """No place is offered from this moment: ``offer_closes_before`` working days before."""
    return working_days_before(starts_at, policy.offer_closes_before, policy, zone)


def nomination_deadline(
    cancelled_at: datetime, starts_at: datetime, policy: Policy, zone: ZoneInfo
) -> datetime:
    """After a late cancellation, the manager has ``nomination_hours`` of the sending window's
    time (counted from when the request can be read) to nominate, before the place goes to the
    waiting list; never later than the offers close."""
    asked = next_send_time(cancelled_at, policy, zone)
    return min(
        asked + timedelta(hours=policy.nomination_hours), offers_close(starts_at, policy, zone)
    )


# -- Places that free ---------------------------------------------------------------------------


def release_place(
    session: Session,
    booking: Booking,
    course_session: CourseSession,
    course: Course,
    *,
    reason: str,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
) -> bool:
    """Record the place ``booking`` held as a vacancy for the waiting list, if anyone waits and
    there is time to offer it; returns whether it did (or had already). ``reason``: cancelled,
    late or imported."""
    own = policy.for_course(course.title)
    late = booking.status == BookingStatus.LATE_CANCELLATION
    if course_session.status != SessionStatus.SCHEDULED:
        return False
    if now >= offers_close(course_session.starts_at, own, zone):
        return False
    # A late cancellation's place is kept for the manager's nominee first: whether anyone
    # waits is asked when the nomination deadline passes.
    if not late and not has_waiting(session, course_session.id or 0):
        return False
    opens_at = (
        nomination_deadline(booking.cancelled_at or now, course_session.starts_at, own, zone)
        if late
        else now
    )
    values = {
        "session_id": course_session.id,
        "freed_booking_id": booking.id,
        "reason": reason,
        "state": (VacancyState.NOMINATING if late else VacancyState.OFFERING).value,
        "opens_at": opens_at,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert_for = pg_insert if dialect == "postgresql" else sqlite_insert
    # Two processes may notice the same cancellation: a booking frees its place once.
    result = session.execute(
        insert_for(Vacancy)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["freed_booking_id"])
    )
    if int(result.rowcount) == 1:  # type: ignore[attr-defined]
        audit.record(
            session,
            at=now,
            actor="system",
            action="place.released",
            entity="booking",
            entity_id=booking.id,
            booking=booking.ref,
            session_ref=course_session.ref,
            reason=reason,
            offers_from=opens_at.isoformat(),
        )
    return True


def place_offered(session: Session, booking: Booking) -> bool:
    """Whether the place ``booking`` freed has gone to the waiting list (offered or taken)."""
    state = session.exec(
        select(Vacancy.state).where(Vacancy.freed_booking_id == booking.id)
    ).first()
    return state in (VacancyState.OFFERING, VacancyState.FILLED)


def after_inactive(
    session: Session, booking_ids: Sequence[int], *, now: datetime, policy: Policy, zone: ZoneInfo
) -> None:
    """What the tick does for bookings that have just stopped being active (each once): a
    waiting-list entry is told its number; a place cancelled (by Evalbot or in the booking
    system) is released to the waiting list."""
    if not booking_ids:
        return
    rows: list[tuple[Booking, CourseSession, Course]] = []
    for part in chunks(list(booking_ids)):
        rows.extend(
            session.exec(
                select(Booking, CourseSession, Course)
                .join(CourseSession, col(CourseSession.id) == Booking.session_id)
                .join(Course, col(Course.id) == CourseSession.course_id)
                .where(
                    col(Booking.id).in_(part),
                    col(Booking.status).in_(
                        [
                            BookingStatus.WAITING,
                            BookingStatus.CANCELLED,
                            BookingStatus.LATE_CANCELLATION,
                        ]
                    ),
                )
            ).all()
        )
    waiting = []
    for booking, course_session, course in rows:
        if booking.status == BookingStatus.WAITING:
            if course_session.status == SessionStatus.SCHEDULED and now < course_session.starts_at:
                waiting.append((booking, course_session, course))
        elif now < course_session.starts_at:
            reason = "late" if booking.status == BookingStatus.LATE_CANCELLATION else "cancelled"
            release_place(
                session,
                booking,
                course_session,
                course,
                reason=reason,
                now=now,
                policy=policy,
                zone=zone,
            )
    tell_positions(session, waiting, now=now, policy=policy, zone=zone)


def tell_positions(
    session: Session,
    entries: Sequence[tuple[Booking, CourseSession, Course]],
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
) -> int:
    """Queue each entry's ``waitlist-joined`` ("you are on the waiting list, number N"), in
    bulk: an import may put thousands on waiting lists at once. Returns how many were queued."""
    if not entries:
        return 0
    people: dict[int, Person] = {}
    delegate_ids = sorted({booking.delegate_id for booking, _, _ in entries})
    for part in chunks(delegate_ids):
        people.update(
            (person.id, person)
            for person in session.exec(select(Person).where(col(Person.id).in_(part))).all()
            if person.id is not None
        )
    positions: dict[int, dict[int, int]] = {}
    rows = []
    for booking, course_session, course in entries:
        session_id = course_session.id or 0
        if session_id not in positions:
            positions[session_id] = {
                booking_id: number
                for number, booking_id in enumerate(waiting_ids(session, session_id), start=1)
            }
        delegate = people[booking.delegate_id]
        context = booking_context(course_session, course, booking, delegate) | {
            "position": positions[session_id][booking.id or 0],
        }
        rows.append(
            outbox_row(
                key=f"booking:{booking.id}:waitlist-joined",
                person=delegate,
                template=WAITLIST_JOINED,
                context=context,
                due_at=next_send_time(now, policy.for_course(course.title), zone),
                kind=MessageKind.NOTICE,
                booking_id=booking.id,
                invitation_id=None,
                created_at=now,
            )
        )
    return bulk_insert(session, OUTBOX_TABLE, rows, "idempotency_key", [])


# -- A cancelled session --------------------------------------------------------------------------


def tell_cancelled_sessions(session: Session, *, now: datetime) -> int:
    """Waiting-list entries of cancelled sessions: each is told and leaves the list; the
    session's offers and vacancies are withdrawn. Returns the people told."""
    rows = session.exec(
        select(Booking, CourseSession, Course)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(
            Booking.status == BookingStatus.WAITING,
            CourseSession.status == SessionStatus.CANCELLED,
        )
    ).all()
    told = 0
    for booking, course_session, course in rows:
        claimed = changed_one(
            session,
            update(Booking)
            .where(col(Booking.id) == booking.id, col(Booking.status) == BookingStatus.WAITING)
            .values(
                status=BookingStatus.CANCELLED,
                status_changed_at=now,
                cancelled_at=now,
                cancel_reason="the session was cancelled",
                updated_at=now,
            ),
        )
        if not claimed or now >= course_session.starts_at:
            continue
        delegate = session.get(Person, booking.delegate_id)
        assert delegate is not None
        context = booking_context(course_session, course, booking, delegate)
        # Not held for the sending window, as the booked delegates' notices are not.
        told += (
            outbox.enqueue(
                session,
                key=f"booking:{booking.id}:session-cancelled:waiting",
                person=delegate,
                template=WAITLIST_SESSION_CANCELLED,
                context=context,
                due_at=now,
                kind=MessageKind.NOTICE,
                booking_id=booking.id,
            )
            is not None
        )
    _withdraw_cancelled_vacancies(session, now)
    return told


def _withdraw_cancelled_vacancies(session: Session, now: datetime) -> None:
    live = session.exec(
        select(Vacancy.id)
        .join(CourseSession, col(CourseSession.id) == Vacancy.session_id)
        .where(
            col(Vacancy.state).in_(LIVE_VACANCY), CourseSession.status == SessionStatus.CANCELLED
        )
    ).all()
    if not live:
        return
    session.execute(
        update(PlaceOffer)
        .where(col(PlaceOffer.vacancy_id).in_(live), col(PlaceOffer.state) == OfferState.OPEN)
        .values(state=OfferState.WITHDRAWN, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Vacancy)
        .where(col(Vacancy.id).in_(live), col(Vacancy.state).in_(LIVE_VACANCY))
        .values(state=VacancyState.WITHDRAWN, closed_at=now)
        .execution_options(synchronize_session=False)
    )


def coordinator(admin_email: str) -> Person:
    """The coordinator as a message's addressee: an address in the settings, not a stored
    person (never added to the session)."""
    return Person(name=COORDINATOR, email=admin_email.strip().lower())
