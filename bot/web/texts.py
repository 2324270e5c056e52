"""A person's choice about text messages, from their survey link: ``/s/<token>/texts``.

Evalbot may text reminders and notices (as the policy allows) to a person with a mobile number
and no working Telegram chat. Here they can say "email only", or change their mind.

- ``GET /s/<t>/texts`` says whether they may be texted (the number shown by its last three
  digits only) and offers the other choice. It changes nothing: mail scanners open links.
- ``POST /s/<t>/texts`` (``choice`` = ``email-only`` or ``texts``, with the form token) records
  the choice on the person (``sms_opt_out``), with an audit entry, and redirects back to the page
  (Post/Redirect/Get).

Links are relative, as the survey form's are: the page is ``texts`` under ``/s/<t>/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from bot.settings import Settings
from bot.web.deps import get_engine, get_now, get_settings
from bot.web.pages import page
from bot.web.security import PRIVATE_HEADERS, form_token, form_token_valid, same_origin
from bot.web.surveys import _invitation
from surveys.audit import record
from surveys.db import session_scope
from surveys.models import Person

router = APIRouter()
CHOICES = {"email-only": True, "texts": False}  # choice -> sms_opt_out


def _page(
    settings: Settings, token: str, person: Person, *, saved: bool = False, status: int = 200
) -> HTMLResponse:
    context: dict[str, Any] = {
        "page_title": "Text messages",
        "token": token,
        "has_mobile": bool(person.mobile),
        "mobile_end": (person.mobile or "")[-3:],
        "email_only": person.sms_opt_out,
        "saved": saved,
        "csrf": form_token(settings.secret, f"texts:{person.id}"),
    }
    return page(settings, "web/survey_texts.html", context, status)


def _person(
    request: Request, session: Session, settings: Settings, token: str, now: datetime
) -> Person | Response:
    found = _invitation(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    person = session.get(Person, found.person_id)
    if person is None or person.erased_at is not None:
        return HTMLResponse("Not found", status_code=404, headers=PRIVATE_HEADERS)
    return person


@router.api_route("/s/{token}/texts", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def texts_page(token: str, request: Request) -> Response:
    """Whether Evalbot may text this person, and the other choice."""
    settings, now = get_settings(request), get_now(request)
    with session_scope(get_engine(request)) as session:
        person = _person(request, session, settings, token, now)
        if isinstance(person, Response):
            return person
        return _page(settings, token, person, saved=request.query_params.get("saved") == "1")


@router.post("/s/{token}/texts", response_class=HTMLResponse)
async def texts_choice(token: str, request: Request) -> Response:
    """Record "email only" (or "texts are fine") for this person."""
    form = await request.form()
    choice, csrf = str(form.get("choice", "")), str(form.get("csrf", ""))
    settings, now = get_settings(request), get_now(request)
    return await run_in_threadpool(_choose, request, settings, now, token, choice, csrf)


def _choose(
    request: Request, settings: Settings, now: datetime, token: str, choice: str, csrf: str
) -> Response:
    with session_scope(get_engine(request)) as session:
        person = _person(request, session, settings, token, now)
        if isinstance(person, Response):
            return person
        valid = form_token_valid(settings.secret, f"texts:{person.id}", csrf)
        if not valid or not same_origin(request, settings) or choice not in CHOICES:
            return _page(settings, token, person, status=403 if not valid else 400)
        if person.sms_opt_out != CHOICES[choice]:
            person.sms_opt_out = CHOICES[choice]
            person.updated_at = now
            session.add(person)
            record(
                session,
                at=now,
                actor="web",
                action="sms choice",
                entity="person",
                entity_id=person.id,
                email_only=person.sms_opt_out,
            )
            session.commit()
    return RedirectResponse("texts?saved=1", status_code=303, headers=PRIVATE_HEADERS)
