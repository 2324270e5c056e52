"""The trainer's register behind a personal link (``/register/<token>``), no account needed.

- ``GET /register/<t>``: the session's delegates, each with attended / partly attended / no-show.
- ``POST /register/<t>``: save the marks (``action=save``), or save them and ask to close the
  register (``action=close``: a confirmation page).
- ``POST /register/<t>/close``: close the register.

Marks and closing go through ``schedules.attendance`` (``apply_marks``, ``close_register``), as
``evalbot attendance ... --close`` does: every mark is checked before any is written, closing
queues the no-show notices for the next tick, and a mark changed after closing is audited and
followed by a correction, as the CLI's are. A GET never changes anything; every POST carries a
form token derived from the link's token and must come from this site. Unknown and expired links
get the same page and count towards the per-address limit (``bot.web.security``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from bot.settings import Settings
from bot.templating import local_time
from bot.web.deps import NowDep, SessionDep, SettingsDep, get_policy
from bot.web.pages import busy_page, page
from bot.web.security import (
    bad_token_limiter,
    client_address,
    form_token,
    form_token_valid,
    same_origin,
)
from schedules.attendance import (
    MARKS,
    AttendanceError,
    MarkRequest,
    RegisterError,
    apply_marks,
    close_register,
    parse_mark,
    register_bookings,
    register_opens_at,
)
from schedules.cancellation import facts
from schedules.register_links import session_for_register_token
from surveys.models import (
    Agency,
    BookingStatus,
    Course,
    CourseSession,
    Person,
    SessionStatus,
)
from surveys.tokens import token_hash

router = APIRouter()

LABELS = {
    BookingStatus.ATTENDED: "Attended",
    BookingStatus.PARTLY_ATTENDED: "Partly attended",
    BookingStatus.NO_SHOW: "No-show",
}


def _page(
    settings: Settings, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return page(settings, f"web/{name}.html", context, status)


def _actor(session: Session, course_session: CourseSession) -> str:
    """Who the audit log names: the trainer the link belongs to."""
    trainer = session.get(Person, course_session.trainer_id) if course_session.trainer_id else None
    return f"register-link:{trainer.email if trainer else course_session.trainer_id}"


def _csrf(settings: Settings, token: str) -> str:
    return form_token(settings.secret, f"register:{token_hash(token)}")


def _lookup(
    request: Request, session: Session, settings: Settings, token: str, now: datetime
) -> CourseSession | HTMLResponse:
    """The link's session, or the page to show instead (slow down, unknown, cancelled)."""
    limiter = bad_token_limiter(request)
    address = client_address(request)
    wait = limiter.retry_after(address, now)
    if wait:
        return busy_page(settings, wait)
    course_session = session_for_register_token(session, settings.secret, token, now)
    if course_session is None:
        limiter.record(address, now)
        return _page(settings, "register_unknown", {"page_title": "This link does not work"}, 404)
    if course_session.status == SessionStatus.CANCELLED:
        return _message(
            session,
            settings,
            course_session,
            "This session was cancelled",
            f"Session {course_session.ref} was cancelled, so it has no register to mark. "
            "Nothing needs doing.",
            status=410,
        )
    return course_session


