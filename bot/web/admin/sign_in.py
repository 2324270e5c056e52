"""Signing in and out: ``/admin/sign-in``, the emailed link ``/admin/sign-in/<token>``, and
``/admin/sign-out``.

- The request page answers the same whether or not the address is staff's, and the requests
  are limited per address and per client (in memory, per process: ``ADDRESS_LIMIT`` and
  ``CLIENT_LIMIT`` in ``SIGN_IN_WINDOW``).
- Opening the link changes nothing (mail scanners open links): it shows a button, and the POST
  spends the link and starts the session.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.web.admin.auth import (
    COOKIE,
    IDLE_MINUTES,
    MAX_HOURS,
    StaffDep,
    clear_session_cookie,
    set_session_cookie,
)
from bot.web.admin.mail import deliver_now, queue_sign_in
from bot.web.admin.pages import message, render
from bot.web.deps import NowDep, SessionDep, SettingsDep
from bot.web.security import (
    BadTokenLimiter,
    bad_token_limiter,
    client_address,
    form_token,
    form_token_valid,
    same_origin,
)
from surveys.staff import (
    SIGN_IN_VALID,
    LinkProblem,
    check_sign_in,
    end_session,
    find_staff,
    normalise_email,
    use_sign_in,
)

public = APIRouter()  # reachable signed out
signed_in = APIRouter()  # behind the console's checks

SIGN_IN_WINDOW = timedelta(minutes=15)
ADDRESS_LIMIT = 5
CLIENT_LIMIT = 20
REQUEST_SCOPE = "console-sign-in"
_lock = threading.Lock()


def limiters(request: Request) -> tuple[BadTokenLimiter, BadTokenLimiter]:
    """The app's sign-in request limiters: per address, per client (created on first use)."""
    state = request.app.state
    with _lock:
        if getattr(state, "sign_in_limiters", None) is None:
            state.sign_in_limiters = (
                BadTokenLimiter(ADDRESS_LIMIT, SIGN_IN_WINDOW),
                BadTokenLimiter(CLIENT_LIMIT, SIGN_IN_WINDOW),
            )
        found: tuple[BadTokenLimiter, BadTokenLimiter] = state.sign_in_limiters
    return found


