"""The whole quarterly report, its sections computed together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from threading import Lock
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from surveys.models import Stage
from surveys.report.attendance import (
    attendance,
    overview,
    response_rates,
    sessions,
)
from surveys.report.breakdowns import breakdowns
from surveys.report.evaluation import applied, barriers, change, manager, satisfaction
from surveys.report.examples import (
    examples,
)
from surveys.report.issues import issues
from surveys.report.labels import item_labels
from surveys.report.offers import place_offers
from surveys.report.parallel import run_parts
from surveys.report.periods import (
    Quarter,
)
from surveys.report.rows import (
    BarrierRow,
    ManagerRow,
    QuarterlyReport,
)
from surveys.report.scrub import NameScrubber, name_scrubber
from surveys.report.trainers import trainer_reports
from surveys.report.trend import period_summary, summarise
from surveys.report.voices import voices

# The whole report ------------------------------------------------------------------------------


def quarterly_report(
    session: Session,
    quarter: Quarter,
    *,
    zone: ZoneInfo,
    now: datetime,
    no_show_alert_rate: float,
    examples_per_course: int = 3,
    definitions_dir: Path | None = None,
) -> QuarterlyReport:
    """Every figure of the quarterly report.

    When the session is bound to an engine, the sections run two at a time, each on a
    connection of its own (``run_parts``), the longest first.
    """
    scrubbers: list[NameScrubber] = []
    scrubbing = Lock()

    def scrubber(connection: Connection) -> NameScrubber:
        """The names of everyone in the database, read once for the sections that quote."""
        with scrubbing:
            if not scrubbers:
                scrubbers.append(name_scrubber(connection))
            return scrubbers[0]

    def barrier_part(connection: Connection) -> tuple[list[BarrierRow], int]:
        _, barrier_labels = item_labels(connection, Stage.IMPACT, definitions_dir)
        return barriers(connection, quarter, zone, barrier_labels)

    def manager_part(connection: Connection) -> list[ManagerRow]:
        manager_labels, _ = item_labels(connection, Stage.MANAGER, definitions_dir)
        return manager(connection, quarter, zone, manager_labels)

    def in_quarter(section: Callable[..., Any]) -> Callable[[Connection], Any]:
        return lambda connection: section(connection, quarter, zone)

    # Longest first (as measured on a year of 4,000,000 answers), so both workers finish
    # together.
    parts: dict[str, Callable[[Connection], Any]] = {
        "breakdowns": in_quarter(breakdowns),
        "voices": lambda c: voices(c, quarter, zone, scrubber(c)),
        "change": in_quarter(change),
        "barriers": barrier_part,
        "examples": lambda c: examples(
            c, quarter, zone, per_course=examples_per_course, scrub=scrubber(c)
        ),
        "previous": lambda c: period_summary(c, quarter.previous, zone, now),
        "satisfaction": in_quarter(satisfaction),
        "responses": in_quarter(response_rates),
        "levels": in_quarter(attendance),
        "manager": manager_part,
        "applied": in_quarter(applied),
        "sessions": in_quarter(sessions),
        "offers": in_quarter(place_offers),
        "trainers": lambda c: trainer_reports(c, quarter, zone, scrubber(c)),
        "overview": lambda c: overview(c, quarter, zone, now),
    }
    found = dict(zip(parts, run_parts(session, list(parts.values())), strict=True))
    levels = found.pop("levels")
    previous = found.pop("previous")
    found["examples"], found["example_count"] = found["examples"]
    found["barriers"], found["barrier_respondents"] = found["barriers"]
    found["change"], found["change_by_outcome"] = found["change"]
    report = QuarterlyReport(
        quarter=quarter,
        zone=zone,
        generated_at=now,
        no_show_alert_rate=no_show_alert_rate,
        totals=levels["all"][0],
        by_agency=levels["agency"],
        by_sector=levels["sector"],
        by_course=levels["course"],
        **found,
    )
    report.issues = issues(report, now=now)
    report.summary = summarise(
        quarter.label,
        report.overview,
        report.totals,
        report.sessions,
        report.responses,
        report.satisfaction,
        report.change,
        report.applied,
        report.by_sector,
    )
    report.previous = previous
    return report
