"""Place offers: a freed place offered down a session's waiting list, one person at a time.

The tick (``run_offers``) lapses offers past their time, hands late-cancelled places to the
waiting list once the manager's nomination deadline has passed, and offers each vacancy with no
open offer to the first waiting person not yet offered it. An offer stays open ``offer_hours``
from when it can be read (the sending window), but never past ``offer_closes_before`` working
days before the start. When nobody is left, or it is too near the start, the coordinator hears
"a place is free" as before.

``accept_offer`` (in ``schedules.offer_accept``, imported from here) turns the offer's
waiting-list entry into a booking, which the next tick plans like any other: confirmation,
calendar invitation and the pre-course questionnaire when it is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.conditional_update import changed_one
from schedules.offer_accept import WAITLIST_PLACE_MANAGER as WAITLIST_PLACE_MANAGER
from schedules.offer_accept import OfferFacts as OfferFacts
from schedules.offer_accept import OfferRefused as OfferRefused
from schedules.offer_accept import accept_offer as accept_offer
from schedules.offer_accept import find_offer as find_offer
from schedules.offer_accept import offer_problem as offer_problem
from schedules.offer_accept import places_taken
from schedules.planning import booking_context, session_context
from schedules.policy import Policy
from schedules.waitlist import (
    PLACE_FREE,
    coordinator,
    offers_close,
    waiting_ids,
)
from surveys import audit, outbox, tokens
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    LinkPurpose,
    MessageKind,
    OfferState,
    Person,
    PlaceOffer,
    SessionStatus,
    Vacancy,
    VacancyState,
)

PLACE_OFFER = "place-offer"


@dataclass
class OfferReport:
    """What one pass of ``run_offers`` did."""

    lapsed: int = 0
    offered: int = 0
    unfilled: int = 0  # places nobody on the list took: the coordinator was told
    told: list[str] = field(default_factory=list)


def offer_subject(offer: PlaceOffer) -> str:
    return f"offer:{offer.id}"


def run_offers(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    admin_email: str | None,
) -> OfferReport:
    """The tick's step: lapse, hand over late-cancelled places, and make the next offers."""
    report = OfferReport()
    report.lapsed = lapse_due(session, now)
    _open_nominations(session, now)
    rows = session.exec(
        select(Vacancy, CourseSession, Course)
        .join(CourseSession, col(CourseSession.id) == Vacancy.session_id)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(
            Vacancy.state == VacancyState.OFFERING,
            ~select(PlaceOffer.id)
            .where(PlaceOffer.vacancy_id == Vacancy.id, PlaceOffer.state == OfferState.OPEN)
            .exists(),
        )
        .order_by(col(Vacancy.id))
    ).all()
    for vacancy, course_session, course in rows:
        if offer_next(
            session,
            vacancy,
            course_session,
            course,
            now=now,
            policy=policy,
            zone=zone,
            secret=secret,
        ):
            report.offered += 1
        elif _unfilled(session, vacancy, course_session, course, now=now, admin_email=admin_email):
            report.unfilled += 1
    return report


