"""Certificates of attendance as one PDF for the training team: a session's
(``/admin/sessions/<id>/certificates.pdf``) or an agency's over a period
(``/admin/certificates``, a form that GETs ``/admin/certificates.pdf``). Only earned
certificates are in the file (``bot.certificate_pdf``); asking when there is none gets a page
that says so."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from bot.certificate_pdf import NoCertificate, agency_certificates_pdf, session_certificates_pdf
from bot.web.admin.pages import CONSOLE_HEADERS, message, render
from bot.web.deps import SessionDep, SettingsDep
from surveys.models import Agency, CourseSession

router = APIRouter()


def _pdf(data: bytes, name: str) -> Response:
    headers = {**CONSOLE_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type="application/pdf", headers=headers)


def _none(request: Request, why: str, back: tuple[str, str]) -> HTMLResponse:
    return message(request, "No certificates to download", why, status=404, link=back)


@router.get("/admin/sessions/{session_id}/certificates.pdf", response_model=None)
def session_certificates(
    request: Request, session_id: int, session: SessionDep, settings: SettingsDep
) -> Response:
    """Every earned certificate of the session's delegates, one page each."""
    course_session = session.get(CourseSession, session_id)
    if course_session is None:
        return _none(request, "There is no such session.", ("Find a session", "/admin/sessions"))
    back = ("Back to the session", f"/admin/sessions/{session_id}")
    try:
        data = session_certificates_pdf(
            session, session_id, partnership=settings.partnership_name, zone=settings.timezone
        )
    except NoCertificate as exc:
        return _none(request, f"{exc} A certificate needs the whole course attended and the "
                     "end-of-course evaluation finished.", back)  # fmt: skip
    safe_ref = "".join(c if c.isalnum() or c in "-_" else "-" for c in course_session.ref)
    return _pdf(data, f"certificates-{safe_ref}.pdf")


@router.get("/admin/certificates", response_class=HTMLResponse)
def certificates_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Choose an agency and, if wanted, the dates of its sessions."""
    agencies = session.exec(select(Agency).order_by(col(Agency.name))).all()
    return render(
        request,
        "web/admin/certificates.html",
        {"page_title": "Certificates for an agency", "agencies": agencies},
    )


@router.get("/admin/certificates.pdf", response_model=None)
def agency_certificates(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    agency: Annotated[str, Query(max_length=20)] = "",
    given_from: Annotated[str, Query(alias="from", max_length=20)] = "",
    given_to: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    """Every earned certificate of the agency's delegates, within the dates if given."""
    back = ("Choose again", "/admin/certificates")
    found = session.get(Agency, int(agency)) if agency.isdigit() else None
    if found is None:
        return _none(request, "There is no such agency.", back)
    try:
        date_from = date.fromisoformat(given_from) if given_from else None
        date_to = date.fromisoformat(given_to) if given_to else None
    except ValueError:
        return _none(request, "A date is not a real date, like 2026-03-31.", back)
    if date_from and date_to and date_from > date_to:
        return _none(request, "The first date is after the last: nothing was made.", back)
    try:
        data = agency_certificates_pdf(
            session,
            found.id,  # type: ignore[arg-type]
            partnership=settings.partnership_name,
            zone=settings.timezone,
            date_from=date_from,
            date_to=date_to,
        )
    except NoCertificate as exc:
        return _none(request, f"{found.name}: {exc}", back)
    return _pdf(data, f"certificates-agency-{found.id}.pdf")
