"""``evalbot report quarterly``, ``evalbot report annual`` and ``evalbot export answers``."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from markupsafe import Markup
from sqlmodel import Session

from bot.cli.common import fail, load_context, parse_day, parse_now
from surveys import csv_safe
from surveys.models import Stage
from surveys.report import (
    EXPORT_COLUMNS,
    Quarter,
    QuarterError,
    Year,
    export_answers,
    parse_quarter,
    parse_year,
)
from surveys.text import plural

if TYPE_CHECKING:
    from bot.report.files import ReportFiles  # loaded only with the report itself

report_app = typer.Typer(help="Reports for the partnership.", no_args_is_help=True)
export_app = typer.Typer(help="Data for a partnership's own analysis.", no_args_is_help=True)


OUT: Any = typer.Option(..., "--out", help="The folder to write report.html and the CSVs to.")
NOTES: Any = typer.Option(
    None,
    "--notes",
    help="A Markdown file of the training coordinator's notes (audit updates, training "
    "requests, actions for next quarter) to place in the report; HTML in it is shown as text.",
)
PDF: Any = typer.Option(
    False, "--pdf", help="Also write report.pdf beside report.html (A4, with page numbers)."
)
NOW: Any = typer.Option(None, "--now", help="The date the figures stand at (ISO); default: now.")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        fail(f"--out: {out} is a file; give a folder for report.html and the CSVs")


def _written(
    kind: str,
    period: Quarter | Year,
    files: ReportFiles,
    *,
    anonymous: bool,
    pdf: bool,
    started: float,
) -> None:
    """Write the PDF if asked, then say what was written and how long it took."""
    from bot.report.pdf import write_pdf

    pdf_path = write_pdf(files.html) if pdf else None
    took = time.perf_counter() - started
    edition = " (anonymous)" if anonymous else ""
    typer.echo(f"{kind} report for {period.label}, {period.months}{edition}, in {took:.1f} s:")
    typer.echo(f"  {files.html}")
    if pdf_path is not None:
        typer.echo(f"  {pdf_path}")
    typer.echo(f"  {len(files.csvs)} CSV files: {', '.join(p.name for p in files.csvs)}")


@report_app.command("quarterly")
def quarterly(
    quarter: str = typer.Argument(
        ...,
        help="The quarter, like 2026Q1: calendar quarters, or financial ones (Q1 = April to "
        "June) when EVALBOT_QUARTERS=financial.",
    ),
    out: Path = OUT,
    anonymous: bool = typer.Option(
        False,
        "--anonymous",
        help="Leave out people's names (the trainers of each session), the survey figures "
        "that rest on fewer than EVALBOT_REPORT_MIN_GROUP people (default 5) and the agencies "
        "with fewer bookings, so nobody's own answers or attendance can be read off.",
    ),
    notes: Path | None = NOTES,
    pdf: bool = PDF,
    now: str | None = NOW,
) -> None:
    """Write the quarterly report: report.html (prints on A4) and a CSV for every table."""
    from bot.report import write_report

    context = load_context()
    settings = context.settings
    try:
        period = parse_quarter(quarter, settings.quarters)
    except QuarterError as exc:
        fail(f"QUARTER: {exc}")
    _check_out(out)
    moment = parse_now(now, settings)
    notes_html = _notes(notes)
    started = time.perf_counter()
    _load_pdf_meanwhile(pdf)
    with Session(context.engine) as session:
        files = write_report(
            session,
            period,
            out,
            zone=settings.zone,
            now=moment,
            no_show_alert_rate=context.policy.no_show_alert_rate,
            anonymous=anonymous,
            min_group=settings.report_min_group,
            partnership=settings.partnership_name,
            definitions_dir=settings.survey_definitions_dir,
            targets=settings.report.targets,
            notes=notes_html,
        )
    _written("Quarterly", period, files, anonymous=anonymous, pdf=pdf, started=started)


@report_app.command("annual")
def annual(
    year: str = typer.Argument(
        ...,
        help="The year, like 2026: a calendar year, or the financial year that starts in April "
        "of it when EVALBOT_QUARTERS=financial (also written 2026/27).",
    ),
    out: Path = OUT,
    anonymous: bool = typer.Option(
        False,
        "--anonymous",
        help="Leave out the survey figures that rest on fewer than EVALBOT_REPORT_MIN_GROUP "
        "people (default 5).",
    ),
    notes: Path | None = NOTES,
    pdf: bool = PDF,
    now: str | None = NOW,
) -> None:
    """Write the annual report: each quarter of the year beside the others, and the year."""
    from bot.report.annual import write_annual

    context = load_context()
    settings = context.settings
    try:
        period = parse_year(year, settings.quarters)
    except QuarterError as exc:
        fail(f"YEAR: {exc}")
    _check_out(out)
    moment = parse_now(now, settings)
    notes_html = _notes(notes)
    started = time.perf_counter()
    _load_pdf_meanwhile(pdf)
    with Session(context.engine) as session:
        _, files = write_annual(
            session,
            period,
            out,
            zone=settings.zone,
            now=moment,
            anonymous=anonymous,
            min_group=settings.report_min_group,
            partnership=settings.partnership_name,
            targets=settings.report.targets,
            notes=notes_html,
        )
    _written("Annual", period, files, anonymous=anonymous, pdf=pdf, started=started)


def _load_pdf_meanwhile(pdf: bool) -> None:
    """With --pdf, WeasyPrint loads on a thread while the database works."""
    if pdf:
        from bot.report.pdf import loading_weasyprint

        loading_weasyprint()


def _notes(path: Path | None) -> Markup | None:
    """The notes file as HTML, read before anything is written; a clear error if it cannot be."""
    if path is None:
        return None
    from bot.report.levels import NotesError, render_notes

    try:
        return render_notes(path)
    except NotesError as exc:
        fail(f"--notes: {exc}")


@export_app.command("answers")
def answers(
    out: Path | None = typer.Option(
        None, "--out", help="The CSV file to write; without it, the CSV goes to the screen."
    ),
    stage: list[str] = typer.Option(
        [], "--stage", help="Only this stage (pre, end, impact, manager); repeat for several."
    ),
    date_from: str | None = typer.Option(
        None, "--from", help="Sessions on or after this date (31/03/2026 or 2026-03-31)."
    ),
    date_to: str | None = typer.Option(
        None, "--to", help="Sessions on or before this date (31/03/2026 or 2026-03-31)."
    ),
) -> None:
    """Every answer as CSV, one row each, with its booking, course, session and agency."""
    context = load_context()
    stages = []
    for value in stage:
        try:
            stages.append(Stage(value.strip().lower()))
        except ValueError:
            fail(f"--stage: {value!r} is not a stage; use pre, end, impact or manager")
    zone = context.settings.zone
    start, end = parse_day(date_from, "--from", zone), parse_day(date_to, "--to", zone)
    if start and end and start > end:
        fail(f"--from {start:%d/%m/%Y} is after --to {end:%d/%m/%Y}")
    if out is not None and out.parent and not out.parent.exists():
        fail(f"--out: the folder {out.parent} does not exist")
    count = 0
    target = (
        out.open("w", newline="", encoding="utf-8-sig")
        if out is not None
        else contextlib.nullcontext(sys.stdout)
    )
    with Session(context.engine) as session, target as f:
        writer = csv_safe.writer(f)
        writer.writerow(EXPORT_COLUMNS)
        for row in export_answers(
            session.connection(),
            zone=context.settings.zone,
            stages=stages,
            date_from=start,
            date_to=end,
        ):
            writer.writerow(row)
            count += 1
    if out is not None:
        typer.echo(f"Wrote {plural(count, 'answer')} to {out}.")


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
    app.add_typer(export_app, name="export")
