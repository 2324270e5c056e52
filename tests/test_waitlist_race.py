"""Two accepts at once on PostgreSQL: one place never goes to two people.

Each accept runs in its own thread with its own connection, released together by a barrier.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.settings import Settings
from schedules.cancellation import cancel_booking
from schedules.offers import OfferRefused, accept_offer, find_offer, offer_subject
from schedules.policy import load_policy
from schedules.tick import tick
from surveys import tokens
from surveys.models import (
    Booking,
    BookingStatus,
    CourseSession,
    LinkPurpose,
    OfferState,
    PlaceOffer,
)
from tests.conftest import World, utc

IN_TIME = utc("2026-03-12 12:00")
POLICY = load_policy({})


def _world_with_offers(engine: Engine, settings: Settings, cancelled: int) -> list[str]:
    """Alice and Chloé booked, Wen and Xavier waiting; ``cancelled`` of the two bookings
    cancelled in time and offered by a tick. Returns the offers' accept tokens."""
    with Session(engine, expire_on_commit=False) as session:
        world = World(session)
        people = world.standard()
        for n, name in enumerate(("Wen Li", "Xavier Hughes")):
            person = world.person(name, f"{name.split()[0].lower()}@riverside.example")
            booking = world.booking(
                people["session"], person, None, f"BK-W{n + 1}", status=BookingStatus.WAITING
            )
            booking.booked_at = utc("2026-01-20 10:00") + timedelta(hours=n)
        session.commit()
        for name in ("alice_booking", "chloe_booking")[:cancelled]:
            booking = session.get(Booking, people[name].id)
            assert booking is not None
            cancel_booking(
                session,
                booking,
                now=IN_TIME,
                policy=POLICY,
                zone=settings.zone,
                secret=settings.secret,
                actor="test",
            )
        session.commit()
    tick(engine, now=IN_TIME, policy=POLICY, zone=settings.zone, secret=settings.secret)
    with Session(engine) as session:
        offers = session.exec(select(PlaceOffer).order_by(PlaceOffer.id)).all()  # type: ignore[arg-type]
        assert len(offers) == cancelled
        return [
            tokens.make_token(settings.secret, LinkPurpose.OFFER, offer_subject(offer))
            for offer in offers
        ]


def _accept_together(engine: Engine, links: list[str]) -> list[str]:
    """Accept each link in its own thread at the same moment; what each was told."""
    barrier = threading.Barrier(len(links))
    results: list[str] = [""] * len(links)

    def accept(index: int, token: str) -> None:
        with Session(engine, expire_on_commit=False) as session:
            found = find_offer(session, token)
            assert found is not None
            barrier.wait()
            try:
                booking = accept_offer(
                    session, found, now=IN_TIME + timedelta(hours=1), actor="web"
                )
                session.commit()
                results[index] = f"booked {booking.ref}"
            except OfferRefused as refused:
                session.commit()  # nothing of the refused accept is kept
                results[index] = f"refused: {refused}"

    threads = [threading.Thread(target=accept, args=(i, t)) for i, t in enumerate(links)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _booked_waiters(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(
            session.exec(
                select(Booking.ref).where(
                    Booking.status == BookingStatus.BOOKED,
                    Booking.ref.startswith("BK-W"),  # type: ignore[attr-defined]
                )
            ).all()
        )


def test_one_offer_accepted_twice_at_once_books_once(postgres_engine: Engine, settings):
    [token] = _world_with_offers(postgres_engine, settings, cancelled=1)
    results = _accept_together(postgres_engine, [token, token])
    assert sorted(results) == [
        "booked BK-W1",
        "refused: You have already accepted this place: booking BK-W1 is yours, and your "
        "confirmation has been sent. Nothing more was changed.",
    ]
    assert _booked_waiters(postgres_engine) == ["BK-W1"]


def test_two_people_accepting_the_last_place_at_once_get_it_once(postgres_engine: Engine, settings):
    wen, xavier = _world_with_offers(postgres_engine, settings, cancelled=2)
    with Session(postgres_engine) as session:
        # The coordinator cut the session to one place while both offers were out.
        course_session = session.exec(select(CourseSession)).one()
        course_session.max_places = 1
        session.add(course_session)
        session.commit()
    results = _accept_together(postgres_engine, [wen, xavier])
    assert sum(r.startswith("booked") for r in results) == 1, results
    assert [r for r in results if r.startswith("refused")] == [
        "refused: Sorry, the session is now full: the place has gone to someone else."
    ]
    assert len(_booked_waiters(postgres_engine)) == 1
    with Session(postgres_engine) as session:
        states = sorted(session.exec(select(PlaceOffer.state)).all())
        # The refused accept left its offer open, exactly as it was.
        assert states == [OfferState.ACCEPTED, OfferState.OPEN]