def _request_page(
    request: Request, settings: SettingsDep, *, error: str | None = None, email: str = ""
) -> HTMLResponse:
    return render(
        request,
        "web/admin/sign_in.html",
        {
            "page_title": "Sign in to the staff console",
            "form_token": form_token(settings.secret, REQUEST_SCOPE),
            "error": error,
            "email": email,
            "valid_minutes": int(SIGN_IN_VALID.total_seconds() // 60),
        },
        status=400 if error else 200,
    )


@public.get("/admin/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Ask for an email address to send a sign-in link to."""
    return _request_page(request, settings)


@public.post("/admin/sign-in", response_class=HTMLResponse)
def request_link(
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    email: Annotated[str, Form()] = "",
    form: Annotated[str, Form(alias="form_token")] = "",
) -> HTMLResponse:
    """Send a sign-in link if the address is staff's; say the same thing either way."""
    if not form_token_valid(settings.secret, REQUEST_SCOPE, form) or not same_origin(
        request, settings
    ):
        return _stale(request)
    address = normalise_email(email)
    if "@" not in address or len(address) > 254:
        return _request_page(
            request,
            settings,
            error="Enter your work email address, like name@example.org",
            email=email[:254],
        )
    by_address, by_client = limiters(request)
    client = client_address(request)
    wait = max(by_address.retry_after(address, now), by_client.retry_after(client, now))
    if wait:
        minutes = max(1, (wait + 59) // 60)
        response = message(
            request,
            "Too many sign-in requests",
            f"There have been too many sign-in requests for this address or from this "
            f"computer. Wait {minutes} minute{'s' if minutes != 1 else ''}, then try again. "
            "A link already sent still works until it expires.",
            status=429,
            link=("Back to sign in", "/admin/sign-in"),
            tone="warning",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    by_address.record(address, now)
    by_client.record(client, now)
    member = find_staff(session, address)
    if member is not None:
        queue_sign_in(session, settings, member, now)
        session.commit()
        background.add_task(deliver_now, request.app, now)
    return render(
        request,
        "web/admin/sign_in_sent.html",
        {
            "page_title": "Check your email",
            "email": address,
            "valid_minutes": int(SIGN_IN_VALID.total_seconds() // 60),
        },
    )


PROBLEMS = {
    LinkProblem.UNKNOWN: (
        "This sign-in link does not work",
        "The link may be incomplete (copy the whole of it from the email) or not one of ours.",
    ),
    LinkProblem.EXPIRED: (
        "This sign-in link has expired",
        f"A sign-in link works for {int(SIGN_IN_VALID.total_seconds() // 60)} minutes.",
    ),
    LinkProblem.USED: (
        "This sign-in link has already been used",
        "Each sign-in link works once. If you signed in with it on another device or browser, "
        "carry on there.",
    ),
}


def _link_problem(request: Request, problem: LinkProblem) -> HTMLResponse:
    title, text = PROBLEMS[problem]
    return message(
        request,
        title,
        text + " Ask for a new link on the sign-in page.",
        status=404 if problem is LinkProblem.UNKNOWN else 410,
        link=("Get a new sign-in link", "/admin/sign-in"),
        tone="warning",
    )


def _slow_down(request: Request, wait: int) -> HTMLResponse:
    response = message(
        request,
        "Too many links tried",
        "Too many sign-in links that do not work have come from this computer. "
        "Wait a minute, then open the link from your email again.",
        status=429,
        tone="warning",
    )
    response.headers["Retry-After"] = str(wait)
    return response


def _stale(request: Request) -> HTMLResponse:
    return message(
        request,
        "This form has expired",
        "The page you sent was out of date, so nothing was done. Go back to the sign-in page, "
        "and try again.",
        status=400,
        link=("Go to the sign-in page", "/admin/sign-in"),
        tone="warning",
    )


@public.get("/admin/sign-in/{token}", response_class=HTMLResponse)
def confirm_link(
    request: Request, token: str, session: SessionDep, settings: SettingsDep, now: NowDep
) -> HTMLResponse:
    """The emailed link: shows whose it is and a button; changes nothing."""
    limiter = bad_token_limiter(request)
    wait = limiter.retry_after(client_address(request), now)
    if wait:
        return _slow_down(request, wait)
    check = check_sign_in(session, token, now)
    if check.problem is not None or check.member is None:
        if check.problem is LinkProblem.UNKNOWN:
            limiter.record(client_address(request), now)
        return _link_problem(request, check.problem or LinkProblem.UNKNOWN)
    return render(
        request,
        "web/admin/sign_in_confirm.html",
        {
            "page_title": "Sign in to the staff console",
            "member": check.member,
            "form_token": form_token(settings.secret, f"console-link:{token}"),
            "idle_minutes": IDLE_MINUTES,
            "max_hours": MAX_HOURS,
        },
    )


@public.post("/admin/sign-in/{token}", response_model=None)
def use_link(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    form: Annotated[str, Form(alias="form_token")] = "",
) -> Response:
    """Spend the link and start a session; then the dashboard."""
    limiter = bad_token_limiter(request)
    wait = limiter.retry_after(client_address(request), now)
    if wait:
        return _slow_down(request, wait)
    if not form_token_valid(settings.secret, f"console-link:{token}", form) or not same_origin(
        request, settings
    ):
        return _stale(request)
    check, cookie = use_sign_in(session, token, now)
    if cookie is None:
        if check.problem is LinkProblem.UNKNOWN:
            limiter.record(client_address(request), now)
        return _link_problem(request, check.problem or LinkProblem.UNKNOWN)
    session.commit()
    response = RedirectResponse("/admin/", status_code=303)
    set_session_cookie(response, settings, cookie)
    return response


@signed_in.post("/admin/sign-out", response_model=None)
def sign_out(
    request: Request, staff: StaffDep, session: SessionDep, settings: SettingsDep, now: NowDep
) -> Response:
    """End this browser's session."""
    end_session(session, request.cookies.get(COOKIE), now)
    session.commit()
    request.state.staff = None
    response = message(
        request,
        "You have signed out",
        f"You have signed out of the staff console, {staff.name}.",
        link=("Sign in again", "/admin/sign-in"),
    )
    clear_session_cookie(response, settings)
    return response
