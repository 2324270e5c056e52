"""Attendance and outcomes by sector, agency, role and course level.

Each figure is counted once per (agency, role, course level) in the database, and those counts
are summed up to each of the four breakdowns in the same statement, as ``attendance`` does.
A row keeps its counts and sums, not only its rates, so that the anonymous edition can put
small groups together and work their figures out again (``hide_small_breakdowns``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, CompoundSelect, FromClause

from surveys.models import BookingStatus, Stage
from surveys.report.evaluation import pair_join
from surveys.report.periods import Period
from surveys.report.query import (
    AGENCY,
    ANSWER,
    BOOKING,
    COURSE,
    EXPECTED,
    NO_AGENCY,
    NO_SECTOR,
    PERSON,
    SESSION,
    answers_from,
    count_where,
    ran_in,
)
from surveys.report.rows import BreakdownRow

Dimension = Literal["sector", "agency", "role", "level"]
MeasureName = str | tuple[str, str]
DIMENSIONS: tuple[Dimension, ...] = ("sector", "agency", "role", "level")
DIMENSION_NAMES = {
    "sector": "Sector",
    "agency": "Agency",
    "role": "Role",
    "level": "Course level",
}
NOT_RECORDED = "not recorded"
OTHERS = {
    "sector": "Other sectors",
    "agency": "Other agencies",
    "role": "Other roles",
    "level": "Other levels",
}
# The figures of a row, each with the count it rests on: (count field, sum field).
MEASURES: dict[str, tuple[str, str]] = {
    "satisfaction": ("ratings", "rating_sum"),
    "knowledge": ("pairs", "change_sum"),
    "applied": ("applied_answers", "applied_yes"),
}


def _groups() -> dict[Dimension, ColumnElement[Any]]:
    return {
        "sector": func.coalesce(AGENCY.c.sector, NO_SECTOR),
        "agency": func.coalesce(AGENCY.c.name, NO_AGENCY),
        "role": func.coalesce(func.nullif(func.trim(PERSON.c.role), ""), NOT_RECORDED),
        "level": func.coalesce(func.nullif(func.trim(COURSE.c.level), ""), NOT_RECORDED),
    }


def _people(joined: FromClause) -> FromClause:
    """``joined`` (which has the booking and the course) with the delegate and their agency."""
    return joined.join(PERSON, PERSON.c.id == BOOKING.c.delegate_id).outerjoin(
        AGENCY, AGENCY.c.id == PERSON.c.agency_id
    )


def _by_dimension(fine: Any, sums: Sequence[str]) -> CompoundSelect[Any]:
    """The fine counts summed up to each dimension, one statement."""
    return union_all(
        *(
            select(
                literal(dimension).label("dimension"),
                fine.c[dimension].label("grp"),
                *(func.sum(fine.c[name]).label(name) for name in sums),
            ).group_by(fine.c[dimension])
            for dimension in DIMENSIONS
        )
    )


def _fine(query_from: FromClause, where: ColumnElement[bool], *figures: Any) -> Any:
    groups = _groups()
    return (
        select(*(groups[d].label(d) for d in DIMENSIONS), *figures)
        .select_from(query_from)
        .where(where)
        .group_by(AGENCY.c.id, *(groups[d] for d in DIMENSIONS))
        .cte()
    )


def breakdowns(
    connection: Connection, period: Period, zone: ZoneInfo
) -> dict[str, list[BreakdownRow]]:
    """Per dimension, a row for each of its groups, largest first."""
    return breakdown_rows([part(connection) for part in breakdown_parts(period, zone)])


BreakdownPart = Callable[[Connection], list[Any]]


def breakdown_parts(period: Period, zone: ZoneInfo) -> list[BreakdownPart]:
    """The four statements of ``breakdowns`` (the matched pairs, the ratings, applying the
    learning and the bookings, longest first), each to run on any connection; their results
    go to ``breakdown_rows``."""
    status = BOOKING.c.status
    held = (BookingStatus.BOOKED.value, *(s.value for s in EXPECTED))
    bookings = _fine(
        _people(
            BOOKING.join(SESSION, SESSION.c.id == BOOKING.c.session_id).join(
                COURSE, COURSE.c.id == SESSION.c.course_id
            )
        ),
        ran_in(period, zone),
        func.count(BOOKING.c.id).label("booked"),
        count_where(status.in_(held)).label("held"),
        count_where(
            status.in_([BookingStatus.ATTENDED.value, BookingStatus.PARTLY_ATTENDED.value])
        ).label("attended"),
        count_where(status == BookingStatus.NO_SHOW.value).label("no_shows"),
    )

    def answers(stage: Stage, item: ColumnElement[bool], *figures: Any) -> Any:
        joined, condition = answers_from(stage)
        return _fine(
            _people(joined),
            and_(ran_in(period, zone), condition, item, ANSWER.c.value_num.is_not(None)),
            *figures,
        )

    value = ANSWER.c.value_num
    ratings = answers(
        Stage.END,
        ANSWER.c.item.like("satisfaction%"),
        func.count(value).label("ratings"),
        func.sum(value).label("rating_sum"),
    )
    applied = answers(
        Stage.IMPACT,
        ANSWER.c.item == "applied",
        func.count(value).label("applied_answers"),
        count_where(value == 1).label("applied_yes"),
    )
    joined, before, after = pair_join(Stage.PRE, Stage.END)
    pairs = _fine(
        _people(joined.join(COURSE, COURSE.c.id == SESSION.c.course_id)),
        and_(ran_in(period, zone), after.c.measure == "knowledge"),
        func.count().label("pairs"),
        func.sum(after.c.value_num - before.c.value_num).label("change_sum"),
    )
    queries = [
        _by_dimension(pairs, ("pairs", "change_sum")),
        _by_dimension(ratings, ("ratings", "rating_sum")),
        _by_dimension(applied, ("applied_answers", "applied_yes")),
        _by_dimension(bookings, ("booked", "held", "attended", "no_shows")),
    ]
    return [_reading(query) for query in queries]


def _reading(query: CompoundSelect[Any]) -> BreakdownPart:
    return lambda connection: [row._mapping for row in connection.execute(query)]


def breakdown_rows(results: Iterable[list[Any]]) -> dict[str, list[BreakdownRow]]:
    """The rows of ``breakdown_parts``' statements put together, per dimension and group."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        for row in result:
            values = found.setdefault((row["dimension"], row["grp"]), {})
            values.update({k: v for k, v in row.items() if k not in ("dimension", "grp")})
    rows: dict[str, list[BreakdownRow]] = {dimension: [] for dimension in DIMENSIONS}
    for (dimension, group), values in found.items():
        rows[dimension].append(_row(dimension, str(group), values))
    for listed in rows.values():
        listed.sort(key=lambda row: (-row.booked, row.group.casefold(), row.group))
    return rows


