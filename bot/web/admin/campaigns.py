"""Campaigns (``/admin/campaigns``): choose, preview, confirm, watch, and look back.

- ``GET /admin/campaigns``: the three campaigns (remind, places, refresher), each a form for its
  scope, and the past campaigns with what was delivered and who responded
  (``schedules.campaigns.results``, as ``evalbot campaign list``).
- ``GET /admin/campaigns/preview``: who it would reach, by channel, and who it would skip
  (``schedules.campaigns.preview``), with one of its messages rendered as the first recipient
  would get it; a coordinator confirms with the form at the bottom.
- ``POST /admin/campaigns``: queue it (``schedules.campaigns.run``, as ``evalbot campaign ...``
  does), audited under the coordinator's name; then its progress page.
- ``GET /admin/campaigns/<id>``: queued, sent, waiting and undeliverable counts
  (``schedules.campaign_progress``); ``progress.js`` refreshes them where scripts run, and the
  page's Refresh link does without.

Nothing here decides who is messaged: the scope is read by ``schedules.campaigns.Scope`` and
every rule is theirs. The one message shown in the preview is rendered by queuing the campaign in
a savepoint that is rolled back, so it is exactly what ``run`` would queue and nothing is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from bot.campaign_options import campaign_options
from bot.rendering import RenderError, render
from bot.settings import Settings
from bot.web.admin.auth import StaffDep
from bot.web.admin.pages import CONSOLE_HEADERS, message
from bot.web.admin.pages import render as render_page
from bot.web.deps import NowDep, PolicyDep, SessionDep, SettingsDep
from schedules import campaigns
from schedules.campaign_progress import delivery
from schedules.campaigns import CampaignError, CampaignPreview
from schedules.policy import Policy
from surveys.models import Campaign, Channel, Course, OutboxMessage, Person, Sector, Stage

router = APIRouter()

PREVIEW_NAMES = 25  # recipients named on the preview; the rest are counted
SURVEY_STAGES = (Stage.PRE, Stage.END, Stage.IMPACT, Stage.MANAGER)
EXPLAIN = {
    "remind": "Remind everyone in scope whose survey is open and not finished.",
    "places": "Offer a session's free places to people who have not booked it.",
    "refresher": "Remind those whose training is due for refresh.",
}
PROGRESS_SCRIPT = """\
(function () {
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-source");
  function update() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (counts) {
        Object.keys(counts).forEach(function (key) {
          var cell = box.querySelector('[data-count="' + key + '"]');
          if (cell) { cell.textContent = counts[key]; }
        });
        if (counts.waiting > 0) { window.setTimeout(update, 5000); }
      }).catch(function () { window.setTimeout(update, 15000); });
  }
  window.setTimeout(update, 5000);
})();
"""


def _raw(values: dict[str, str | None]) -> dict[str, str]:
    """The scope fields that were filled in."""
    return {name: value.strip() for name, value in values.items() if value and value.strip()}


def _form_context(session: Session) -> dict[str, Any]:
    courses = session.exec(select(Course.title).order_by(col(Course.title))).all()
    return {
        "kinds": campaigns.KINDS,
        "labels": campaigns.LABELS,
        "explain": EXPLAIN,
        "stages": [stage.value for stage in SURVEY_STAGES],
        "courses": list(courses),
        "sectors": [sector.value for sector in Sector],
    }


@router.get("/admin/campaigns", response_class=HTMLResponse)
def campaigns_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Choose a campaign and its scope; the past campaigns and how they went."""
    return render_page(
        request,
        "web/admin/campaigns.html",
        {
            "page_title": "Campaigns",
            **_form_context(session),
            "past": campaigns.results(session, limit=50),
            "response_days": campaigns.RESPONSE_DAYS,
            "error": None,
            "chosen": "",
            "values": {},
        },
    )


def _sample(
    session: Session,
    settings: Settings,
    policy: Policy,
    kind: str,
    raw: dict[str, str],
    now: datetime,
) -> dict[str, str] | None:
    """The first message the campaign would queue, rendered; nothing is kept."""
    savepoint = session.begin_nested()
    try:
        campaign = campaigns.run(
            session,
            kind,
            raw,
            now=now,
            actor="preview",
            secret=settings.secret,
            **campaign_options(settings, policy),
        )
        row = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.campaign_id) == campaign.id)
            .order_by(col(OutboxMessage.id))
            .limit(1)
        ).first()
        if row is None:
            return None
        person = session.get(Person, row.person_id) if row.person_id else None
        outgoing = render(
            settings,
            row,
            channel=Channel(row.channel),
            recipient=row.recipient,
            recipient_name=person.name if person else "",
            now=now,
        )
        return {
            "channel": str(row.channel),
            "to": outgoing.headers.get("To", row.recipient),
            "subject": outgoing.subject,
            "text": outgoing.text,
        }
    finally:
        savepoint.rollback()


