"""Accepting a place offer: the link's offer found, why it cannot be taken (if it cannot), and
the place given to the waiting-list entry.

Every step is a conditional ``UPDATE`` after locking the session's row (``FOR UPDATE`` on
PostgreSQL; SQLite takes one writer at a time), inside a savepoint: two accepts at once, of one
offer or of two offers for the last place, give the place to one person and leave the other as
it was. The booking is then planned by the next tick like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from schedules.conditional_update import changed_one
from schedules.planning import ACTIVE, BOOKING_INACTIVE, booking_context
from surveys import audit, outbox, tokens
from surveys.models import (
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

WAITLIST_PLACE_MANAGER = "waitlist-place-manager"


class OfferRefused(Exception):
    """An accept that cannot be taken; the message says why, for the person."""


@dataclass(frozen=True)
class OfferFacts:
    """An offer with the rows its page shows."""

    offer: PlaceOffer
    vacancy: Vacancy
    booking: Booking
    course_session: CourseSession
    course: Course
    delegate: Person

    def context(self) -> dict[str, Any]:
        return booking_context(self.course_session, self.course, self.booking, self.delegate)


def find_offer(session: Session, token: str) -> OfferFacts | None:
    """The offer an accept link names, or None for a token that names none."""
    if not token or len(token) > 100:
        return None
    offer = session.exec(
        select(PlaceOffer).where(PlaceOffer.token_hash == tokens.token_hash(token))
    ).first()
    if offer is None:
        return None
    vacancy = session.get(Vacancy, offer.vacancy_id)
    booking = session.get(Booking, offer.booking_id)
    assert vacancy is not None and booking is not None
    course_session = session.get(CourseSession, vacancy.session_id)
    assert course_session is not None
    course = session.get(Course, course_session.course_id)
    delegate = session.get(Person, booking.delegate_id)
    assert course is not None and delegate is not None
    return OfferFacts(offer, vacancy, booking, course_session, course, delegate)


def offer_problem(session: Session, found: OfferFacts, *, now: datetime) -> str | None:
    """Why the offer cannot be accepted now, or None when it can."""
    offer, vacancy, course_session = found.offer, found.vacancy, found.course_session
    if offer.state == OfferState.ACCEPTED:
        return (
            f"You have already accepted this place: booking {found.booking.ref} is yours, and "
            "your confirmation has been sent. Nothing more was changed."
        )
    if course_session.status == SessionStatus.CANCELLED:
        return "This session has been cancelled, so there is no place to take."
    if vacancy.state == VacancyState.FILLED or vacancy.filled_by_id is not None:
        return "This place has already gone to someone else on the waiting list."
    if offer.state == OfferState.WITHDRAWN:
        return "This offer was withdrawn: the place went another way."
    if offer.state == OfferState.LAPSED or offer.expires_at <= now:
        return (
            "This offer has ended, and the place has passed to the next person on the waiting "
            "list. You are still on the list for any other place that frees."
            if found.booking.status == BookingStatus.WAITING
            else "This offer has ended."
        )
    if found.booking.status != BookingStatus.WAITING:
        return f"You are no longer on the waiting list for this session ({found.booking.status})."
    return None


def accept_offer(session: Session, found: OfferFacts, *, now: datetime, actor: str) -> Booking:
    """Give the offered place to its waiting-list entry; raises ``OfferRefused`` (nothing
    changed) when it cannot be taken. The caller commits."""
    problem = offer_problem(session, found, now=now)
    if problem is not None:
        raise OfferRefused(problem)
    offer, vacancy, booking = found.offer, found.vacancy, found.booking
    course_session = found.course_session
    try:
        with session.begin_nested():
            _take_place(session, found, now=now)
    except OfferRefused:
        session.expire_all()
        raise
    session.expire_all()
    taken = session.get(Booking, booking.id)
    assert taken is not None
    booking = taken
    audit.record(
        session,
        at=now,
        actor=actor,
        action="place.accepted",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        session_ref=course_session.ref,
        vacancy=vacancy.id,
        offer=offer.id,
    )
    _tell_manager(session, found, booking, now=now)
    return booking


def _take_place(session: Session, found: OfferFacts, *, now: datetime) -> None:
    offer, vacancy, booking = found.offer, found.vacancy, found.booking
    course_session = found.course_session
    # Every accept on this session waits here for the one before it (PostgreSQL).
    session.execute(
        select(CourseSession.id).where(CourseSession.id == course_session.id).with_for_update()
    )
    if not changed_one(
        session,
        update(PlaceOffer)
        .where(
            col(PlaceOffer.id) == offer.id,
            col(PlaceOffer.state) == OfferState.OPEN,
            col(PlaceOffer.expires_at) > now,
        )
        .values(state=OfferState.ACCEPTED, decided_at=now),
    ):
        session.expire(offer)
        raise OfferRefused(
            offer_problem(session, found, now=now) or "This offer has just been used."
        )
    if not changed_one(
        session,
        update(Vacancy)
        .where(
            col(Vacancy.id) == vacancy.id,
            col(Vacancy.state) == VacancyState.OFFERING,
            col(Vacancy.filled_by_id).is_(None),
        )
        .values(state=VacancyState.FILLED, filled_by_id=booking.id, closed_at=now),
    ):
        raise OfferRefused("This place has already gone to someone else on the waiting list.")
    maximum = course_session.max_places
    if maximum is not None and places_taken(session, course_session) >= maximum:
        raise OfferRefused("Sorry, the session is now full: the place has gone to someone else.")
    # The place of a late cancellation taken from the list: as a nominated colleague's
    # would, this booking replaces the cancelled one, so no charge applies.
    if vacancy.reason == "late" and not changed_one(
        session,
        update(Booking)
        .where(
            col(Booking.id) == vacancy.freed_booking_id,
            col(Booking.status) == BookingStatus.LATE_CANCELLATION,
            col(Booking.replaced_by_id).is_(None),
        )
        .values(
            status=BookingStatus.REPLACED,
            replaced_by_id=booking.id,
            status_changed_at=now,
            updated_at=now,
        ),
    ):
        raise OfferRefused("This place has already been taken by a nominated colleague.")
    if not changed_one(
        session,
        update(Booking)
        .where(col(Booking.id) == booking.id, col(Booking.status) == BookingStatus.WAITING)
        .values(
            status=BookingStatus.BOOKED,
            status_changed_at=now,
            updated_at=now,
            source="waitlist",
            # Differs from every schedule version: the next tick plans it as a new booking.
            planned_version=BOOKING_INACTIVE,
        ),
    ):
        raise OfferRefused("You are no longer on the waiting list for this session.")


def places_taken(session: Session, course_session: CourseSession) -> int:
    """The session's active bookings."""
    return session.exec(
        select(func.count())
        .select_from(Booking)
        .where(Booking.session_id == course_session.id, col(Booking.status).in_(ACTIVE))
    ).one()


def _tell_manager(session: Session, found: OfferFacts, booking: Booking, *, now: datetime) -> None:
    if booking.manager_id is None:
        return
    manager = session.get(Person, booking.manager_id)
    if manager is None:
        return
    outbox.enqueue(
        session,
        key=f"booking:{booking.id}:waitlist-place:manager",
        person=manager,
        template=WAITLIST_PLACE_MANAGER,
        context=found.context(),
        due_at=now,
        kind=MessageKind.NOTICE,
        booking_id=booking.id,
    )
