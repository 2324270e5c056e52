"""What a console request that cannot go on gets: a page (or the sign-in redirect), never a 500."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from bot.web.admin.auth import NotAllowed, SignedOut, StaleForm, TooLarge
from bot.web.admin.pages import CONSOLE_HEADERS, message


async def signed_out(request: Request, exc: Exception) -> Response:
    # Nothing of the page is shown: the browser goes to sign in (303, so a POST becomes a GET).
    return RedirectResponse("/admin/sign-in", status_code=303, headers=CONSOLE_HEADERS)


async def stale_form(request: Request, exc: Exception) -> Response:
    return message(
        request,
        "This form has expired",
        "The page you sent was out of date (you may have signed in again since it was opened), "
        "so nothing was changed. Go back, reload the page and try again.",
        status=400,
        link=("Go to the dashboard", "/admin/"),
        tone="warning",
    )


async def not_allowed(request: Request, exc: Exception) -> Response:
    return message(
        request,
        "Only a coordinator can do this",
        "You can see everything in the console, but your role (viewer) cannot change anything. "
        "Ask a coordinator to do it, or to make you a coordinator "
        "(evalbot staff add EMAIL --role coordinator).",
        status=403,
        link=("Go to the dashboard", "/admin/"),
        tone="warning",
    )


async def too_large(request: Request, exc: Exception) -> Response:
    return message(
        request,
        "The file is too large",
        "The console takes files of up to 20 MB, and nothing was changed. A booking export is "
        "usually far smaller: check that you chose the right file, or split the export by date.",
        status=413,
        link=("Go to the import page", "/admin/import"),
        tone="warning",
    )


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SignedOut, signed_out)
    app.add_exception_handler(StaleForm, stale_form)
    app.add_exception_handler(NotAllowed, not_allowed)
    app.add_exception_handler(TooLarge, too_large)
