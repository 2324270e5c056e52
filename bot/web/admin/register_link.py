"""The trainer's register link from a session's page (``/admin/sessions/<id>/register-link``).

A coordinator can hand the trainer their personal register link (``schedules.register_links``)
without waiting for the reminder: the GET page explains, and its button (a POST, so that the
link is recorded and audited under the coordinator's name) shows the link to copy or open.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bot.links import url_for
from bot.web.admin.auth import StaffDep
from bot.web.admin.pages import message, render
from bot.web.deps import NowDep, SessionDep, SettingsDep
from schedules.register_links import register_link
from surveys import audit
from surveys.models import Course, CourseSession, LinkPurpose, Person, SessionStatus

router = APIRouter()


def _problem(request: Request, course_session: CourseSession | None) -> HTMLResponse | None:
    if course_session is None:
        return message(
            request,
            "Session not found",
            "There is no such session: it may have been removed, or the address is wrong.",
            status=404,
            link=("Find a session", "/admin/sessions"),
        )
    back = ("Back to the session", f"/admin/sessions/{course_session.id}")
    if course_session.status == SessionStatus.CANCELLED:
        return message(
            request, "No register", "The session was cancelled, so it has no register.", link=back
        )
    if course_session.trainer_id is None:
        return message(
            request,
            "No trainer recorded",
            "The register link is personal to the session's trainer, and none is recorded. "
            "Add trainer_name and trainer_email to the booking export and import it again.",
            link=back,
        )
    return None


def _context(session: SessionDep, course_session: CourseSession) -> dict[str, object]:
    course = session.get(Course, course_session.course_id)
    trainer = session.get(Person, course_session.trainer_id)
    return {
        "page_title": f"Register link: {course_session.ref}",
        "course_session": course_session,
        "course": course.title if course else "",
        "trainer": trainer,
        "url": None,
    }


@router.get("/admin/sessions/{session_id}/register-link", response_class=HTMLResponse)
def register_link_page(request: Request, session_id: int, session: SessionDep) -> HTMLResponse:
    """What the register link is, and (for a coordinator) the button that shows it."""
    course_session = session.get(CourseSession, session_id)
    problem = _problem(request, course_session)
    if problem is not None:
        return problem
    assert course_session is not None
    return render(request, "web/admin/register_link.html", _context(session, course_session))


@router.post("/admin/sessions/{session_id}/register-link", response_class=HTMLResponse)
def register_link_show(
    request: Request,
    session_id: int,
    staff: StaffDep,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
) -> HTMLResponse:
    """Record the trainer's register link and show it (coordinators only)."""
    course_session = session.get(CourseSession, session_id)
    problem = _problem(request, course_session)
    if problem is not None:
        return problem
    assert course_session is not None
    purpose, subject = register_link(session, settings.secret, course_session)
    audit.record(
        session,
        at=now,
        actor=staff.actor,
        action="register.link_shown",
        entity="course_session",
        entity_id=course_session.id,
        session_ref=course_session.ref,
    )
    url = url_for(settings, LinkPurpose(purpose), subject)
    return render(
        request, "web/admin/register_link.html", _context(session, course_session) | {"url": url}
    )
