"""The place offer page behind a waiting-list accept link: ``/offer/<token>``.

GET shows the session, until when the offer is open and an Accept button, or, for an offer that
cannot be taken (lapsed, already accepted, the place gone to someone else, the session
cancelled), a page saying so. Only the form's POST accepts (``schedules.offers.accept_offer``);
a refused accept changes nothing and says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from bot.settings import Settings
from bot.templating import local_time
from bot.web.bookings import _message, _page, _when
from bot.web.deps import NowDep, SessionDep, SettingsDep
from bot.web.pages import busy_page
from bot.web.security import (
    bad_token_limiter,
    client_address,
    form_token,
    form_token_valid,
    same_origin,
)
from schedules.offers import OfferFacts, OfferRefused, accept_offer, find_offer, offer_problem

router = APIRouter()

ACTOR = "web"


def _details(found: OfferFacts, settings: Settings) -> dict[str, Any]:
    course_session = found.course_session
    return {
        "course_title": found.course.title,
        **_when(course_session.starts_at, course_session.ends_at, settings),
        "venue": "Online" if course_session.online else (course_session.venue or ""),
        "delegate_name": found.delegate.name,
        "booking_ref": found.booking.ref,
    }


def _scope(found: OfferFacts) -> str:
    return f"offer:{found.offer.id}"


def _lookup(
    request: Request, session: SessionDep, settings: Settings, token: str, now: datetime
) -> OfferFacts | HTMLResponse:
    limiter = bad_token_limiter(request)
    address = client_address(request)
    wait = limiter.retry_after(address, now)
    if wait:
        return busy_page(settings, wait)
    found = find_offer(session, token)
    if found is None:
        limiter.record(address, now)
        return _page(settings, "booking_unknown", {"page_title": "This link does not work"}, 404)
    return found


def _closed(settings: Settings, found: OfferFacts, problem: str) -> HTMLResponse:
    return _page(
        settings,
        "booking_message",
        {
            "page_title": "This offer cannot be accepted",
            "message": problem,
            "details": _details(found, settings),
            "link": None,
        },
        status=409,
    )


@router.get("/offer/{token}", response_class=HTMLResponse)
def offer_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """The offered place and an Accept button; changes nothing."""
    found = _lookup(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    problem = offer_problem(session, found, now=now)
    if problem is not None:
        return _closed(settings, found, problem)
    context = {
        "page_title": "A place for you",
        "details": _details(found, settings),
        # For people: "until 23:59 on Friday" rather than "until 00:00 on Saturday".
        "expires": local_time(
            found.offer.expires_at - timedelta(minutes=1),
            settings.timezone,
            "%H:%M on %A %-d %B %Y",
        ),
        "csrf": form_token(settings.secret, _scope(found)),
    }
    return _page(settings, "offer", context)


@router.post("/offer/{token}", response_class=HTMLResponse)
def offer_accept(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Accept the offered place, if it is still there."""
    found = _lookup(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    if not form_token_valid(settings.secret, _scope(found), csrf) or not same_origin(
        request, settings
    ):
        return _message(
            settings,
            "Nothing was changed",
            "The form you sent did not come from this page, or it is out of date. "
            "Go back to the page and try again.",
            status=403,
            link=(token, "Go back to the page"),
        )
    try:
        booking = accept_offer(session, found, now=now, actor=ACTOR)
    except OfferRefused as refused:
        return _closed(settings, found, str(refused))
    return _page(
        settings,
        "booking_message",
        {
            "page_title": "The place is yours",
            "message": (
                f"You have accepted the place: booking {booking.ref} is confirmed. Your "
                "confirmation, with the joining details and a calendar invitation, is on its "
                "way, and your line manager has been told."
            ),
            "details": _details(found, settings),
            "link": None,
        },
    )
