"""``/admin/outbox``: messages that failed or are dead, with their reasons; retry the dead;
clear an address marked undeliverable. The same ``surveys.outbox_repair`` functions as
``evalbot outbox retry`` and ``evalbot outbox clear-address``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from bot.web.admin.auth import CoordinatorDep
from bot.web.admin.pages import render
from bot.web.deps import NowDep, SessionDep
from surveys.console import undelivered, undelivered_counts
from surveys.models import Deliverability, OutboxState, Person
from surveys.outbox_repair import RepairError, clear_address, person_by_email, requeue_dead

router = APIRouter()

PAGE_SIZE = 100


def _page(
    request: Request,
    session: SessionDep,
    *,
    status: int = 200,
    page: int = 1,
    **context: object,
) -> HTMLResponse:
    offset = (page - 1) * PAGE_SIZE
    dead = undelivered(session, OutboxState.DEAD, limit=PAGE_SIZE + 1, offset=offset)
    failed = undelivered(session, OutboxState.FAILED, limit=PAGE_SIZE, offset=offset)
    unusable = session.exec(
        select(Person)
        .where(Person.email_status == Deliverability.UNUSABLE, col(Person.erased_at).is_(None))
        .order_by(col(Person.email))
        .limit(200)
    ).all()
    return render(
        request,
        "web/admin/outbox.html",
        {
            "page_title": "Outbox",
            "counts": undelivered_counts(session),
            "dead": dead[:PAGE_SIZE],
            "failed": failed,
            "more": len(dead) > PAGE_SIZE,
            "page": page,
            "unusable": unusable,
            "error": None,
            "done": None,
            "email": "",
            **context,
        },
        status=status,
    )


@router.get("/admin/outbox", response_class=HTMLResponse)
def outbox_page(
    request: Request,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """Failed and dead messages, and the addresses marked undeliverable."""
    return _page(request, session, page=page)


@router.post("/admin/outbox/retry", response_class=HTMLResponse)
def retry(
    request: Request,
    staff: CoordinatorDep,
    session: SessionDep,
    now: NowDep,
    message_id: Annotated[list[int] | None, Form(alias="id")] = None,
) -> HTMLResponse:
    """Re-queue the chosen dead messages (or all of them): they go at the next delivery."""
    done = requeue_dead(session, now=now, actor=staff.actor, ids=message_id or None)
    session.commit()
    note = f"Re-queued {len(done.ids)} dead message{'s' if len(done.ids) != 1 else ''}."
    if done.blocked:
        note += (
            f" {done.blocked} of them are to people whose email address is marked "
            "undeliverable: they go by Telegram where linked, else die again. Clear the "
            "address below once it is mended."
        )
    return _page(request, session, done=note)


@router.post("/admin/outbox/clear-address", response_class=HTMLResponse)
def clear(
    request: Request,
    staff: CoordinatorDep,
    session: SessionDep,
    now: NowDep,
    email: Annotated[str, Form(max_length=254)] = "",
) -> HTMLResponse:
    """Mark an undeliverable address usable again."""
    try:
        person = person_by_email(session, email)
    except RepairError as exc:
        return _page(request, session, status=404, error=str(exc), email=email)
    done = clear_address(session, person, now=now, actor=staff.actor)
    session.commit()
    if done.previous_reason is None:
        note = f"{done.email} is not marked undeliverable; nothing to clear."
    else:
        note = (
            f"{done.email} ({done.name}) will be tried again. It was marked: {done.previous_reason}"
        )
        if done.dead:
            plural = "s" if done.dead != 1 else ""
            note += f" {done.dead} dead message{plural} to them can be retried below."
    return _page(request, session, done=note)
