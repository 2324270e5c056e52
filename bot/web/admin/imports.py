"""``/admin/import``: upload a booking system's export, checked whole before anything is written.

The same ``surveys.importer.import_bookings`` as ``evalbot import bookings``: on any problem it
raises ``ImportFailed`` with every one (line and column), and the transaction is rolled back,
so nothing is written. A file that is not a CSV, or larger than 20 MB, gets a page saying so.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import HTMLResponse

from bot.web.admin.auth import MAX_UPLOAD, CoordinatorDep
from bot.web.admin.pages import render
from bot.web.deps import NowDep, SessionDep, SettingsDep
from surveys.importer import REQUIRED, ImportFailed, import_bookings

router = APIRouter()

MAX_SHOWN = 500
# What other files start with: a workbook (xlsx, ods: zip), an old Excel file, a PDF.
SIGNATURES = {
    b"PK\x03\x04": "a spreadsheet workbook (for example .xlsx)",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
    b"%PDF": "a PDF",
}


def not_csv(filename: str, data: bytes) -> str | None:
    """Why the upload is plainly not a CSV file, or None."""
    for signature, what in SIGNATURES.items():
        if data.startswith(signature):
            return f"{filename} is {what}, not a CSV file."
    if b"\x00" in data[:4096]:
        return f"{filename} holds binary data, not text: it is not a CSV file."
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in ("csv", "txt"):
        return f"{filename} is not a .csv file."
    return None


def _page(request: Request, status: int = 200, **context: object) -> HTMLResponse:
    return render(
        request,
        "web/admin/import.html",
        {
            "page_title": "Import bookings",
            "required": REQUIRED,
            "error": None,
            "problems": None,
            "result": None,
            **context,
        },
        status=status,
    )


@router.get("/admin/import", response_class=HTMLResponse)
def import_form(request: Request, staff: CoordinatorDep) -> HTMLResponse:
    """Choose the export to upload."""
    return _page(request)


@router.post("/admin/import", response_class=HTMLResponse)
def upload(
    request: Request,
    staff: CoordinatorDep,
    settings: SettingsDep,
    now: NowDep,
    session: SessionDep,
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Check the whole file, then import it; or list every problem and write nothing."""
    if file is None or not file.filename:
        return _page(request, 400, error="Choose the booking export (a .csv file) to upload.")
    name = file.filename.replace("\\", "/").rsplit("/", 1)[-1]
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return _page(
            request,
            413,
            error=f"{name} is larger than 20 MB, so it was not imported. Check that it is the "
            "booking export; a very large export can be split by date and imported in parts.",
        )
    if not data.strip():
        return _page(request, 400, error=f"{name} is empty: choose the export that has bookings.")
    reason = not_csv(name, data)
    if reason is not None:
        return _page(
            request,
            415,
            error=f"{reason} Nothing was imported. In the booking system or spreadsheet, save "
            "the export as “CSV UTF-8 (comma delimited)” and upload that.",
        )
    try:
        result = import_bookings(session, data, zone=settings.zone, now=now, actor=staff.actor)
    except ImportFailed as failure:
        session.rollback()
        return _page(
            request,
            422,
            filename=name,
            problems=failure.problems[:MAX_SHOWN],
            hidden=max(0, len(failure.problems) - MAX_SHOWN),
            total=len(failure.problems),
        )
    session.commit()
    return _page(request, filename=name, result=result)
