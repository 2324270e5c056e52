"""Sessions and bookings: ``/admin/sessions`` (search and filter), a session's page, and
cancelling a booking on a delegate's behalf (with a confirmation step), under the policy, by
the same ``schedules.cancellation.cancel_booking`` as ``evalbot cancel``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from bot.web.admin.auth import CoordinatorDep
from bot.web.admin.pages import message, render
from bot.web.deps import NowDep, PolicyDep, SessionDep, SettingsDep
from schedules.cancellation import CancelStatus, cancel_booking, cancellation_terms
from surveys.console import DELEGATE_STAGES, session_responses
from surveys.console_search import When, find_sessions, roster, session_line
from surveys.models import Booking, CourseSession, Person, Stage
from surveys.trainer_answers import session_trainer_report

router = APIRouter()

PAGE_SIZE = 50
WHENS: dict[str, str] = {"upcoming": "Upcoming", "past": "Past", "all": "All"}


def parse_day(text: str) -> date | None:
    """``2026-03-16`` (as a date field sends it) or ``16/03/2026``; None when it is neither."""
    text = text.strip()
    for parse in (date.fromisoformat, lambda t: datetime.strptime(t, "%d/%m/%Y").date()):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


@router.get("/admin/sessions", response_class=HTMLResponse)
def session_list(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    q: Annotated[str, Query(max_length=200)] = "",
    on: Annotated[str, Query(alias="date", max_length=20)] = "",
    when: Annotated[str, Query()] = "upcoming",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """Sessions by course, session reference or date; upcoming or past."""
    chosen: When = "past" if when == "past" else "all" if when == "all" else "upcoming"
    day = parse_day(on) if on.strip() else None
    error = None
    if on.strip() and day is None:
        error = f"Enter the date as a day, month and year, like 16/03/2026 (you entered {on!r})"
    found = (
        []
        if error
        else find_sessions(
            session,
            now=now,
            zone=settings.zone,
            text=q,
            on=day,
            when=chosen,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
    )
    return render(
        request,
        "web/admin/sessions.html",
        {
            "page_title": "Sessions",
            "sessions": found[:PAGE_SIZE],
            "more": len(found) > PAGE_SIZE,
            "page": page,
            "q": q,
            "on": on,
            "when": chosen,
            "whens": WHENS,
            "error": error,
        },
        status=400 if error else 200,
    )


def _not_found(request: Request) -> HTMLResponse:
    return message(
        request,
        "Session not found",
        "There is no such session: it may have been removed, or the address is wrong.",
        status=404,
        link=("Find a session", "/admin/sessions"),
    )


@router.get("/admin/sessions/{session_id}", response_class=HTMLResponse)
def session_page(
    request: Request, session_id: int, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """A session: its places, its delegates and where each stands with each survey."""
    line = session_line(session, session_id)
    if line is None:
        return _not_found(request)
    course_session = session.get(CourseSession, session_id)
    assert course_session is not None
    trainer = session.get(Person, course_session.trainer_id) if course_session.trainer_id else None
    return render(
        request,
        "web/admin/session.html",
        {
            "page_title": f"{line.course}, {line.ref}",
            "line": line,
            "course_session": course_session,
            "trainer": trainer,
            "roster": roster(session, session_id),
            "responses": session_responses(session, session_id),
            "stages": [stage.value for stage in DELEGATE_STAGES],
            "stage_names": STAGE_NAMES,
            "trainer_report": session_trainer_report(
                session, session_id, directory=settings.survey_definitions_dir
            ),
        },
    )


STAGE_NAMES = {
    Stage.PRE.value: "Pre-course",
    Stage.END.value: "End of course",
    Stage.IMPACT.value: "Impact",
}


def _booking_on(session: Session, session_id: int, booking_id: int) -> Booking | None:
    booking = session.get(Booking, booking_id)
    return booking if booking is not None and booking.session_id == session_id else None


@router.get(
    "/admin/sessions/{session_id}/bookings/{booking_id}/cancel", response_class=HTMLResponse
)
def confirm_cancel(
    request: Request,
    session_id: int,
    booking_id: int,
    staff: CoordinatorDep,
    session: SessionDep,
    policy: PolicyDep,
    settings: SettingsDep,
    now: NowDep,
) -> HTMLResponse:
    """What cancelling this booking now would do, and a button to do it."""
    booking = _booking_on(session, session_id, booking_id)
    line = session_line(session, session_id)
    if booking is None or line is None:
        return _not_found(request)
    terms = cancellation_terms(session, booking, now=now, policy=policy, zone=settings.zone)
    delegate = session.get(Person, booking.delegate_id)
    return render(
        request,
        "web/admin/cancel_confirm.html",
        {
            "page_title": f"Cancel booking {booking.ref}",
            "booking": booking,
            "delegate": delegate,
            "line": line,
            "terms": terms,
            "late": terms.status is CancelStatus.LATE,
        },
        status=409 if terms.refusal else 200,
    )


@router.post(
    "/admin/sessions/{session_id}/bookings/{booking_id}/cancel", response_class=HTMLResponse
)
def cancel(
    request: Request,
    session_id: int,
    booking_id: int,
    staff: CoordinatorDep,
    session: SessionDep,
    policy: PolicyDep,
    settings: SettingsDep,
    now: NowDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    """Cancel the booking under the policy, as ``evalbot cancel`` does, in the staff's name."""
    booking = _booking_on(session, session_id, booking_id)
    if booking is None:
        return _not_found(request)
    outcome = cancel_booking(
        session,
        booking,
        now=now,
        policy=policy,
        zone=settings.zone,
        secret=settings.secret,
        actor=staff.actor,
        reason=reason or None,
        admin_email=settings.admin_email,
    )
    refused = outcome.status is CancelStatus.REFUSED
    return render(
        request,
        "web/admin/cancel_done.html",
        {
            "page_title": "Not cancelled" if refused else f"Booking {booking.ref} cancelled",
            "outcome": outcome,
            "refused": refused,
            "session_id": session_id,
        },
        status=409 if refused else 200,
    )
