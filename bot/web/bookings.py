"""The booking pages behind personal links: cancel, nominate a replacement, give a reason, and the
certificate of attendance.

- ``/cancel/<t>``: the course, the policy and what cancelling now would do; POST cancels.
- ``/nominate/<t>``: for the approving manager after a late cancellation; POST books a colleague.
- ``/reason/<t>``: for a no-show delegate; POST records the reason.
- ``/certificate/<t>``: the certificate (A4, print-ready), or why there is none yet.

A GET never changes anything (mail scanners open links); every POST carries the page's form token
and must come from this site. Unknown and expired links get the same page, and too many of them
from one address slow that address down (``bot.web.security``).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from bot.links import url_for
from bot.settings import Settings
from bot.templating import local_time
from bot.web.deps import NowDep, SessionDep, SettingsDep
from bot.web.pages import busy_page, page
from bot.web.security import (
    bad_token_limiter,
    client_address,
    form_token,
    form_token_valid,
    same_origin,
)
from schedules.attendance import AttendanceError, record_reason
from schedules.cancellation import (
    BookingFacts,
    CancelStatus,
    NominationError,
    cancel_booking,
    cancellation_terms,
    facts,
    nominate_replacement,
    nomination_problem,
)
from schedules.certificates import certificate_status
from schedules.policy import Policy, load_policy
from surveys.models import Agency, Booking, BookingStatus, LinkPurpose
from surveys.tokens import resolve

router = APIRouter()

ACTOR = "web"


def _page(
    settings: Settings, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    return page(settings, f"web/{name}.html", context, status)


def _message(
    settings: Settings,
    title: str,
    message: str,
    *,
    status: int = 200,
    found: BookingFacts | None = None,
    link: tuple[str, str] | None = None,
) -> HTMLResponse:
    context = {
        "page_title": title,
        "message": message,
        "details": _details(found, settings) if found else None,
        "link": link,
    }
    return _page(settings, "booking_message", context, status=status)


def _policy(request: Request, settings: Settings) -> Policy:
    """The partnership's policy, checked once per app."""
    policy: Policy | None = getattr(request.app.state, "policy", None)
    if policy is None:
        policy = load_policy(settings.policy)
        request.app.state.policy = policy
    return policy


def _details(found: BookingFacts, settings: Settings) -> dict[str, Any]:
    """What each page shows about the booking."""
    course_session = found.course_session
    return {
        "course_title": found.course.title,
        **_when(course_session.starts_at, course_session.ends_at, settings),
        "venue": "Online" if course_session.online else (course_session.venue or ""),
        "delegate_name": found.delegate.name,
        "booking_ref": found.booking.ref,
    }


def _when(starts_at: datetime, ends_at: datetime, settings: Settings) -> dict[str, str]:
    """The day and the times of a session, on the partnership's clock."""
    zone = settings.timezone
    return {
        "date": local_time(starts_at, zone, "%A %-d %B %Y"),
        "times": f"{local_time(starts_at, zone, '%H:%M')} to {local_time(ends_at, zone, '%H:%M')}",
    }


def _booking(
    request: Request,
    session: Session,
    settings: Settings,
    purpose: LinkPurpose,
    token: str,
    now: datetime,
) -> Booking | HTMLResponse:
    """The link's booking, or the page to show instead (slow down, or link not working)."""
    link = resolve(session, purpose, token, now)
    booking = (
        session.get(Booking, link.booking_id)
        if link is not None and link.booking_id is not None
        else None
    )
    if booking is None:
        wait = bad_token_limiter(request).unknown(client_address(request), now)
        if wait:
            return busy_page(settings, wait)
        return _page(settings, "booking_unknown", {"page_title": "This link does not work"}, 404)
    return booking


def _form_scope(purpose: LinkPurpose, booking: Booking) -> str:
    """What a page's form token is for: ``cancel:<booking id>``, ``nominate:...``."""
    return f"{purpose.value}:{booking.id}"


