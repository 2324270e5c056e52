"""The whole quarterly report, its sections computed together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine
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
from surveys.report.periods import (
    Quarter,
)
from surveys.report.rows import (
    QuarterlyReport,
)
from surveys.report.scrub import name_scrubber
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

    When the session is bound to an engine, the longest queries (the matched pairs and the
    barriers) run on a connection of their own alongside the others: the
    database works on both at once, as SQLite lets go of Python while it runs a query. Both
    read committed data; a write landing between the two reads could show in one and not the
    other, as in any report run while the service works.
    """
    bind = session.get_bind()

    def answers_part(connection: Connection) -> dict[str, Any]:
        _, barrier_labels = item_labels(connection, Stage.IMPACT, definitions_dir)
        barrier_rows, respondents = barriers(connection, quarter, zone, barrier_labels)
        change_rows, outcome_rows = change(connection, quarter, zone)
        return {
            "barriers": barrier_rows,
            "barrier_respondents": respondents,
            "change": change_rows,
            "change_by_outcome": outcome_rows,
        }

    def own_connection() -> dict[str, Any]:
        assert isinstance(bind, Engine)
        with bind.connect() as connection:
            return answers_part(connection)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
        alongside = pool.submit(own_connection) if isinstance(bind, Engine) else None
        connection = session.connection()
        manager_labels, _ = item_labels(connection, Stage.MANAGER, definitions_dir)
        levels = attendance(connection, quarter, zone)
        parts: dict[str, Any] = {
            "overview": overview(connection, quarter, zone, now),
            "sessions": sessions(connection, quarter, zone),
            "responses": response_rates(connection, quarter, zone),
            "satisfaction": satisfaction(connection, quarter, zone),
            "applied": applied(connection, quarter, zone),
            "manager": manager(connection, quarter, zone, manager_labels),
        }
        parts["examples"], parts["example_count"] = examples(
            connection, quarter, zone, per_course=examples_per_course
        )
        # The previous quarter's headline figures and the breakdowns, while the pairs are
        # matched alongside.
        previous = period_summary(connection, quarter.previous, zone, now)
        parts["breakdowns"] = breakdowns(connection, quarter, zone)
        scrub = name_scrubber(connection)
        parts["voices"] = voices(connection, quarter, zone, scrub)
        parts["trainers"] = trainer_reports(connection, quarter, zone, scrub)
        parts["offers"] = place_offers(connection, quarter, zone)
        parts.update(answers_part(connection) if alongside is None else alongside.result())
    report = QuarterlyReport(
        quarter=quarter,
        zone=zone,
        generated_at=now,
        no_show_alert_rate=no_show_alert_rate,
        totals=levels["all"][0],
        by_agency=levels["agency"],
        by_sector=levels["sector"],
        by_course=levels["course"],
        **parts,
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