@router.get("/admin/campaigns/preview", response_class=HTMLResponse)
def campaign_preview(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    policy: PolicyDep,
    now: NowDep,
    kind: str = "",
    stage: str | None = None,
    session_ref: Annotated[str | None, Query(alias="session", max_length=200)] = None,
    course: str | None = None,
    agency: str | None = None,
    sector: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
) -> HTMLResponse:
    """Who the campaign would reach and skip, and one of its messages; writes nothing."""
    raw = _raw(
        {
            "stage": stage,
            "session": session_ref,
            "course": course,
            "agency": agency,
            "sector": sector,
            "date_from": date_from,
            "date_to": date_to,
        }
    )
    try:
        found = campaigns.preview(session, kind, raw, now=now, **campaign_options(settings, policy))
        sample = _sample(session, settings, policy, kind, raw, now) if found.to_send else None
    except CampaignError as exc:
        return render_page(
            request,
            "web/admin/campaigns.html",
            {
                "page_title": "Error: Campaigns",
                **_form_context(session),
                "error": f"The campaign cannot run as asked: {exc}.",
                "chosen": kind,
                "values": raw,
                "past": [],
                "response_days": campaigns.RESPONSE_DAYS,
            },
            status=422,
        )
    except RenderError as exc:
        return message(
            request,
            "The message cannot be shown",
            f"One of the campaign's templates fails, so nothing can be sent: {exc}.",
            status=500,
            tone="warning",
            link=("Back to campaigns", "/admin/campaigns"),
        )
    return _preview_page(request, found, raw, sample, settings)


def _preview_page(
    request: Request,
    found: CampaignPreview,
    raw: dict[str, str],
    sample: dict[str, str] | None,
    settings: Settings,
) -> HTMLResponse:
    return render_page(
        request,
        "web/admin/campaign_preview.html",
        {
            "page_title": f"Preview: {campaigns.LABELS[found.kind]} campaign",
            "found": found,
            "label": campaigns.LABELS[found.kind],
            "raw": raw,
            "sample": sample,
            "channels": [channel.value for channel in Channel],
        },
    )


@router.post("/admin/campaigns", response_class=HTMLResponse)
def campaign_run(
    request: Request,
    staff: StaffDep,
    session: SessionDep,
    settings: SettingsDep,
    policy: PolicyDep,
    now: NowDep,
    kind: Annotated[str, Form(max_length=20)] = "",
    stage: Annotated[str | None, Form(max_length=40)] = None,
    session_ref: Annotated[str | None, Form(alias="session", max_length=200)] = None,
    course: Annotated[str | None, Form(max_length=300)] = None,
    agency: Annotated[str | None, Form(max_length=200)] = None,
    sector: Annotated[str | None, Form(max_length=60)] = None,
    date_from: Annotated[str | None, Form(max_length=20)] = None,
    date_to: Annotated[str | None, Form(max_length=20)] = None,
) -> Response:
    """Queue the campaign (coordinators only, checked with the CSRF token before this runs)."""
    raw = _raw(
        {
            "stage": stage,
            "session": session_ref,
            "course": course,
            "agency": agency,
            "sector": sector,
            "date_from": date_from,
            "date_to": date_to,
        }
    )
    try:
        campaign = campaigns.run(
            session,
            kind,
            raw,
            now=now,
            actor=staff.actor,
            secret=settings.secret,
            **campaign_options(settings, policy),
        )
    except CampaignError as exc:
        session.rollback()
        return message(
            request,
            "Campaign not run",
            f"Nothing was queued: {exc}.",
            status=422,
            tone="warning",
            link=("Back to campaigns", "/admin/campaigns"),
        )
    session.commit()
    return RedirectResponse(f"/admin/campaigns/{campaign.id}", status_code=303)


@router.get("/admin/campaigns/progress.js")
def progress_script() -> Response:
    """Refreshes a progress page's counts while messages wait (the page works without it)."""
    headers = {**CONSOLE_HEADERS, "Cache-Control": "max-age=3600"}
    return Response(PROGRESS_SCRIPT, media_type="text/javascript", headers=headers)


@router.get("/admin/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_progress(
    campaign_id: int, request: Request, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """How a campaign's messages are getting on."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return message(
            request,
            "No such campaign",
            "There is no campaign at this address. Choose one from the list of past campaigns.",
            status=404,
            link=("Back to campaigns", "/admin/campaigns"),
        )
    states = delivery(session, campaign_id)
    return render_page(
        request,
        "web/admin/campaign_progress.html",
        {
            "page_title": f"Campaign {campaign.id}: {campaigns.LABELS.get(campaign.kind, '')}",
            "campaign": campaign,
            "label": campaigns.LABELS.get(campaign.kind, campaign.kind),
            "summary": campaigns.describe(campaign),
            "states": states,
        },
    )


@router.get("/admin/campaigns/{campaign_id}/progress.json")
def campaign_progress_json(campaign_id: int, session: SessionDep) -> Response:
    if session.get(Campaign, campaign_id) is None:
        return JSONResponse({"error": "no such campaign"}, status_code=404)
    return JSONResponse(delivery(session, campaign_id).as_dict(), headers=CONSOLE_HEADERS)
