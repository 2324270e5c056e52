"""The headline figures of a period, side by side across periods: the annual report's columns,
and the quarterly report's comparison with the quarter before.

Each summary is made of the same section functions the quarterly report runs (``overview``,
``attendance``, ``response_rates``, ``satisfaction``, ``change``, ``applied``), over a quarter
or a whole year. Where a figure joins several rows (all the satisfaction items, say) it is
worked out from their counts and sums, never by averaging averages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from surveys.models import BOOKING_STAGES, SessionStatus
from surveys.report.attendance import attendance, overview, response_rates, sessions
from surveys.report.evaluation import applied, change, satisfaction
from surveys.report.periods import Period
from surveys.report.query import TRANSITIONS
from surveys.report.rows import (
    AppliedRow,
    AttendanceRow,
    ChangeRow,
    Measured,
    Overview,
    PeriodSummary,
    ResponseRow,
    SatisfactionRow,
    SessionRow,
)

ALL_COURSES = "All courses"


def period_summary(
    connection: Connection, period: Period, zone: ZoneInfo, now: datetime
) -> PeriodSummary:
    """The headline figures of one period, from the quarterly report's section functions."""
    per_course, _ = change(connection, period, zone)
    levels = attendance(connection, period, zone)
    return summarise(
        period.label,
        overview(connection, period, zone, now),
        levels["all"][0],
        sessions(connection, period, zone),
        response_rates(connection, period, zone),
        satisfaction(connection, period, zone),
        per_course,
        applied(connection, period, zone),
        levels["sector"],
    )


def summarise(
    label: str,
    counts: Overview,
    total: AttendanceRow,
    session_rows: Sequence[SessionRow],
    response_rows: Sequence[ResponseRow],
    satisfaction_rows: Sequence[SatisfactionRow],
    change_rows: Sequence[ChangeRow],
    applied_rows: Sequence[AppliedRow],
    sector_rows: Sequence[AttendanceRow] = (),
) -> PeriodSummary:
    """A period's headline figures from the rows of its sections (a quarterly report's own,
    or those ``period_summary`` computes)."""
    taken = sum(
        row.active
        for row in session_rows
        if row.status != SessionStatus.CANCELLED and row.max_places is not None
    )
    responses = {row.stage: Measured(row.finished_rate, row.sent) for row in response_rows}
    ratings = [row for row in satisfaction_rows if row.course == ALL_COURSES]
    answers = sum(row.answers for row in ratings)
    rating_sum = sum((row.mean or 0.0) * row.answers for row in ratings)
    satisfied = sum(row.satisfied for row in ratings)
    changes = {
        (row.transition, row.measure): Measured(row.mean_change, row.pairs)
        for row in change_rows
        if row.course == ALL_COURSES
    }
    for before, after in TRANSITIONS:
        for measure in ("knowledge", "confidence"):
            changes.setdefault((f"{before.value} to {after.value}", measure), Measured(None, 0))
    applied_all = next((row for row in applied_rows if row.course == ALL_COURSES), None)
    return PeriodSummary(
        label=label,
        sessions_run=counts.sessions_run,
        sessions_cancelled=counts.sessions_cancelled,
        sessions_to_come=counts.sessions_to_come,
        places=counts.places,
        places_taken=taken,
        bookings=total.booked,
        expected=total.attended + total.partly + total.no_shows,
        attended=total.attended + total.partly,
        no_shows=total.no_shows,
        responses=responses,
        satisfaction=Measured(rating_sum / answers if answers else None, answers),
        satisfied=Measured(satisfied / answers if answers else None, answers),
        change=changes,
        applied=Measured(applied_all.share, applied_all.answers)
        if applied_all
        else Measured(None, 0),
        held_by_sector={
            row.group: row.attended + row.partly + row.no_shows + row.unmarked
            for row in sector_rows
        },
    )


def combine(label: str, parts: Sequence[PeriodSummary]) -> PeriodSummary:
    """The summary of a period made of ``parts`` that do not overlap (a year of its quarters:
    a session belongs to the quarter it starts in). Counts add up; each rate and mean is
    worked out again from its parts' counts and sums, never by averaging averages."""

    def total(attribute: str) -> int:
        return sum(getattr(part, attribute) for part in parts)

    def pooled(found: Sequence[Measured]) -> Measured:
        n = sum(m.n for m in found if m.value is not None)
        weighted = sum(m.value * m.n for m in found if m.value is not None)
        return Measured(weighted / n if n else None, sum(m.n for m in found))

    stages = [
        s for s in (stage.value for stage in BOOKING_STAGES) if any(s in p.responses for p in parts)
    ]
    sectors: dict[str, int] = {}
    for part in parts:
        for sector, held in part.held_by_sector.items():
            sectors[sector] = sectors.get(sector, 0) + held
    return PeriodSummary(
        label=label,
        sessions_run=total("sessions_run"),
        sessions_cancelled=total("sessions_cancelled"),
        sessions_to_come=total("sessions_to_come"),
        places=total("places"),
        places_taken=total("places_taken"),
        bookings=total("bookings"),
        expected=total("expected"),
        attended=total("attended"),
        no_shows=total("no_shows"),
        responses={
            stage: pooled([p.responses.get(stage, Measured(None, 0)) for p in parts])
            for stage in stages
        },
        satisfaction=pooled([p.satisfaction for p in parts]),
        satisfied=pooled([p.satisfied for p in parts]),
        change={key: pooled([p.change[key] for p in parts]) for key in parts[0].change},
        applied=pooled([p.applied for p in parts]),
        held_by_sector=sectors,
    )


MeasureKey = str | tuple[str, str]


def measures(summary: PeriodSummary) -> dict[MeasureKey, Measured]:
    """The survey figures of a summary by name: those the anonymous edition may leave out."""
    found: dict[MeasureKey, Measured] = {
        "satisfaction": summary.satisfaction,
        "satisfied": summary.satisfied,
        "applied": summary.applied,
    }
    for key, value in summary.change.items():
        found[key] = value
    return found


def _replace_measures(summary: PeriodSummary, found: dict[MeasureKey, Measured]) -> PeriodSummary:
    return dataclasses.replace(
        summary,
        satisfaction=found["satisfaction"],
        satisfied=found["satisfied"],
        applied=found["applied"],
        change={key: found[key] for key in summary.change},
    )


HIDDEN = Measured(None, 0, True)


def suppress_small(
    summary: PeriodSummary,
    smallest: int,
    *,
    parts: Sequence[PeriodSummary] = (),
    hide: Sequence[MeasureKey] = (),
) -> PeriodSummary:
    """The summary with every survey figure from fewer than ``smallest`` people left out.

    A period's figures join every course, so they rest on many people; a quiet quarter can
    still hold only a few answers, and then its figure goes, as in the quarterly report.
    ``parts`` are the periods this one adds up (the year's quarters): where the parts left
    out rest on 1 to ``smallest - 1`` people, the total goes too, or the total less the parts
    shown would give them back. ``hide``: figures to leave out whatever their number (those
    the quarterly report left out of its "All courses" rows, for the same reason).
    """
    found = measures(summary)
    for key, measured in found.items():
        hidden = sum(part_n for part in parts if 0 < (part_n := measures(part)[key].n) < smallest)
        if 0 < measured.n < smallest or 0 < hidden < smallest or key in hide:
            found[key] = HIDDEN
    return _replace_measures(summary, found)


def stage_order(summaries: Sequence[PeriodSummary]) -> list[str]:
    """The stages any of the summaries has, in the surveys' order."""
    return [
        stage.value
        for stage in BOOKING_STAGES
        if any(stage.value in s.responses for s in summaries)
    ]
