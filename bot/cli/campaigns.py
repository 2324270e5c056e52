"""``evalbot campaign remind|places|refresher|list``: admin campaigns from the command line.

Each campaign previews its audience first. ``--dry-run`` stops there; otherwise it asks for
confirmation (``--yes`` skips the question), queues the messages with a progress bar and, when
the sending window is open, sends them at once with a second one. Outside the window they wait
in the outbox for ``evalbot run`` or ``evalbot tick``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import typer
from sqlmodel import Session

from bot.campaign_options import campaign_options
from bot.cli.common import Context, fail, load_context, load_settings_or_fail, parse_day, parse_now
from schedules import campaigns
from schedules.campaign_progress import delivery
from schedules.campaigns import CampaignError, CampaignPreview, UnknownScope
from surveys.db import session_scope
from surveys.models import OutboxState
from surveys.text import plural

app = typer.Typer(
    help="Admin campaigns: remind those with a survey to finish, promote last-minute places, "
    "remind those due for refresher training.",
    no_args_is_help=True,
)

DRY_RUN = typer.Option(
    False, "--dry-run", help="Show who would be messaged, by channel; queue and send nothing."
)
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
NOW = typer.Option(None, "--now", help="Act as if it were this time (ISO); default: now.")
COURSE = typer.Option(None, "--course", help="Only this course (title).")
AGENCY = typer.Option(None, "--agency", help="Only people of this agency.")
SECTOR = typer.Option(None, "--sector", help="Only people of this sector.")


@app.command("remind")
def remind(
    stage: str = typer.Option(..., "--stage", help="pre, end, impact or manager."),
    session_ref: str | None = typer.Option(None, "--session", help="Only this session (ref)."),
    course: str | None = COURSE,
    agency: str | None = typer.Option(None, "--agency", help="Only delegates of this agency."),
    date_from: str | None = typer.Option(
        None, "--from", help="Sessions on or after this date (31/03/2026 or 2026-03-31)."
    ),
    date_to: str | None = typer.Option(
        None, "--to", help="Sessions on or before this date (31/03/2026 or 2026-03-31)."
    ),
    dry_run: bool = DRY_RUN,
    yes: bool = YES,
    now: str | None = NOW,
) -> None:
    """Remind everyone in scope whose survey is open and unfinished."""
    zone = load_settings_or_fail().zone
    start, end = parse_day(date_from, "--from", zone), parse_day(date_to, "--to", zone)
    if start and end and start > end:
        fail(f"--from {start:%d/%m/%Y} is after --to {end:%d/%m/%Y}", code=1)
    scope = {
        "stage": stage,
        "session": session_ref,
        "course": course,
        "agency": agency,
        "date_from": start.isoformat() if start else None,
        "date_to": end.isoformat() if end else None,
    }
    _campaign("remind", scope, dry_run=dry_run, yes=yes, now=now)


@app.command("places")
def places(
    session_ref: str = typer.Option(..., "--session", help="The session with free places (ref)."),
    agency: str | None = AGENCY,
    sector: str | None = SECTOR,
    dry_run: bool = DRY_RUN,
    yes: bool = YES,
    now: str | None = NOW,
) -> None:
    """Offer a session's free places to people who have not booked it."""
    scope = {"session": session_ref, "agency": agency, "sector": sector}
    _campaign("places", scope, dry_run=dry_run, yes=yes, now=now)


@app.command("refresher")
def refresher(
    course: str | None = COURSE,
    agency: str | None = AGENCY,
    sector: str | None = SECTOR,
    dry_run: bool = DRY_RUN,
    yes: bool = YES,
    now: str | None = NOW,
) -> None:
    """Remind those whose training is due for refresh (policy refresher_years)."""
    scope = {"course": course, "agency": agency, "sector": sector}
    _campaign("refresher", scope, dry_run=dry_run, yes=yes, now=now)


def _options(context: Context) -> dict[str, Any]:
    return campaign_options(context.settings, context.policy)


def _campaign(kind: str, raw: dict[str, Any], *, dry_run: bool, yes: bool, now: str | None) -> None:
    context = load_context()
    moment = parse_now(now, context.settings)
    try:
        with Session(context.engine) as session:
            found = campaigns.preview(session, kind, raw, now=moment, **_options(context))
    except UnknownScope as exc:
        fail(f"Campaign not run: {exc}.", code=1)
    except CampaignError as exc:
        fail(f"Campaign not run: {exc}.")
    _show(found, context)
    if dry_run:
        typer.echo("Dry run: nothing was queued or sent.")
        return
    if found.to_send == 0:
        typer.echo("Nobody to message: nothing was queued.")
        return
    if not yes and not typer.confirm(f"Queue {plural(found.to_send, 'message')} now?"):
        typer.echo("Nothing sent.")
        return
    try:
        with (
            session_scope(context.engine) as session,
            typer.progressbar(length=found.to_send, label="Queueing") as bar,
        ):
            campaign = campaigns.run(
                session,
                kind,
                raw,
                now=moment,
                actor=context.actor,
                secret=context.settings.secret,
                progress=bar.update,
                **_options(context),
            )
    except CampaignError as exc:
        fail(f"Campaign not run: {exc}.")
    counts = campaign.counts
    queued = plural(int(counts.get("queued", 0)), "message")
    typer.echo(f"Recorded as campaign {campaign.id}: {queued} queued.")
    if found.send_at > moment:
        local = found.send_at.astimezone(context.settings.zone)
        typer.echo(
            f"The sending window is closed: they go out from {local:%a %-d %b %Y, %H:%M}, "
            "when `evalbot run` or `evalbot tick` next delivers."
        )
        return
    assert campaign.id is not None
    _send(context, campaign.id, int(counts.get("queued", 0)), moment)


