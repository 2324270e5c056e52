"""Places freed and offered to the waiting list (``schedules.waitlist``), per course and in all.

A place counts in the period of its session. *Offered* places are those at least one person on
the waiting list was offered; *taken* places are those someone accepted; the fill rate is taken
over offered. Offers are counted one by one: a place may be offered to several people in turn,
each offer accepted, lapsed (not accepted in time) or withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, func, select

from surveys.report.periods import Period
from surveys.report.query import _TABLES, COURSE, SESSION, count_where, starts_in
from surveys.waitlist_models import OfferState, VacancyState

VACANCY: Table = _TABLES["vacancy"]
OFFER: Table = _TABLES["place_offer"]
ALL_COURSES = "All courses"


@dataclass(frozen=True)
class OfferRow:
    course: str
    places_freed: int  # freed while someone was waiting
    places_offered: int
    places_taken: int
    offers: int
    accepted: int
    lapsed: int

    @property
    def fill_rate(self) -> float | None:
        return self.places_taken / self.places_offered if self.places_offered else None


def place_offers(connection: Connection, period: Period, zone: ZoneInfo) -> list[OfferRow]:
    """One row per course with a freed place in the period, then the total (``ALL_COURSES``);
    empty when no place was freed while someone was waiting."""
    per_place = (
        select(
            OFFER.c.vacancy_id,
            func.count().label("offers"),
            count_where(OFFER.c.state == OfferState.ACCEPTED.value).label("accepted"),
            count_where(OFFER.c.state == OfferState.LAPSED.value).label("lapsed"),
        )
        .group_by(OFFER.c.vacancy_id)
        .subquery()
    )
    offers = func.coalesce(per_place.c.offers, 0)
    figures = (
        func.count(VACANCY.c.id).label("freed"),
        count_where(offers > 0).label("offered"),
        count_where(VACANCY.c.state == VacancyState.FILLED.value).label("taken"),
        func.coalesce(func.sum(per_place.c.offers), 0).label("offers"),
        func.coalesce(func.sum(per_place.c.accepted), 0).label("accepted"),
        func.coalesce(func.sum(per_place.c.lapsed), 0).label("lapsed"),
    )
    joined = (
        VACANCY.join(SESSION, SESSION.c.id == VACANCY.c.session_id)
        .join(COURSE, COURSE.c.id == SESSION.c.course_id)
        .outerjoin(per_place, per_place.c.vacancy_id == VACANCY.c.id)
    )
    by_course = connection.execute(
        select(COURSE.c.title, *figures)
        .select_from(joined)
        .where(starts_in(period, zone))
        .group_by(COURSE.c.title)
        .order_by(COURSE.c.title)
    ).all()
    rows = [OfferRow(row[0], *(int(value) for value in row[1:])) for row in by_course]
    if not rows:
        return []
    total = OfferRow(
        ALL_COURSES,
        *(sum(getattr(row, name) for row in rows) for name in (
            "places_freed", "places_offered", "places_taken", "offers", "accepted", "lapsed"
        )),
    )  # fmt: skip
    return [*rows, total]
