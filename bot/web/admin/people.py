"""``/admin/people``: find a person, download what is held about them, erase them.

The same ``surveys.people`` functions as ``evalbot person export`` and ``evalbot person
erase``; erasing asks for confirmation first, as the command does.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from bot.mail_erasure import finish_erasure
from bot.web.admin.auth import CoordinatorDep
from bot.web.admin.pages import CONSOLE_HEADERS, message, render
from bot.web.deps import EngineDep, NowDep, SessionDep, SettingsDep
from surveys.console_search import find_people
from surveys.models import Person
from surveys.people import erase_person, person_record

router = APIRouter()


@router.get("/admin/people", response_class=HTMLResponse)
def people(
    request: Request, session: SessionDep, q: Annotated[str, Query(max_length=200)] = ""
) -> HTMLResponse:
    """Search by name or email address."""
    return render(
        request,
        "web/admin/people.html",
        {"page_title": "People", "q": q, "found": find_people(session, q) if q.strip() else None},
    )


def _missing(request: Request) -> HTMLResponse:
    return message(
        request,
        "Person not found",
        "There is no such person: the address may be wrong.",
        status=404,
        link=("Find a person", "/admin/people"),
    )


@router.get("/admin/people/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, person_id: int, session: SessionDep) -> HTMLResponse:
    """What is held about a person, in short, with download and erase."""
    person = session.get(Person, person_id)
    if person is None:
        return _missing(request)
    record = person_record(session, person)
    return render(
        request,
        "web/admin/person.html",
        {"page_title": person.name, "person": person, "record": record},
    )


@router.get("/admin/people/{person_id}/export")
def export(request: Request, person_id: int, session: SessionDep) -> Response:
    """Everything held about the person, as JSON (as ``evalbot person export`` gives it)."""
    person = session.get(Person, person_id)
    if person is None:
        return _missing(request)
    text = json.dumps(person_record(session, person), indent=2, ensure_ascii=False) + "\n"
    slug = re.sub(r"[^a-z0-9]+", "-", person.email.lower()).strip("-") or f"person-{person_id}"
    return Response(
        text,
        media_type="application/json; charset=utf-8",
        headers={
            **CONSOLE_HEADERS,
            "Content-Disposition": f'attachment; filename="evalbot-{slug}.json"',
        },
    )


@router.get("/admin/people/{person_id}/erase", response_class=HTMLResponse)
def confirm_erase(
    request: Request, person_id: int, staff: CoordinatorDep, session: SessionDep
) -> HTMLResponse:
    """What erasing would do, and the button to do it."""
    person = session.get(Person, person_id)
    if person is None:
        return _missing(request)
    if person.erased_at is not None:
        return _already(request, person)
    record = person_record(session, person)
    return render(
        request,
        "web/admin/erase_confirm.html",
        {"page_title": f"Erase {person.name}", "person": person, "record": record},
    )


def _already(request: Request, person: Person) -> HTMLResponse:
    return message(
        request,
        "Already erased",
        "This person was already erased; there is nothing more to erase.",
        status=409,
        link=("Find a person", "/admin/people"),
    )


@router.post("/admin/people/{person_id}/erase", response_class=HTMLResponse)
def erase(
    request: Request,
    person_id: int,
    staff: CoordinatorDep,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
    now: NowDep,
) -> HTMLResponse:
    """Erase the person, as ``evalbot person erase`` does; this cannot be undone."""
    person = session.get(Person, person_id)
    if person is None:
        return _missing(request)
    if person.erased_at is not None:
        return _already(request, person)
    name = person.name
    done = erase_person(session, person, now=now, actor=staff.actor)
    session.commit()
    # As the command does: compact the database, and delete the written mail to or about them.
    mail_deleted = finish_erasure(engine, settings.mail_dir, done.traces)
    return render(
        request,
        "web/admin/erase_done.html",
        {"page_title": f"{name} is erased", "done": done, "mail_deleted": mail_deleted},
    )
