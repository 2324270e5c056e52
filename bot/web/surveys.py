"""The survey form: ``/s/<token>``, one question a page, without JavaScript.

- ``GET /s/<t>`` shows the next unanswered question (or ``?q=<key>`` a chosen one; ``&a=<value>``
  pre-selects an answer, as the options in an invitation email do). It records nothing, because
  mail scanners open links. When every question has an answer it shows them for a last look,
  with a button to finish.
- ``POST /s/<t>`` saves one answer (``q``, ``a``) or finishes (``action=finish``), with the form
  token from the page, then redirects to the next page (Post/Redirect/Get), so reloading never
  posts twice.

All links in these pages are relative to ``/s/``, so the app works behind a path prefix.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import bindparam
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from bot.links import url_for
from bot.settings import Settings
from bot.templating import local_time
from bot.web.deps import get_engine, get_now, get_settings
from bot.web.pages import busy_page, page
from bot.web.security import (
    PRIVATE_HEADERS,
    bad_token_limiter,
    client_address,
    form_token,
    form_token_valid,
    same_origin,
)
from schedules.cancellation import booking_subject
from schedules.certificates import CertificateState, certificate_link, certificate_status
from surveys import engine
from surveys.db import session_scope
from surveys.engine import AnswerError, QuestionView, Survey, UnknownQuestion
from surveys.models import (
    Booking,
    BookingStatus,
    InvitationStatus,
    Link,
    LinkPurpose,
    Stage,
    SurveyInvitation,
)
from surveys.tokens import resolve, token_hash

router = APIRouter()


def _page(
    settings: Settings,
    name: str,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return page(settings, f"web/{name}.html", context, status, headers)


def _unknown(settings: Settings) -> HTMLResponse:
    """The same page, and status, for a token that never existed and one that has expired."""
    return _page(settings, "survey_unknown", {}, status=404)


def _invitation(
    request: Request, session: Session, settings: Settings, token: str, now: datetime
) -> SurveyInvitation | HTMLResponse:
    """The token's invitation, or the page to show instead (slow down, or unknown)."""
    found = _invitation_for_token(session, token, now)
    if found is None:
        wait = bad_token_limiter(request).unknown(client_address(request), now)
        return busy_page(settings, wait) if wait else _unknown(settings)
    invitation, expired = found
    if expired:
        # A real link whose survey has closed: say so, and when, rather than "does not work".
        return _state_page(session, settings, invitation, "closed", now)
    return invitation


# A survey link's invitation in one query (this runs on every page), by the same rules as
# ``surveys.tokens.resolve``: the token's hash, the survey purpose, not expired, not used up.
_BY_TOKEN = (
    select(SurveyInvitation, col(Link.expires_at), col(Link.used_at))
    .join(Link, col(Link.invitation_id) == SurveyInvitation.id)
    .where(col(Link.token_hash) == bindparam("digest"), col(Link.purpose) == LinkPurpose.SURVEY)
)


def _invitation_for_token(
    session: Session, token: str, now: datetime
) -> tuple[SurveyInvitation, bool] | None:
    """The token's invitation and whether the link has expired (its survey closed), or None."""
    if not token or len(token) > 100:
        return None
    found = session.exec(_BY_TOKEN, params={"digest": token_hash(token)}).first()
    if found is None:
        return None
    invitation, expires_at, used_at = found
    if used_at is not None:
        return None
    return invitation, expires_at is not None and expires_at <= now


@dataclass
class _Header:
    """What every page of one survey shows at the top."""

    course_title: str
    session_date: str
    survey_title: str

    @classmethod
    def of(cls, survey: Survey, settings: Settings) -> _Header:
        date = local_time(survey.session_starts_at, settings.timezone, "%A %-d %B %Y")
        return cls(survey.course_title, date, survey.title)


def _choices(view: QuestionView) -> list[tuple[str, str]]:
    """Options as shown: a scale's ends carry their labels ("1 – Not at all confident")."""
    choices = list(view.options)
    if view.kind == "scale" and choices:
        if view.min_label:
            choices[0] = (choices[0][0], f"{choices[0][1]} – {view.min_label}")
        if view.max_label:
            choices[-1] = (choices[-1][0], f"{choices[-1][1]} – {view.max_label}")
    return choices


