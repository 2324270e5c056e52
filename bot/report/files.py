"""Writing the report: ``report.html`` and a CSV per table."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.report.breakdowns import breakdown_tables, target_table
from bot.report.cells import (
    STAGE_NAMES,
    show,
)
from bot.report.charts import (
    charts,
    load_matplotlib,
)
from bot.report.csvfile import write_csv, write_table
from bot.report.levels import kirkpatrick
from bot.report.tables import (
    build_tables,
    satisfaction_pivot,
)
from bot.report.trainers import trainer_table
from bot.report.trend import trend_tables
from bot.settings import REPORT_MIN_GROUP
from bot.templating import environment
from surveys.models import Stage
from surveys.report import (
    NO_AGENCY,
    Quarter,
    QuarterlyReport,
    all_examples,
    quarterly_report,
    suppress_small_groups,
)
from surveys.report.targets import check_targets
from surveys.report.voices import ACCESSIBILITY_OPTIONS

# Writing ---------------------------------------------------------------------------------------


@dataclass
class ReportFiles:
    folder: Path
    html: Path
    csvs: list[Path] = field(default_factory=list)


def write_report(
    session: Session,
    quarter: Quarter,
    out: Path,
    *,
    zone: ZoneInfo,
    now: datetime,
    no_show_alert_rate: float,
    anonymous: bool = False,
    min_group: int = REPORT_MIN_GROUP,
    partnership: str = "Safeguarding Children Partnership",
    definitions_dir: Path | None = None,
    examples_per_course: int = 3,
    targets: dict[str, float] | None = None,
    notes: Markup | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReportFiles:
    """Compute the quarter's figures and write ``report.html`` and the CSVs into ``out``."""
    step = progress or (lambda _: None)
    out.mkdir(parents=True, exist_ok=True)
    step("figures")
    files = ReportFiles(folder=out, html=out / "report.html")
    bind = session.get_bind()
    smallest = min_group if anonymous else None
    examples_path = out / "impact_examples.csv"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-files") as pool:
        # matplotlib takes a second to import: it loads while the database works, and every
        # example goes to its CSV meanwhile, on a connection of its own.
        loading = pool.submit(load_matplotlib)
        writing = (
            pool.submit(_write_examples, bind, examples_path, quarter, zone, smallest)
            if isinstance(bind, Engine)
            else None
        )
        report = quarterly_report(
            session,
            quarter,
            zone=zone,
            now=now,
            no_show_alert_rate=no_show_alert_rate,
            examples_per_course=examples_per_course,
            definitions_dir=definitions_dir,
        )
        if anonymous:
            report = suppress_small_groups(report, min_group)
        loading.result()
        if writing is None:
            _write_examples(session.connection(), examples_path, quarter, zone, smallest)
        tables = build_tables(report, anonymous=anonymous)
        if report.summary is not None and report.previous is not None:
            tables.update(
                trend_tables(
                    [report.previous, report.summary],
                    prefix="compared",
                    smallest=report.smallest_group,
                    compare=True,
                )
            )
        tables.update(breakdown_tables(report.breakdowns, report.smallest_group, what="quarter"))
        if targets and report.summary is not None:
            tables["targets"] = target_table(check_targets(report.summary, targets), zone)
        if report.trainers is not None and report.trainers.rows:
            tables["trainer_reports"] = trainer_table(report.trainers, anonymous=anonymous)
        step("tables")
        for table in tables.values():
            files.csvs.append(write_table(out, table, zone))
        step("charts")
        drawn = charts(report)
        if writing is not None:
            writing.result()
    files.csvs.append(examples_path)
    step("page")
    headers, pivot = satisfaction_pivot(report)
    html = (
        environment()
        .get_template("reports/quarterly.html")
        .render(
            report=report,
            quarter=quarter,
            tables=tables,
            charts=drawn,
            zone=zone,
            partnership=partnership,
            anonymous=anonymous,
            satisfaction_headers=headers,
            satisfaction_rows=pivot,
            headline=headline(report),
            csv_files=[p.name for p in files.csvs],
            no_agency=NO_AGENCY,
            stage_names=STAGE_NAMES,
            levels=kirkpatrick(report),
            notes=notes,
            accessibility_options=ACCESSIBILITY_OPTIONS,
        )
    )
    files.html.write_text(html, encoding="utf-8")
    return files


def _write_examples(
    source: Engine | Connection,
    path: Path,
    quarter: Quarter,
    zone: ZoneInfo,
    smallest: int | None,
) -> None:
    def write(connection: Connection) -> None:
        rows = all_examples(connection, quarter, zone, smallest=smallest)
        write_csv(path, ["course", "example"], ([row.course, row.text] for row in rows))

    if isinstance(source, Engine):
        with source.connect() as connection:
            write(connection)
    else:
        write(source)


def headline(report: QuarterlyReport) -> list[tuple[str, str, str]]:
    """The figures at the top of the page: (value, label, note), each read from a SQL row."""
    zone = report.zone
    end = next((r for r in report.responses if r.stage == Stage.END.value), None)
    knowledge = next(
        (
            r
            for r in report.change
            if r.course == "All courses" and r.transition == "pre to end"
            and r.measure == "knowledge"
        ),
        None,
    )  # fmt: skip
    applied = next((r for r in report.applied if r.course == "All courses"), None)
    few = f"too few people to show (under {report.smallest_group})"
    return [
        (show(report.overview.sessions_run, "int", zone), "sessions run",
         f"{report.overview.sessions_cancelled} cancelled"
         + (f", {report.overview.sessions_to_come} still to come"
            if report.overview.sessions_to_come else "")),
        (show(report.overview.places, "int", zone), "places offered", ""),
        (show(report.totals.booked, "int", zone), "bookings", ""),
        (show(report.overview.delegates, "int", zone), "people trained",
         "attended all or part"),
        (show(report.totals.no_show_rate, "pct", zone), "no-show rate",
         f"{report.totals.no_shows} no-shows"),
        (show(end.finished_rate if end else None, "pct", zone), "finished the evaluation",
         f"of {end.sent if end else 0} sent"),
        (show(knowledge.mean_change if knowledge else None, "change", zone),
         "knowledge, pre to end",
         few if knowledge and knowledge.suppressed
         else f"{knowledge.pairs if knowledge else 0} matched pairs"),
        (show(applied.share if applied else None, "pct", zone), "applying their learning",
         few if applied and applied.suppressed
         else f"of {applied.answers if applied else 0} asked"),
    ]  # fmt: skip