def _posted(
    request: Request,
    session: Session,
    settings: Settings,
    token: str,
    now: datetime,
    csrf: str,
) -> CourseSession | HTMLResponse:
    """As ``_lookup``, or a refusal when the form did not come from the link's own page."""
    found = _lookup(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    if not form_token_valid(settings.secret, f"register:{token_hash(token)}", csrf) or not (
        same_origin(request, settings)
    ):
        return _message(
            session,
            settings,
            found,
            "Nothing was changed",
            "The form you sent did not come from the register page, or it is out of date. "
            "Go back to the register and try again.",
            status=403,
            back=token,
        )
    return found


def _session_details(
    session: Session, settings: Settings, course_session: CourseSession
) -> dict[str, str]:
    course = session.get(Course, course_session.course_id)
    zone = settings.timezone
    starts, ends = course_session.starts_at, course_session.ends_at
    return {
        "course_title": course.title if course else "",
        "session_ref": course_session.ref,
        "date": local_time(starts, zone, "%A %-d %B %Y"),
        "times": f"{local_time(starts, zone, '%H:%M')} to {local_time(ends, zone, '%H:%M')}",
        "venue": "Online" if course_session.online else (course_session.venue or ""),
    }


def _message(
    session: Session,
    settings: Settings,
    course_session: CourseSession,
    title: str,
    message: str,
    *,
    status: int = 200,
    back: str | None = None,
) -> HTMLResponse:
    context = {
        "page_title": title,
        "message": message,
        "session": _session_details(session, settings, course_session),
        "back": back,
    }
    return _page(settings, "register_message", context, status=status)


def _delegates(session: Session, course_session: CourseSession) -> list[dict[str, Any]]:
    rows = []
    for booking in register_bookings(session, course_session):
        found = facts(session, booking)
        agency = session.get(Agency, found.delegate.agency_id) if found.delegate.agency_id else None
        rows.append(
            {
                "id": booking.id,
                "ref": booking.ref,
                "name": found.delegate.name,
                "agency": agency.name if agency else "",
                "status": str(booking.status),
                "notice": booking.no_show_reason,
            }
        )
    return rows


def _register_page(
    request: Request,
    session: Session,
    settings: Settings,
    course_session: CourseSession,
    token: str,
    now: datetime,
    *,
    problems: list[str] | None = None,
    chosen: dict[int, str] | None = None,
    saved: int | None = None,
    status: int = 200,
) -> HTMLResponse:
    course = session.get(Course, course_session.course_id)
    policy = get_policy(request)
    own = policy.for_course(course.title) if course else policy
    opens = register_opens_at(course_session, own)
    delegates = _delegates(session, course_session)
    for row in delegates:
        if chosen and row["id"] in chosen:
            row["status"] = chosen[row["id"]]
    closed_at = course_session.register_closed_at
    context = {
        "page_title": ("Error: " if problems else "") + "Register",
        "session": _session_details(session, settings, course_session),
        "delegates": delegates,
        "marks": [(status.value, LABELS[status]) for status in MARKS],
        "unmarked": sum(1 for row in delegates if row["status"] == BookingStatus.BOOKED),
        "not_open": now < opens,
        "opens": local_time(opens, settings.timezone, "%H:%M on %A %-d %B %Y"),
        "closed": (
            local_time(closed_at, settings.timezone, "%H:%M on %A %-d %B %Y") if closed_at else None
        ),
        "problems": problems or [],
        "saved": saved,
        "csrf": _csrf(settings, token),
    }
    return _page(settings, "register", context, status=status)


@router.get("/register/{token}", response_class=HTMLResponse)
def register_page(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    saved: str | None = None,
) -> Response:
    """The register: every delegate with their mark, to change and save, then close."""
    found = _lookup(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    count = int(saved) if saved is not None and saved.isdigit() and len(saved) < 6 else None
    return _register_page(request, session, settings, found, token, now, saved=count)


def _requests(
    form: dict[str, str], delegates: list[dict[str, Any]]
) -> tuple[list[MarkRequest], dict[int, str], list[str]]:
    """The marks chosen on the form, what to show again, and every value that is not a mark."""
    requests: list[MarkRequest] = []
    chosen: dict[int, str] = {}
    problems: list[str] = []
    for row in delegates:
        value = form.get(f"mark-{row['id']}")
        if value is None:
            continue
        try:
            status = parse_mark(value)
        except AttendanceError as exc:
            problems.append(f"{row['name']} ({row['ref']}): {exc}")
            continue
        chosen[row["id"]] = status.value
        requests.append(MarkRequest(row["ref"], status, option=row["name"]))
    return requests, chosen, problems


async def _form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (the marks are one field per delegate)."""
    raw = await request.form()
    return {key: value for key, value in raw.items() if isinstance(value, str)}


@router.post("/register/{token}", response_class=HTMLResponse)
def register_submit(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    form: Annotated[dict[str, str], Depends(_form_fields)],
) -> Response:
    """Save the marks; with ``action=close``, then ask to confirm closing the register."""
    found = _posted(request, session, settings, token, now, form.get("csrf", ""))
    if isinstance(found, Response):
        return found
    delegates = _delegates(session, found)
    requests, chosen, problems = _requests(form, delegates)
    if problems:
        return _register_page(
            request,
            session,
            settings,
            found,
            token,
            now,
            problems=problems,
            chosen=chosen,
            status=422,
        )
    try:
        results = apply_marks(
            session,
            requests,
            now=now,
            actor=_actor(session, found),
            policy=get_policy(request),
            zone=settings.zone,
            admin=True,  # corrections after closing, as the CLI makes them
            course_session=found,
            secret=settings.secret,
        )
    except RegisterError as exc:
        session.rollback()
        return _register_page(
            request,
            session,
            settings,
            found,
            token,
            now,
            problems=exc.problems,
            chosen=chosen,
            status=422,
        )
    changed = sum(1 for result in results if result.changed)
    if form.get("action") == "close" and found.register_closed_at is None:
        return _confirm_page(request, session, settings, found, token, now)
    return RedirectResponse(f"/register/{token}?saved={changed}", status_code=303)


def _confirm_page(
    request: Request,
    session: Session,
    settings: Settings,
    course_session: CourseSession,
    token: str,
    now: datetime,
) -> HTMLResponse:
    delegates = _delegates(session, course_session)
    waiting = [row for row in delegates if row["status"] == BookingStatus.BOOKED]
    if waiting:
        names = ", ".join(f"{row['name']} ({row['ref']})" for row in waiting)
        problem = (
            f"{len(waiting)} still to mark: {names}. Mark everyone attended, partly attended or "
            "no-show before closing the register. Your other marks are saved."
        )
        return _register_page(
            request, session, settings, course_session, token, now, problems=[problem], status=409
        )
    counts = [
        (label, sum(1 for row in delegates if row["status"] == status.value))
        for status, label in LABELS.items()
    ]
    no_shows = [row for row in delegates if row["status"] == BookingStatus.NO_SHOW]
    context = {
        "page_title": "Close the register?",
        "session": _session_details(session, settings, course_session),
        "counts": counts,
        "no_shows": no_shows,
        "csrf": _csrf(settings, token),
        "token": token,
    }
    return _page(settings, "register_confirm", context)


@router.post("/register/{token}/close", response_class=HTMLResponse)
def register_close(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Close the register: the no-show notices go out with the next tick."""
    found = _posted(request, session, settings, token, now, csrf)
    if isinstance(found, Response):
        return found
    try:
        closed = close_register(
            session,
            found,
            now=now,
            actor=_actor(session, found),
            policy=get_policy(request),
            zone=settings.zone,
        )
    except AttendanceError as exc:
        session.rollback()
        return _register_page(
            request, session, settings, found, token, now, problems=[str(exc)], status=409
        )
    if not closed:
        return _message(
            session,
            settings,
            found,
            "The register was already closed",
            "Nothing was changed. You can still correct a mark on the register.",
            back=token,
        )
    return _message(
        session,
        settings,
        found,
        "The register is closed",
        "Thank you. Each delegate who did not attend, and the line manager who approved their "
        "booking, will be told shortly; those who attended can get their certificate once they "
        "finish the evaluation. If a mark turns out to be wrong, you can still correct it on the "
        "register.",
        back=token,
    )
