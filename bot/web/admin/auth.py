"""Who is signed in to the console, and the checks every console request passes.

``staff_member`` (a router dependency) finds the signed-in member from the session cookie, or
raises ``SignedOut`` (answered with a redirect to the sign-in page). ``check_post`` then refuses
a POST whose CSRF token is not this session's (``StaleForm``), one too large to read
(``TooLarge``), and any change asked for by a viewer (``NotAllowed``). The exception handlers in
``bot.web.admin.errors`` turn each into a page saying what happened and what to do.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.formparsers import MultiPartException

from bot.settings import Settings
from bot.web.deps import NowDep, SessionDep, SettingsDep
from bot.web.security import same_origin
from surveys.staff import IDLE, MAX_AGE, StaffMember, session_member

COOKIE = "evalbot_console"
CSRF_FIELD = "csrf_token"
# The largest POST the console reads: a 20 MB booking export and the form around it.
MAX_UPLOAD = 20 * 1024 * 1024
MAX_POST = MAX_UPLOAD + 256 * 1024
# POSTs a viewer may make: they change nothing of the partnership's.
VIEWER_POSTS = frozenset({"/admin/sign-out"})


class SignedOut(Exception):
    """No live session: the browser is sent to the sign-in page."""


class StaleForm(Exception):
    """A POST without this session's CSRF token (an old page, or another site's form)."""


class NotAllowed(Exception):
    """A viewer asked for a change."""


class TooLarge(Exception):
    """A POST larger than the console reads."""


def csrf_token(settings: Settings, cookie: str) -> str:
    """The CSRF token of the session whose cookie is ``cookie``: nothing to store, and a new
    session (after signing in again) makes every older page's token stale."""
    mac = hmac.new(settings.secret, f"console-csrf:{cookie}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def staff_member(request: Request, session: SessionDep, now: NowDep) -> StaffMember:
    """The signed-in member, or ``SignedOut``. Every console page depends on this."""
    cookie = request.cookies.get(COOKIE)
    member = session_member(session, cookie, now)
    if member is None or cookie is None:
        raise SignedOut()
    # Kept apart from the session, so that an error page can still name them after a rollback.
    session.expunge(member)
    request.state.staff = member
    request.state.console_cookie = cookie
    return member


StaffDep = Annotated[StaffMember, Depends(staff_member)]


async def check_post(request: Request, staff: StaffDep, settings: SettingsDep) -> None:
    """A POST must fit, carry this session's CSRF token, come from this site, and (unless it
    only signs out) come from a coordinator."""
    if request.method != "POST":
        return
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_POST:
        raise TooLarge()
    try:
        form = await request.form(max_part_size=1024 * 1024)
    except MultiPartException:
        raise StaleForm() from None  # a form no page of ours sends
    given = form.get(CSRF_FIELD)
    expected = csrf_token(settings, request.state.console_cookie)
    if (
        not isinstance(given, str)
        or not hmac.compare_digest(given.encode(), expected.encode())
        or not same_origin(request, settings)
    ):
        raise StaleForm()
    if not staff.can_change and request.url.path not in VIEWER_POSTS:
        raise NotAllowed()


def require_coordinator(staff: StaffDep) -> StaffMember:
    """For a page or action only a coordinator may use (viewers get a page saying so)."""
    if not staff.can_change:
        raise NotAllowed()
    return staff


CoordinatorDep = Annotated[StaffMember, Depends(require_coordinator)]


def set_session_cookie(response: Response, settings: Settings, cookie: str) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(MAX_AGE.total_seconds()),
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        COOKIE,
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
    )


IDLE_MINUTES = int(IDLE.total_seconds() // 60)
MAX_HOURS = int(MAX_AGE.total_seconds() // 3600)
