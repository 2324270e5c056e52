"""Responses (``/admin/responses``): what a session's or a course's delegates answered.

Each scale question's distribution and mean, the matched pre-course to end-of-course change with
its n, and every free-text answer (accessibility comments included), from
``surveys.responses``; the same as CSV.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func
from sqlmodel import col, select

from bot.web.admin.pages import CONSOLE_HEADERS, message, render
from bot.web.deps import NowDep, SessionDep, SettingsDep
from surveys.models import Booking, Course, CourseSession, SurveyInvitation
from surveys.responses import (
    Responses,
    Scope,
    course_scope,
    responses,
    session_scope,
)
from surveys.responses_csv import responses_csv

router = APIRouter()

RECENT_SESSIONS = 30
STAGE_NAMES = {
    "pre": "Pre-course",
    "end": "End of course",
    "impact": "Impact",
    "manager": "Manager",
    "trainer": "Trainer",
}


@router.get("/admin/responses", response_class=HTMLResponse)
def responses_index(request: Request, session: SessionDep, now: NowDep) -> HTMLResponse:
    """The courses, and the latest sessions that have run, each with a link to its responses."""
    answered = (
        select(CourseSession.course_id, func.count(func.distinct(col(SurveyInvitation.id))))
        .join(Booking, col(Booking.session_id) == col(CourseSession.id))
        .join(SurveyInvitation, col(SurveyInvitation.booking_id) == col(Booking.id))
        .where(col(SurveyInvitation.started_at).is_not(None))
        .group_by(col(CourseSession.course_id))
    )
    started = dict(session.exec(answered).all())
    courses = [
        {"id": course.id, "title": course.title, "started": started.get(course.id or 0, 0)}
        for course in session.exec(select(Course).order_by(col(Course.title))).all()
    ]
    recent = session.exec(
        select(CourseSession, Course)
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .where(col(CourseSession.starts_at) <= now)
        .order_by(col(CourseSession.starts_at).desc())
        .limit(RECENT_SESSIONS)
    ).all()
    sessions = [
        {"id": row.id, "ref": row.ref, "course": course.title, "starts_at": row.starts_at}
        for row, course in recent
    ]
    return render(
        request,
        "web/admin/responses_index.html",
        {"page_title": "Responses", "courses": courses, "sessions": sessions},
    )


def _page(request: Request, result: Responses, csv_path: str, back: str | None) -> HTMLResponse:
    return render(
        request,
        "web/admin/responses.html",
        {
            "page_title": f"Responses: {result.scope.title}",
            "result": result,
            "stage_names": STAGE_NAMES,
            "csv_path": csv_path,
            "back": back,
        },
    )


def _csv(result: Responses) -> Response:
    # utf-8-sig: Excel, which most partnerships open CSVs with, then reads the accents right.
    body = responses_csv(result).encode("utf-8-sig")
    headers = {
        **CONSOLE_HEADERS,
        "Content-Disposition": f'attachment; filename="responses-{result.scope.slug}.csv"',
    }
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


def _session_scope(session: SessionDep, session_id: int) -> Scope | None:
    course_session = session.get(CourseSession, session_id)
    return session_scope(session, course_session) if course_session else None


def _course_scope(session: SessionDep, course_id: int) -> Scope | None:
    course = session.get(Course, course_id)
    return course_scope(course) if course else None


def _missing(request: Request, what: str) -> HTMLResponse:
    return message(
        request,
        f"No such {what}",
        f"There is no {what} at this address. Choose one from the list of responses.",
        status=404,
        link=("Back to responses", "/admin/responses"),
    )


@router.get("/admin/responses/session/{session_id}", response_class=HTMLResponse)
def session_responses(
    session_id: int, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """One session's responses."""
    scope = _session_scope(session, session_id)
    if scope is None:
        return _missing(request, "session")
    result = responses(session, scope, directory=settings.survey_definitions_dir)
    path = f"/admin/responses/session/{session_id}"
    return _page(
        request, result, f"{path}/responses.csv", f"/admin/responses/course/{scope.course_id}"
    )


@router.get("/admin/responses/session/{session_id}/responses.csv")
def session_responses_csv(
    session_id: int, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    scope = _session_scope(session, session_id)
    if scope is None:
        return _missing(request, "session")
    return _csv(responses(session, scope, directory=settings.survey_definitions_dir))


@router.get("/admin/responses/course/{course_id}", response_class=HTMLResponse)
def course_responses(
    course_id: int, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """Every session of one course together."""
    scope = _course_scope(session, course_id)
    if scope is None:
        return _missing(request, "course")
    result = responses(session, scope, directory=settings.survey_definitions_dir)
    return _page(request, result, f"/admin/responses/course/{course_id}/responses.csv", None)


@router.get("/admin/responses/course/{course_id}/responses.csv")
def course_responses_csv(
    course_id: int, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    scope = _course_scope(session, course_id)
    if scope is None:
        return _missing(request, "course")
    return _csv(responses(session, scope, directory=settings.survey_definitions_dir))