def _show(found: CampaignPreview, context: Context) -> None:
    label = campaigns.LABELS[found.kind]
    typer.echo(f"{label} campaign ({_scope_text(found.scope)})")
    if found.free_places is not None:
        typer.echo(f"  free places:                        {found.free_places}")
    typer.echo(f"  to message:                         {found.to_send}")
    for channel in campaigns.CAMPAIGN_CHANNELS:
        typer.echo(f"    by {channel.value + ':':<31} {found.channels.get(channel.value, 0)}")
    typer.echo(f"  skipped, opted out:                 {found.opted_out}")
    typer.echo(f"  skipped, no usable address:         {found.unreachable}")
    typer.echo(f"  already messaged by this campaign:  {found.already_messaged}")
    if found.names:
        more = found.to_send - len(found.names)
        tail = f", and {more} more" if more > 0 else ""
        typer.echo(f"  first: {', '.join(found.names)}{tail}")
    local = found.send_at.astimezone(context.settings.zone)
    typer.echo(f"  messages go out from {local:%a %-d %b %Y, %H:%M} (the sending window)")


def _scope_text(scope: Mapping[str, Any]) -> str:
    """A campaign's scope as its summaries show it: ``course X, agency Y``, or ``everyone``."""
    return ", ".join(f"{k} {v}" for k, v in scope.items()) or "everyone"


def _sent(context: Context, campaign_id: int) -> int:
    with Session(context.engine) as session:
        return delivery(session, campaign_id).count(OutboxState.SENT, OutboxState.DEAD)


def _send(context: Context, campaign_id: int, queued: int, now: datetime) -> None:
    """Deliver what is due now through the dispatcher, with a bar of the campaign's messages."""
    from bot.channels.registry import build_channels
    from bot.dispatcher import deliver_due

    async def deliver() -> str:
        channels = build_channels(context.settings)
        try:
            task = asyncio.create_task(
                deliver_due(context.engine, context.settings, channels, now=now)
            )
            with typer.progressbar(length=queued, label="Sending ") as bar:
                done = 0
                while True:
                    finished, _ = await asyncio.wait({task}, timeout=0.25)
                    count = await asyncio.to_thread(_sent, context, campaign_id)
                    bar.update(count - done)
                    done = count
                    if finished:
                        break
            return str(task.result())
        finally:
            for channel in channels.values():
                await channel.close()

    summary = asyncio.run(deliver())
    typer.echo(f"Delivery: {summary}.")
    with Session(context.engine) as session:
        states = delivery(session, campaign_id)
    typer.echo(
        f"This campaign: {states.sent} sent, {states.waiting} waiting "
        f"(rate limits or retries), {states.dead} undeliverable."
    )


@app.command("list")
def list_campaigns(
    limit: int = typer.Option(20, "--limit", help="How many of the latest campaigns."),
) -> None:
    """Past campaigns: what was queued and delivered, and who responded within 7 days."""
    context = load_context()
    with Session(context.engine) as session:
        found = campaigns.results(session, limit=limit)
    if not found:
        typer.echo("No campaigns yet.")
        return
    zone = context.settings.zone
    typer.echo(
        f"{'id':>4}  {'when':<17} {'kind':<10} {'queued':>6} {'sent':>6} {'waiting':>7} "
        f"{'opted out':>9} {'responded':>9}  scope / by"
    )
    for result in found:
        campaign = result.campaign
        scope = _scope_text(campaign.scope)
        when = campaign.created_at.astimezone(zone)
        typer.echo(
            f"{campaign.id:>4}  {when:%Y-%m-%d %H:%M}  {campaign.kind:<10} {result.queued:>6} "
            f"{result.delivered:>6} {result.pending:>7} "
            f"{campaign.counts.get('opted_out', 0):>9} {result.responded:>9}  "
            f"{scope} / {campaign.created_by}"
        )
    typer.echo(
        "Responded within 7 days: for reminders, surveys finished; for places, bookings made on "
        "the session; for refreshers, bookings made on a course attended before."
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="campaign")