def _form_page(
    settings: Settings,
    found: BookingFacts,
    purpose: LinkPurpose,
    title: str,
    fields: dict[str, Any],
    *,
    error: str | None = None,
) -> HTMLResponse:
    """The page behind a link (``web/booking_<purpose>.html``), with its form: the booking's
    details and ``fields``, and ``error`` (status 422) when what was sent is refused."""
    context = {
        "page_title": ("Error: " if error else "") + title,
        "details": _details(found, settings),
        **fields,
        "error": error,
        "csrf": form_token(settings.secret, _form_scope(purpose, found.booking)),
    }
    return _page(settings, f"booking_{purpose.value}", context, status=422 if error else 200)


def _posted_booking(
    request: Request,
    session: Session,
    settings: Settings,
    purpose: LinkPurpose,
    token: str,
    now: datetime,
    csrf: str,
) -> Booking | HTMLResponse:
    """For a form sent to a link: its booking, or the page to show instead (as ``_booking``, or
    nothing changed when the form did not come from the link's page)."""
    found = _booking(request, session, settings, purpose, token, now)
    if isinstance(found, Response):
        return found
    scope = _form_scope(purpose, found)
    if not form_token_valid(settings.secret, scope, csrf) or not same_origin(request, settings):
        return _message(
            settings,
            "Nothing was changed",
            "The form you sent did not come from this page, or it is out of date. "
            "Go back to the page and try again.",
            status=403,
            link=(token, "Go back to the page"),
        )
    return found


# -- Cancel ---------------------------------------------------------------------------------------


def _moment(when: datetime, settings: Settings) -> str:
    """A deadline as a person reads it: a cut-off at midnight is "the end of" the day before."""
    local = when.astimezone(settings.zone)
    if local.time() == time(0, 0):
        return f"the end of {local - timedelta(days=1):%A %-d %B %Y}"
    return f"{local:%A %-d %B %Y at %H:%M}"


def _cancel_page(
    request: Request, session: Session, settings: Settings, booking: Booking, now: datetime
) -> HTMLResponse:
    policy = _policy(request, settings)
    terms = cancellation_terms(session, booking, now=now, policy=policy, zone=settings.zone)
    fields = {
        "terms": terms,
        "cutoff": _moment(terms.cutoff, settings),
        "can_cancel": terms.status is not CancelStatus.REFUSED,
        "late": terms.status is CancelStatus.LATE,
    }
    found = facts(session, booking)
    return _form_page(settings, found, LinkPurpose.CANCEL, "Cancel your place", fields)


@router.get("/cancel/{token}", response_class=HTMLResponse)
def cancel_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """The course, the cancellation policy, and what cancelling now would do."""
    found = _booking(request, session, settings, LinkPurpose.CANCEL, token, now)
    if isinstance(found, Response):
        return found
    return _cancel_page(request, session, settings, found, now)


