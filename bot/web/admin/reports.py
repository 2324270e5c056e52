"""Reports (``/admin/reports``): produce a quarter's report, then open it or download it.

A coordinator picks a quarter (calendar or financial, as ``EVALBOT_QUARTERS`` says) and the
edition; ``bot.report.write_report`` (what ``evalbot report quarterly`` calls) writes
``report.html`` and its CSVs into a folder of ``EVALBOT_REPORTS_DIR`` named after the quarter
(``2026Q1``, ``2026Q1-anonymous``). It is written into a scratch folder first and moved into place
only once complete, so a failed run leaves the previous report as it was. Anyone signed in can
open ``report.html``, download a CSV, or download the whole folder as a zip.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from bot.report import write_report
from bot.settings import Settings
from bot.web.admin.auth import StaffDep
from bot.web.admin.dashboard import quarter_of
from bot.web.admin.pages import CONSOLE_HEADERS, message, render
from bot.web.deps import NowDep, PolicyDep, SessionDep, SettingsDep
from surveys import audit
from surveys.report import Quarter, QuarterError, parse_quarter

router = APIRouter()

NAME = re.compile(r"^\d{4}Q[1-4](-anonymous)?$")
FILE = re.compile(r"^[a-z0-9_]+\.(csv|html)$")
CHOICES = 8  # quarters offered: this one and the seven before


def _folder(settings: Settings) -> Path:
    return Path(settings.reports_dir)


def _recent_quarters(today: date, scheme: str) -> list[Quarter]:
    current = quarter_of(today, scheme)
    found = []
    year, number = current.year, current.number
    for _ in range(CHOICES):
        found.append(Quarter(year, number, current.scheme))
        year, number = (year - 1, 4) if number == 1 else (year, number - 1)
    return found


def _label(name: str, scheme: str) -> str:
    slug, _, edition = name.partition("-")
    quarter = parse_quarter(slug, "financial" if scheme == "financial" else "calendar")
    return f"{quarter.label} ({quarter.months})" + (", anonymous" if edition else "")


def _made(folder: Path) -> datetime:
    return datetime.fromtimestamp((folder / "report.html").stat().st_mtime, UTC)


def _produced(settings: Settings) -> list[dict[str, Any]]:
    folder = _folder(settings)
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir(), reverse=True):
        if NAME.match(path.name) and (path / "report.html").is_file():
            found.append(
                {
                    "name": path.name,
                    "label": _label(path.name, settings.quarters),
                    "made": _made(path),
                    "csvs": sorted(p.name for p in path.glob("*.csv")),
                }
            )
    return found


@router.get("/admin/reports", response_class=HTMLResponse)
def reports_page(request: Request, settings: SettingsDep, now: NowDep) -> HTMLResponse:
    """Produce a quarter's report; the reports already produced."""
    return _reports_page(request, settings, now)


def _reports_page(
    request: Request,
    settings: Settings,
    now: datetime,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    today = now.astimezone(settings.zone).date()
    return render(
        request,
        "web/admin/reports.html",
        {
            "page_title": ("Error: " if error else "") + "Reports",
            "quarters": _recent_quarters(today, settings.quarters),
            "scheme": settings.quarters,
            "produced": _produced(settings),
            "error": error,
        },
        status=status,
    )


@router.post("/admin/reports", response_class=HTMLResponse)
def produce_report(
    request: Request,
    staff: StaffDep,
    session: SessionDep,
    settings: SettingsDep,
    policy: PolicyDep,
    now: NowDep,
    quarter: Annotated[str, Form(max_length=20)] = "",
    edition: Annotated[str, Form(max_length=20)] = "full",
) -> Response:
    """Write the quarter's report into the reports folder (coordinators only)."""
    try:
        period = parse_quarter(quarter, settings.quarters)
    except QuarterError as exc:
        return _reports_page(request, settings, now, error=f"Quarter: {exc}", status=422)
    anonymous = edition == "anonymous"
    name = period.slug + ("-anonymous" if anonymous else "")
    folder = _folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))
    try:
        write_report(
            session,
            period,
            scratch,
            zone=settings.zone,
            now=now,
            no_show_alert_rate=policy.no_show_alert_rate,
            anonymous=anonymous,
            partnership=settings.partnership_name,
            definitions_dir=settings.survey_definitions_dir,
        )
        target = folder / name
        if target.exists():
            shutil.rmtree(target)
        scratch.rename(target)
    except OSError as exc:
        session.rollback()
        return message(
            request,
            "The report could not be written",
            f"Nothing was changed: {exc.strerror or exc} ({exc.filename or folder}). Check that "
            "EVALBOT_REPORTS_DIR names a folder Evalbot can write to, then try again.",
            status=500,
            tone="warning",
            link=("Back to reports", "/admin/reports"),
        )
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    audit.record(
        session,
        at=now,
        actor=staff.actor,
        action="report.produced",
        entity="report",
        quarter=period.slug,
        scheme=period.scheme,
        anonymous=anonymous,
    )
    return RedirectResponse(f"/admin/reports/{name}", status_code=303)


def _missing(request: Request) -> HTMLResponse:
    return message(
        request,
        "No such report",
        "That report has not been produced. Choose a quarter on the Reports page to produce it.",
        status=404,
        link=("Back to reports", "/admin/reports"),
    )


def _report_folder(settings: Settings, name: str) -> Path | None:
    if not NAME.match(name):
        return None
    path = _folder(settings) / name
    return path if (path / "report.html").is_file() else None


@router.get("/admin/reports/{name}.zip")
def report_zip(name: str, request: Request, settings: SettingsDep) -> Response:
    """report.html and every CSV, in one zip."""
    folder = _report_folder(settings, name)
    if folder is None:
        return _missing(request)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if FILE.match(path.name):
                archive.write(path, f"{name}/{path.name}")
    headers = {
        **CONSOLE_HEADERS,
        "Content-Disposition": f'attachment; filename="evalbot-report-{name}.zip"',
    }
    return Response(buffer.getvalue(), media_type="application/zip", headers=headers)


@router.get("/admin/reports/{name}", response_class=HTMLResponse)
def report_page(name: str, request: Request, settings: SettingsDep) -> HTMLResponse:
    """One produced report: open it, or download it with its CSVs."""
    folder = _report_folder(settings, name)
    if folder is None:
        return _missing(request)
    return render(
        request,
        "web/admin/report.html",
        {
            "page_title": f"Report: {_label(name, settings.quarters)}",
            "name": name,
            "label": _label(name, settings.quarters),
            "made": _made(folder),
            "csvs": sorted(p.name for p in folder.glob("*.csv")),
        },
    )


@router.get("/admin/reports/{name}/{filename}")
def report_file(name: str, filename: str, request: Request, settings: SettingsDep) -> Response:
    """``report.html`` to read in the browser, or one of its CSVs to download."""
    folder = _report_folder(settings, name)
    if folder is None or not FILE.match(filename) or not (folder / filename).is_file():
        return _missing(request)
    path = folder / filename
    if filename.endswith(".html"):
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=CONSOLE_HEADERS)
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename=f"{name}-{filename}",
        headers=CONSOLE_HEADERS,
    )
