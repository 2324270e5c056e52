"""The annual report as files: ``report.html`` with each quarter beside the others and the
year, trend charts, and a CSV per table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy.orm import Session

from bot.report.breakdowns import breakdown_tables, target_table
from bot.report.csvfile import write_table
from bot.report.files import ReportFiles
from bot.report.trainers import annual_trainer_table
from bot.report.trend import trend_charts, trend_tables
from bot.settings import REPORT_MIN_GROUP
from bot.templating import environment
from surveys.report import AnnualReport, Year, annual_report
from surveys.report.targets import check_targets


def write_annual(
    session: Session,
    year: Year,
    out: Path,
    *,
    zone: ZoneInfo,
    now: datetime,
    anonymous: bool = False,
    min_group: int = REPORT_MIN_GROUP,
    partnership: str = "Safeguarding Children Partnership",
    targets: dict[str, float] | None = None,
    notes: Markup | None = None,
) -> tuple[AnnualReport, ReportFiles]:
    """Compute the year's figures, quarter by quarter, and write the report into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    report = annual_report(
        session, year, zone=zone, now=now, smallest=min_group if anonymous else None
    )
    files = ReportFiles(folder=out, html=out / "report.html")
    tables = trend_tables(report.columns, prefix="annual", smallest=report.smallest_group)
    tables.update(breakdown_tables(report.breakdowns, report.smallest_group, what="year"))
    if targets:
        tables["targets"] = target_table(check_targets(report.whole, targets), zone)
    if report.trainers and report.trainers[-1][1].sent:
        tables["annual_trainer_reports"] = annual_trainer_table(report.trainers)
    for table in tables.values():
        files.csvs.append(write_table(out, table, zone))
    html = (
        environment()
        .get_template("reports/annual.html")
        .render(
            report=report,
            year=year,
            tables=tables,
            charts=trend_charts(report.quarters),
            zone=zone,
            partnership=partnership,
            anonymous=anonymous,
            csv_files=[path.name for path in files.csvs],
            notes=notes,
        )
    )
    files.html.write_text(html, encoding="utf-8")
    return report, files
