"""The annual report's figures: each quarter of the year beside the others, and the year."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from surveys.report.breakdowns import breakdowns, hide_measures, hide_small_breakdowns
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

    On an engine the four quarters are computed two at a time, each on a connection of its
    own: SQLite lets go of Python while it runs a query, so two run at once on two cores.
    With ``smallest`` (the anonymous edition) a survey figure from fewer people is left out.
    """
    bind = session.get_bind()
    if isinstance(bind, Engine):
        engine = bind

        def quarter_on_own(quarter: Quarter) -> PeriodSummary:
            with engine.connect() as connection:
                return period_summary(connection, quarter, zone, now)

        def breakdowns_on_own() -> dict[str, list[BreakdownRow]]:
            with engine.connect() as connection:
                return breakdowns(connection, year, zone)

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="annual") as pool:
            grouped = pool.submit(breakdowns_on_own)
            summaries = list(pool.map(quarter_on_own, year.quarters))
            found = grouped.result()
    else:
        connection: Connection = session.connection()
        summaries = [period_summary(connection, q, zone, now) for q in year.quarters]
        found = breakdowns(connection, year, zone)
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