@router.post("/cancel/{token}", response_class=HTMLResponse)
def cancel_submit(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Cancel the booking under the policy."""
    found = _posted_booking(request, session, settings, LinkPurpose.CANCEL, token, now, csrf)
    if isinstance(found, Response):
        return found
    outcome = cancel_booking(
        session,
        found,
        now=now,
        policy=_policy(request, settings),
        zone=settings.zone,
        secret=settings.secret,
        actor=ACTOR,
        reason=reason,
        admin_email=settings.admin_email,
    )
    titles = {
        CancelStatus.CANCELLED: "Your place is cancelled",
        CancelStatus.LATE: "Your place is cancelled (late cancellation)",
        CancelStatus.REFUSED: "Your place was not cancelled",
    }
    return _message(
        settings,
        titles[outcome.status],
        outcome.message,
        status=409 if outcome.status is CancelStatus.REFUSED else 200,
        found=facts(session, found),
    )


# -- Nominate -------------------------------------------------------------------------------------


def _nominate_page(
    session: Session,
    settings: Settings,
    booking: Booking,
    *,
    name: str = "",
    email: str = "",
    error: str | None = None,
) -> HTMLResponse:
    found = facts(session, booking)
    agency = session.get(Agency, found.delegate.agency_id) if found.delegate.agency_id else None
    fields = {"agency_name": agency.name if agency else "", "name": name, "email": email}
    title = "Nominate a colleague"
    return _form_page(settings, found, LinkPurpose.NOMINATE, title, fields, error=error)


@router.get("/nominate/{token}", response_class=HTMLResponse)
def nominate_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """The form for the approving manager to pass a late-cancelled place to a colleague."""
    found = _booking(request, session, settings, LinkPurpose.NOMINATE, token, now)
    if isinstance(found, Response):
        return found
    problem = nomination_problem(session, found, now=now)
    if problem is not None:
        return _message(
            settings, "No place to pass on", problem, found=facts(session, found), status=409
        )
    return _nominate_page(session, settings, found)


@router.post("/nominate/{token}", response_class=HTMLResponse)
def nominate_submit(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Book the nominated colleague in the place."""
    found = _posted_booking(request, session, settings, LinkPurpose.NOMINATE, token, now, csrf)
    if isinstance(found, Response):
        return found
    try:
        replacement = nominate_replacement(
            session, found, name=name, email=email, now=now, actor=ACTOR, secret=settings.secret
        )
    except NominationError as exc:
        session.rollback()  # a nomination that lost a race may have written its booking
        if nomination_problem(session, found, now=now) is not None:
            return _message(
                settings, "No place to pass on", str(exc), found=facts(session, found), status=409
            )
        return _nominate_page(session, settings, found, name=name, email=email, error=str(exc))
    joined = facts(session, replacement)
    return _message(
        settings,
        "Thank you: your colleague has the place",
        f"{joined.delegate.name} now has the place (booking {replacement.ref}), with no charge. "
        f"We have sent the joining details to {joined.delegate.email}.",
        found=joined,
    )


# -- Reason for a no-show -------------------------------------------------------------------------


def _reason_page(
    session: Session,
    settings: Settings,
    booking: Booking,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    found = facts(session, booking)
    given_at = (
        local_time(booking.no_show_reason_at, settings.timezone, "%-d %B %Y at %H:%M")
        if booking.no_show_reason_at
        else None
    )
    fields = {
        "given": booking.no_show_reason,
        "given_at": given_at,
        "reason": reason if reason is not None else "",
    }
    title = "Why could you not attend?"
    return _form_page(settings, found, LinkPurpose.REASON, title, fields, error=error)


@router.get("/reason/{token}", response_class=HTMLResponse)
def reason_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """The form for a delegate recorded as a no-show to say why."""
    found = _booking(request, session, settings, LinkPurpose.REASON, token, now)
    if isinstance(found, Response):
        return found
    if found.status != BookingStatus.NO_SHOW:
        return _message(
            settings,
            "No reason needed",
            f"Booking {found.ref} is no longer recorded as a no-show, so there is nothing "
            "to explain.",
            found=facts(session, found),
        )
    return _reason_page(session, settings, found)


@router.post("/reason/{token}", response_class=HTMLResponse)
def reason_submit(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """Record the delegate's reason."""
    found = _posted_booking(request, session, settings, LinkPurpose.REASON, token, now, csrf)
    if isinstance(found, Response):
        return found
    try:
        record_reason(session, found, reason, now=now, actor=ACTOR)
    except AttendanceError as exc:
        if found.status != BookingStatus.NO_SHOW:
            return _message(settings, "No reason needed", str(exc), found=facts(session, found))
        return _reason_page(session, settings, found, reason=reason, error=str(exc))
    return _message(
        settings,
        "Thank you",
        "Your reason has been recorded and the training team can see it.",
        found=facts(session, found),
    )


# -- Certificate ----------------------------------------------------------------------------------


@router.get("/certificate/{token}", response_class=HTMLResponse)
def certificate_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """The certificate of attendance, or why there is none yet."""
    found = _booking(request, session, settings, LinkPurpose.CERTIFICATE, token, now)
    if isinstance(found, Response):
        return found
    status = certificate_status(session, found)
    if not status.ready:
        subject = status.evaluation_subject
        link = (
            (url_for(settings, LinkPurpose.SURVEY, subject), "Finish the evaluation")
            if subject
            else None
        )
        return _message(
            settings,
            "Your certificate of attendance",
            status.message,
            found=facts(session, found),
            link=link,
        )
    context = {
        "page_title": f"Certificate of attendance: {status.delegate_name}",
        "status": status,
        **_when(status.starts_at, status.ends_at, settings),
    }
    return _page(settings, "certificate", context)
