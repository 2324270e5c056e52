"""Unsubscribing from reminders and campaign messages: ``/unsubscribe/<t>``.

- ``GET`` shows whose link it is and a button; it changes nothing (mail scanners open links).
- ``POST`` unsubscribes at once, with no cookie and no form token: this is the one-click
  unsubscribe of RFC 8058 that mail clients send from the ``List-Unsubscribe`` header (body
  ``List-Unsubscribe=One-Click``), and the page's button posts the same. The token in the URL is
  the only credential, as the RFC intends.
- ``POST /unsubscribe/<t>/undo`` (from the confirmation page, with its form token) subscribes
  again.

Unsubscribing stops reminders and campaign messages by email and by Telegram; notices about a
person's own bookings still go (the dispatcher withdraws only the kinds that may be refused).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from bot.settings import Settings
from bot.web.deps import NowDep, SessionDep, SettingsDep
from bot.web.pages import busy_page, page
from bot.web.security import (
    bad_token_limiter,
    client_address,
    form_token,
    form_token_valid,
)
from surveys.audit import record
from surveys.models import LinkPurpose, Person
from surveys.tokens import resolve

router = APIRouter()


def _page(settings: Settings, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return page(settings, "web/unsubscribe.html", context, status)


def _person(
    request: Request, session: Session, settings: Settings, token: str, now: NowDep
) -> Person | HTMLResponse:
    """The link's person, or the page to show instead (link not working, or slow down)."""
    link = resolve(session, LinkPurpose.UNSUBSCRIBE, token, now)
    person = session.get(Person, link.person_id) if link and link.person_id else None
    if person is None or person.erased_at is not None:
        wait = bad_token_limiter(request).unknown(client_address(request), now)
        if wait:
            return busy_page(settings, wait)
        return _page(settings, {"state": "unknown", "page_title": "This link does not work"}, 404)
    return person


def _context(settings: Settings, person: Person, token: str, state: str) -> dict[str, Any]:
    titles = {
        "confirm": "Unsubscribe from reminders",
        "done": "You are unsubscribed",
        "already": "You are unsubscribed",
        "resubscribed": "Reminders are back on",
    }
    return {
        "state": state,
        "page_title": titles[state],
        "name": person.name,
        "token": token,
        "form_token": form_token(settings.secret, f"unsubscribe:{person.id}"),
    }


def _set(session: Session, person: Person, *, opted_out: bool, now: NowDep, how: str) -> None:
    person.email_opt_out = opted_out
    person.telegram_opt_out = opted_out
    person.updated_at = now
    session.add(person)
    record(
        session,
        at=now,
        actor="web",
        action="unsubscribed" if opted_out else "resubscribed",
        entity="person",
        entity_id=person.id,
        how=how,
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> HTMLResponse:
    """Whose link this is, and a button; nothing changes until the button is pressed."""
    person = _person(request, session, settings, token, now)
    if isinstance(person, HTMLResponse):
        return person
    state = "already" if person.email_opt_out and person.telegram_opt_out else "confirm"
    return _page(settings, _context(settings, person, token, state))


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(
    token: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep
) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058): no cookie, no form token; answers 200, never a redirect."""
    person = _person(request, session, settings, token, now)
    if isinstance(person, HTMLResponse):
        return person
    if not (person.email_opt_out and person.telegram_opt_out):
        _set(session, person, opted_out=True, now=now, how="one-click link")
    return _page(settings, _context(settings, person, token, "done"))


@router.post("/unsubscribe/{token}/undo", response_class=HTMLResponse)
def resubscribe(
    token: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    form_token_field: Annotated[str | None, Form(alias="form_token")] = None,
) -> HTMLResponse:
    """Reminders and campaign messages again, from the confirmation page's button."""
    person = _person(request, session, settings, token, now)
    if isinstance(person, HTMLResponse):
        return person
    if not form_token_valid(settings.secret, f"unsubscribe:{person.id}", form_token_field):
        context = _context(settings, person, token, "already")
        context["error"] = "That form had expired. Please press the button again."
        return _page(settings, context, 400)
    _set(session, person, opted_out=False, now=now, how="web page")
    return _page(settings, _context(settings, person, token, "resubscribed"))