def _as_list(value: engine.Value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _question_page(
    settings: Settings,
    survey: Survey,
    view: QuestionView,
    token: str,
    *,
    chosen: list[str] | None = None,
    text: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    allowed = {value for value, _ in view.options}
    if chosen is None:
        chosen = _as_list(view.answer)
    chosen = [value for value in chosen if value in allowed]
    if view.kind != "multiple" and len(chosen) > 1:
        chosen = []  # one answer only: a tampered form's several are shown as none
    if text is None:
        text = view.answer if view.kind == "text" and isinstance(view.answer, str) else ""
    previous = survey.previous_question(view.key)
    intro = survey.intro if view.position == 1 and not survey.answers else None
    context = {
        "header": _Header.of(survey, settings),
        "view": view,
        "choices": _choices(view),
        "chosen": chosen,
        "text": text,
        "error": error,
        "intro": intro,
        "token": token,
        "csrf": form_token(settings.secret, f"survey:{survey.invitation.id}"),
        "back_url": f"{token}?q={previous.key}" if previous is not None else None,
        "page_title": ("Error: " if error else "") + view.text,
    }
    return _page(settings, "survey", context, status=422 if error else 200)


def _review_page(
    settings: Settings, survey: Survey, token: str, error: str | None = None
) -> HTMLResponse:
    rows = []
    for view in survey.answered_questions():
        labels = dict(_choices(view))
        given = _as_list(view.answer)
        shown = [labels.get(value, value) for value in given]
        rows.append({"view": view, "answers": shown})
    context = {
        "header": _Header.of(survey, settings),
        "rows": rows,
        "token": token,
        "csrf": form_token(settings.secret, f"survey:{survey.invitation.id}"),
        "error": error,
        "page_title": "Check your answers",
    }
    return _page(settings, "survey_review", context, status=422 if error else 200)


@dataclass(frozen=True)
class _Certificate:
    """What the thank-you page says about the certificate of attendance."""

    url: str = ""  # the link, once it is earned and recorded
    note: str = ""  # otherwise, why there is none yet (or at all)


def _certificate(
    session: Session, settings: Settings, invitation: SurveyInvitation, now: datetime
) -> _Certificate:
    """For a delegate's end-of-course survey: the certificate, by the certificates' own rules."""
    if invitation.stage != Stage.END or invitation.booking_id is None:
        return _Certificate()
    booking = session.get(Booking, invitation.booking_id)
    if booking is None:
        return _Certificate()
    if invitation.person_id != booking.delegate_id:
        return _Certificate()
    status = certificate_status(session, booking)
    if status.ready:
        url = url_for(settings, LinkPurpose.CERTIFICATE, booking_subject(booking))
        if resolve(session, LinkPurpose.CERTIFICATE, url.rsplit("/", 1)[1], now) is not None:
            return _Certificate(url=url)
        return _Certificate(note="Your certificate of attendance is on its way to you.")
    if status.state is CertificateState.NOT_MARKED:
        return _Certificate(
            note="Your certificate of attendance will be ready once the trainer has confirmed "
            "the register. We will send you a link to it."
        )
    if status.state is CertificateState.PARTLY_ATTENDED:
        return _Certificate(note=status.message)
    return _Certificate()


def _issue_certificate(session: Session, settings: Settings, invitation: SurveyInvitation) -> None:
    """On finishing the end-of-course survey: record the certificate link if it is earned."""
    if invitation.stage != Stage.END or invitation.booking_id is None:
        return
    booking = session.get(Booking, invitation.booking_id)
    if booking is None:
        return
    if invitation.person_id == booking.delegate_id and certificate_status(session, booking).ready:
        certificate_link(session, booking, secret=settings.secret)


def _state_page(
    session: Session,
    settings: Settings,
    invitation: SurveyInvitation,
    state: str,
    now: datetime,
) -> HTMLResponse:
    survey = engine.load_survey(session, invitation, directory=settings.survey_definitions_dir)
    header = _Header.of(survey, settings)
    if state == "finished":
        context: dict[str, Any] = {
            "header": header,
            "thanks": survey.thanks,
            "certificate": _certificate(session, settings, invitation, now),
            "page_title": "Thank you",
        }
        return _page(settings, "survey_finished", context)
    opens = local_time(invitation.opens_at, settings.timezone) if state == "not open" else ""
    if not opens and _marked_absent(session, invitation):
        context = {"header": header, "page_title": "The register shows you did not attend"}
        return _page(settings, "survey_absent", context, status=410)
    closed = invitation.closes_at <= now
    context = {
        "header": header,
        "not_open_yet": state == "not open",
        "opens": opens,
        "closed_on": (
            local_time(invitation.closes_at, settings.timezone, "%H:%M on %A %-d %B %Y")
            if closed
            else ""
        ),
        "page_title": "This survey is not open yet" if opens else "This survey has closed",
    }
    return _page(settings, "survey_closed", context, status=200 if opens else 410)


def _marked_absent(session: Session, invitation: SurveyInvitation) -> bool:
    """A delegate's end-of-course survey withdrawn because the register shows them absent."""
    if invitation.stage != Stage.END or invitation.status != InvitationStatus.WITHDRAWN:
        return False
    booking = session.get(Booking, invitation.booking_id)
    return (
        booking is not None
        and booking.delegate_id == invitation.person_id
        and booking.status == BookingStatus.NO_SHOW
    )


@router.api_route("/s/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def survey_page(token: str, request: Request) -> Response:
    """Show the next question, a chosen one (``?q=``, with ``&a=`` pre-selected), or the end.

    It only reads, a few indexed rows, so it runs on the event loop: handing it to a worker
    thread would cost more than the reads themselves (see bench/README.md).
    """
    settings, now = get_settings(request), get_now(request)
    q = request.query_params.get("q")
    a = request.query_params.getlist("a")
    with session_scope(get_engine(request)) as session:
        return _show(request, session, settings, now, token, q, a)


def _show(
    request: Request,
    session: Session,
    settings: Settings,
    now: datetime,
    token: str,
    q: str | None,
    a: list[str] | None,
) -> Response:
    found = _invitation(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    state = engine.availability(found, now)
    if state != "open":
        return _state_page(session, settings, found, state, now)
    survey = engine.load_survey(session, found, directory=settings.survey_definitions_dir)
    view = None
    if q:
        try:
            view = survey.question(q)
        except UnknownQuestion:
            view = None
    if view is None:
        view = survey.next_question()
        a = None  # a pre-selected answer belongs to the question it was sent with
    if view is None:
        return _review_page(settings, survey, token)
    return _question_page(settings, survey, view, token, chosen=a or None)


@dataclass(frozen=True)
class _Posted:
    csrf: str
    q: str
    values: list[str]
    action: str


@router.post("/s/{token}", response_class=HTMLResponse)
async def survey_answer(token: str, request: Request) -> Response:
    """Save one answer (fields ``q``, ``a``) or finish (``action=finish``); then the next page.

    Writing may wait for SQLite's write lock, so it runs in a worker thread, all in one hop.
    """
    form = await request.form()
    fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
    values = [value for name, value in form.multi_items() if name == "a" and isinstance(value, str)]
    posted = _Posted(
        fields.get("csrf", ""), fields.get("q", ""), values, fields.get("action", "answer")
    )
    settings, now = get_settings(request), get_now(request)
    return await run_in_threadpool(_answer, request, settings, now, token, posted)


# SQLite lets one connection write at a time, and a writer that finds the lock taken sleeps
# and polls (1, 2, 5, 10 ... 100 ms). Answers queue here instead, and each goes as soon as the
# one before has committed.
_SQLITE_WRITER = threading.Lock()


def _answer(
    request: Request, settings: Settings, now: datetime, token: str, posted: _Posted
) -> Response:
    database = get_engine(request)
    one_at_a_time = _SQLITE_WRITER if database.dialect.name == "sqlite" else nullcontext()
    with one_at_a_time, session_scope(database) as session:
        return _save(request, session, settings, now, token, posted)


def _save(
    request: Request,
    session: Session,
    settings: Settings,
    now: datetime,
    token: str,
    posted: _Posted,
) -> Response:
    found = _invitation(request, session, settings, token, now)
    if isinstance(found, Response):
        return found
    invitation = found
    scope = f"survey:{invitation.id}"
    valid = form_token_valid(settings.secret, scope, posted.csrf)
    if not valid or not same_origin(request, settings):
        return _page(settings, "survey_refused", {"token": token}, status=403)
    state = engine.availability(invitation, now)
    if state != "open":
        if state == "finished":
            return _next(token)
        return _state_page(session, settings, invitation, state, now)
    directory = settings.survey_definitions_dir
    if posted.action == "finish":
        try:
            engine.finish(session, invitation, now=now, directory=directory)
        except AnswerError as exc:
            survey = engine.load_survey(session, invitation, directory=directory)
            return _review_page(settings, survey, token, error=exc.message)
        _issue_certificate(session, settings, invitation)
        return _next(token)
    try:
        engine.submit_answer(
            session,
            invitation,
            posted.q,
            posted.values,
            now=now,
            channel="web",
            directory=directory,
        )
    except UnknownQuestion:
        return _next(token)
    except AnswerError as exc:
        survey = engine.load_survey(session, invitation, directory=directory)
        view = survey.question(posted.q)
        text = posted.values[0] if view.kind == "text" and posted.values else None
        return _question_page(
            settings, survey, view, token, chosen=posted.values, text=text, error=exc.message
        )
    return _next(token)


def _next(token: str) -> RedirectResponse:
    """On to the survey's next page (Post/Redirect/Get: reloading it never posts again)."""
    return RedirectResponse(token, status_code=303, headers=PRIVATE_HEADERS)