def _row(dimension: str, group: str, values: dict[str, Any]) -> BreakdownRow:
    def n(key: str) -> int:
        return int(values.get(key) or 0)

    def total(key: str) -> float:
        return float(values.get(key) or 0)

    return BreakdownRow(
        dimension,
        group,
        booked=n("booked"),
        held=n("held"),
        attended=n("attended"),
        no_shows=n("no_shows"),
        ratings=n("ratings"),
        rating_sum=total("rating_sum"),
        pairs=n("pairs"),
        change_sum=total("change_sum"),
        applied_answers=n("applied_answers"),
        applied_yes=n("applied_yes"),
    )


def hide_small_breakdowns(
    found: dict[str, list[BreakdownRow]], smallest: int
) -> dict[str, list[BreakdownRow]]:
    """The anonymous edition's breakdowns: groups of fewer than ``smallest`` bookings put
    together as "Other ..." (joined by the smallest others until that row is large enough),
    then each figure from fewer than ``smallest`` answers left out, and the next smallest with
    it while what is left out rests on 1 to ``smallest - 1`` (a total elsewhere less the rows
    shown would give it back)."""
    shown: dict[str, list[BreakdownRow]] = {}
    for dimension, rows in found.items():
        ordered = sorted(rows, key=lambda row: (row.booked, row.group.casefold()))
        small = [row for row in ordered if row.booked < smallest]
        large = [row for row in ordered if row.booked >= smallest]
        while small and sum(row.booked for row in small) < smallest and large:
            small.append(large.pop(0))
        kept = [row for row in rows if row in large]
        if small:
            kept.append(_sum(dimension, OTHERS[dimension], small))
        for measure, (count_field, _) in MEASURES.items():
            candidates = sorted(
                (row for row in kept if getattr(row, count_field)),
                key=lambda row: getattr(row, count_field),
            )
            hidden_n = 0
            to_hide: set[str] = set()
            for row in candidates:
                n = getattr(row, count_field)
                if n < smallest or 0 < hidden_n < smallest:
                    to_hide.add(row.group)
                    hidden_n += n
            kept = [
                dataclasses.replace(row, hidden=row.hidden | {measure})
                if row.group in to_hide
                else row
                for row in kept
            ]
        shown[dimension] = kept
    return shown


def _sum(dimension: str, group: str, rows: Sequence[BreakdownRow]) -> BreakdownRow:
    total = BreakdownRow(dimension, group)
    for row in rows:
        total = dataclasses.replace(
            total,
            booked=total.booked + row.booked,
            held=total.held + row.held,
            attended=total.attended + row.attended,
            no_shows=total.no_shows + row.no_shows,
            ratings=total.ratings + row.ratings,
            rating_sum=total.rating_sum + row.rating_sum,
            pairs=total.pairs + row.pairs,
            change_sum=total.change_sum + row.change_sum,
            applied_answers=total.applied_answers + row.applied_answers,
            applied_yes=total.applied_yes + row.applied_yes,
        )
    return total


# The summary's figures (``surveys.report.trend.measures``) each breakdown measure adds up to.
SUMMARY_MEASURES: dict[str, MeasureName] = {
    "satisfaction": "satisfaction",
    "knowledge": ("pre to end", "knowledge"),
    "applied": "applied",
}


def hide_measures(
    found: dict[str, list[BreakdownRow]], summary_hidden: Iterable[MeasureName]
) -> dict[str, list[BreakdownRow]]:
    """The breakdowns with every row's figure left out where the period's own figure is.

    A dimension's rows add up to the period's figure: with that figure left out (because the
    rows of some other table, less it, would give few people's answers back), the rows shown
    in full would give it back again.
    """
    hidden = set(summary_hidden)
    measures = {name for name, key in SUMMARY_MEASURES.items() if key in hidden}
    if not measures:
        return found
    return {
        dimension: [dataclasses.replace(row, hidden=row.hidden | measures) for row in rows]
        for dimension, rows in found.items()
    }