def lapse_due(session: Session, now: datetime) -> int:
    """Open offers past their time: lapsed (their vacancies are offered on)."""
    result = session.execute(
        update(PlaceOffer)
        .where(col(PlaceOffer.state) == OfferState.OPEN, col(PlaceOffer.expires_at) <= now)
        .values(state=OfferState.LAPSED, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _open_nominations(session: Session, now: datetime) -> None:
    """Late-cancelled places whose nomination deadline has passed: to the waiting list, unless a
    colleague was nominated (withdrawn) or nobody waits (left to the manager, as before)."""
    due = session.exec(
        select(Vacancy, Booking)
        .join(Booking, col(Booking.id) == Vacancy.freed_booking_id)
        .where(Vacancy.state == VacancyState.NOMINATING, col(Vacancy.opens_at) <= now)
    ).all()
    for vacancy, booking in due:
        still_free = (
            booking.status == BookingStatus.LATE_CANCELLATION and booking.replaced_by_id is None
        )
        if not still_free:
            state = VacancyState.WITHDRAWN
        elif waiting_ids(session, vacancy.session_id):
            state = VacancyState.OFFERING
        else:
            state = VacancyState.UNFILLED
        session.execute(
            update(Vacancy)
            .where(col(Vacancy.id) == vacancy.id, col(Vacancy.state) == VacancyState.NOMINATING)
            .values(state=state, closed_at=None if state is VacancyState.OFFERING else now)
            .execution_options(synchronize_session=False)
        )
    if due:
        session.expire_all()


def offer_next(
    session: Session,
    vacancy: Vacancy,
    course_session: CourseSession,
    course: Course,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
) -> bool:
    """Offer the vacancy to the first waiting person not yet offered it; False when nobody is
    left or it is too near the start."""
    own = policy.for_course(course.title)
    closes = offers_close(course_session.starts_at, own, zone)
    readable_at = next_send_time(now, own, zone)
    if course_session.status != SessionStatus.SCHEDULED or readable_at >= closes:
        return False
    candidates = _candidates(session, vacancy)
    if not candidates:
        return False
    expires_at = min(readable_at + timedelta(hours=own.offer_hours), closes)
    offer = PlaceOffer(
        vacancy_id=vacancy.id,  # type: ignore[arg-type]
        booking_id=candidates[0],
        offered_at=readable_at,
        expires_at=expires_at,
        state=OfferState.OPEN,
    )
    try:
        with session.begin_nested():
            session.add(offer)
            session.flush()
    except IntegrityError:
        return True  # another process offered it to the same person a moment ago
    token = tokens.make_token(secret, LinkPurpose.OFFER, offer_subject(offer))
    offer.token_hash = tokens.token_hash(token)
    session.add(offer)
    booking = session.get(Booking, offer.booking_id)
    assert booking is not None
    delegate = session.get(Person, booking.delegate_id)
    assert delegate is not None
    context = booking_context(course_session, course, booking, delegate) | {
        "expires_at": expires_at.isoformat(),
        # For people: "by 23:59 on Friday" rather than "by 00:00 on Saturday".
        "accept_until": (expires_at - timedelta(minutes=1)).isoformat(),
        "links": {"accept": [LinkPurpose.OFFER.value, offer_subject(offer)]},
        # A Telegram button for the link: [[label, link name]] rows.
        "buttons": [[["Accept the place", "accept"]]],
    }
    outbox.enqueue(
        session,
        key=f"offer:{offer.id}",
        person=delegate,
        template=PLACE_OFFER,
        context=context,
        due_at=readable_at,
        kind=MessageKind.NOTICE,
        booking_id=booking.id,
    )
    audit.record(
        session,
        at=now,
        actor="system",
        action="place.offered",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        session_ref=course_session.ref,
        vacancy=vacancy.id,
        expires_at=expires_at.isoformat(),
    )
    return True


def _candidates(session: Session, vacancy: Vacancy) -> list[int]:
    """The session's waiting list, less those offered this place already and those holding
    another open offer."""
    offered = set(
        session.exec(select(PlaceOffer.booking_id).where(PlaceOffer.vacancy_id == vacancy.id)).all()
    )
    holding = set(
        session.exec(
            select(PlaceOffer.booking_id)
            .join(Vacancy, col(Vacancy.id) == PlaceOffer.vacancy_id)
            .where(Vacancy.session_id == vacancy.session_id, PlaceOffer.state == OfferState.OPEN)
        ).all()
    )
    return [i for i in waiting_ids(session, vacancy.session_id) if i not in offered | holding]


def _unfilled(
    session: Session,
    vacancy: Vacancy,
    course_session: CourseSession,
    course: Course,
    *,
    now: datetime,
    admin_email: str | None,
) -> bool:
    """Nobody (left) on the list takes the place: close the vacancy, tell the coordinator."""
    if not changed_one(
        session,
        update(Vacancy)
        .where(col(Vacancy.id) == vacancy.id, col(Vacancy.state) == VacancyState.OFFERING)
        .values(state=VacancyState.UNFILLED, closed_at=now),
    ):
        return False
    if course_session.status != SessionStatus.SCHEDULED or not admin_email:
        return True
    freed = session.get(Booking, vacancy.freed_booking_id)
    assert freed is not None
    delegate = session.get(Person, freed.delegate_id)
    agency = session.get(Agency, delegate.agency_id) if delegate and delegate.agency_id else None
    offers = session.exec(
        select(func.count()).select_from(PlaceOffer).where(PlaceOffer.vacancy_id == vacancy.id)
    ).one()
    taken = places_taken(session, course_session)
    maximum = course_session.max_places
    context = session_context(course_session, course) | {
        "booking_ref": freed.ref,
        "delegate_name": delegate.name if delegate else "",
        "agency_name": agency.name if agency else "",
        "recipient_name": "Training coordinator",
        "places_left": max(maximum - taken, 0) if maximum is not None else None,
        "max_places": maximum,
        "reason": vacancy.reason,
        "offers_made": offers,
    }
    outbox.enqueue(
        session,
        key=f"place-free:{freed.id}",
        person=coordinator(admin_email),
        template=PLACE_FREE,
        context=context,
        due_at=now,
        kind=MessageKind.NOTICE,
        booking_id=freed.id,
    )
    return True
