"""The annual report's figures: each quarter of the year beside the others, and the year."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from surveys.report.breakdowns import (
    breakdown_parts,
    breakdown_rows,
    hide_measures,
    hide_small_breakdowns,
)
from surveys.report.parallel import run_parts
from surveys.report.periods import Period, Quarter, Year
from surveys.report.rows import BreakdownRow, PeriodSummary
from surveys.report.trainers import TrainerReports, trainer_totals
from surveys.report.trend import combine, measures, period_summary, suppress_small


@dataclass
class AnnualReport:
    year: Year
    zone: ZoneInfo
    generated_at: datetime
    quarters: list[PeriodSummary]
    whole: PeriodSummary  # the year as one period
    smallest_group: int | None = None
    # The year by "sector", "agency", "role" and "level".
    breakdowns: dict[str, list[BreakdownRow]] = field(default_factory=dict)
    # The trainers' reports counted per quarter and for the year: (label, totals).
    trainers: list[tuple[str, TrainerReports]] = field(default_factory=list)

    @property
    def columns(self) -> list[PeriodSummary]:
        return [*self.quarters, self.whole]


def annual_report(
    session: Session, year: Year, *, zone: ZoneInfo, now: datetime, smallest: int | None = None
) -> AnnualReport:
    """Every quarter's headline figures and the year's, each from the quarterly sections.

    The quarters and the statements of the year's breakdowns run two at a time, each on a
    connection of its own (``run_parts``). With ``smallest`` (the anonymous edition) a survey
    figure from fewer people is left out.
    """

    def quarter_part(quarter: Quarter) -> Callable[[Connection], PeriodSummary]:
        return lambda connection: period_summary(connection, quarter, zone, now)

    grouped = breakdown_parts(year, zone)
    # Longest first: the year's matched pairs, then the quarters, then the rest.
    parts = [grouped[0], *(quarter_part(q) for q in year.quarters), *grouped[1:]]
    results = run_parts(session, parts, prefix="annual")
    summaries: list[PeriodSummary] = results[1:5]
    found = breakdown_rows([results[0], *results[5:]])
    # The year is its quarters put together; its breakdowns are counted over the year itself.
    summaries.append(combine(year.label, summaries))
    if smallest is not None:
        quarters = summaries[:4]
        summaries = [
            *(suppress_small(summary, smallest) for summary in quarters),
            suppress_small(summaries[4], smallest, parts=quarters),
        ]
        found = hide_measures(
            hide_small_breakdowns(found, smallest),
            (key for key, m in measures(summaries[4]).items() if m.suppressed),
        )
    periods: list[Period] = [*year.quarters, year]
    trainers = [
        (period.label, trainer_totals(session.connection(), period, zone)) for period in periods
    ]
    return AnnualReport(
        year=year,
        zone=zone,
        generated_at=now,
        quarters=summaries[:4],
        whole=summaries[4],
        smallest_group=smallest,
        breakdowns=found,
        trainers=trainers,
    )
