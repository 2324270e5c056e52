"""``evalbot tick`` (one pass of everything due, then delivery) and ``evalbot run``."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import typer
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.cli.common import FORWARDED_ALLOW_IPS, Context, load_context, parse_now, proxies_option
from bot.mail_erasure import finish_erasure
from schedules.planning import UNSENT
from schedules.tick import tick
from schedules.waiting import holding
from surveys.models import OutboxMessage


def tick_command(
    now: str | None = typer.Option(
        None,
        "--now",
        help="Act as if it were this time (ISO, e.g. 2026-03-02T09:00; local time unless a "
        "zone is given). Default: the real time.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be done and sent, changing nothing."
    ),
) -> None:
    """Run one pass of everything due (plan, open, close, remind) and deliver what is due."""
    context = load_context()
    moment = parse_now(now, context.settings)
    settings = context.settings
    report = tick(
        context.engine,
        now=moment,
        policy=context.policy,
        zone=settings.zone,
        secret=settings.secret,
        definitions_dir=settings.survey_definitions_dir,
        telegram=settings.telegram_token is not None,
        dry_run=dry_run,
        retention_years=settings.retention_years,
        admin_email=settings.admin_email,
    )
    local = moment.astimezone(settings.zone)
    heading = "Dry run: nothing was changed or sent" if dry_run else "Tick"
    typer.echo(f"{heading} at {local:%a %-d %b %Y %H:%M %Z}.")
    for line in report.lines():
        typer.echo(f"  {line}")
    if dry_run:
        return
    if report.erasure is not None:
        finish_erasure(context.engine, settings.mail_dir, report.erasure.traces)
    deliver(context, moment)
    with Session(context.engine) as session:
        typer.echo(holding(session, moment, context.policy, settings.zone))


def deliver(context: Context, now: datetime) -> None:
    """Send what is due at ``now`` and print the outcome by template."""
    from bot.channels.registry import build_channels
    from bot.dispatcher import deliver_due

    due_ids = _due_ids(context.engine, now)
    if not due_ids:
        typer.echo("Delivery: nothing due.")
        return

    async def send() -> str:
        channels = build_channels(context.settings)
        try:
            result = await deliver_due(context.engine, context.settings, channels, now=now)
        finally:
            for channel in channels.values():
                await channel.close()
        return str(result)

    summary = asyncio.run(send())
    typer.echo(f"Delivery: {summary}.")
    for template, state, count in _outcomes(context.engine, due_ids):
        typer.echo(f"  {template}: {count} {state}")


def _due_ids(engine: Engine, now: datetime) -> list[int]:
    with Session(engine) as session:
        ids = session.exec(
            select(OutboxMessage.id).where(
                col(OutboxMessage.state).in_(UNSENT), col(OutboxMessage.available_at) <= now
            )
        ).all()
    return [row for row in ids if row is not None]


def _outcomes(engine: Engine, ids: list[int]) -> list[tuple[str, str, int]]:
    found: Counter[tuple[str, str]] = Counter()
    with Session(engine) as session:
        for start in range(0, len(ids), 500):
            rows = session.exec(
                select(OutboxMessage.template, OutboxMessage.state, func.count())
                .where(col(OutboxMessage.id).in_(ids[start : start + 500]))
                .group_by(col(OutboxMessage.template), col(OutboxMessage.state))
            ).all()
            for template, state, count in rows:
                found[(template, str(state))] += count
    return [(template, state, count) for (template, state), count in sorted(found.items())]


def run_command(
    host: str | None = typer.Option(None, "--host", help="Listen on this address."),
    port: int | None = typer.Option(None, "--port", help="Listen on this port."),
    forwarded_allow_ips: str | None = FORWARDED_ALLOW_IPS,
) -> None:
    """Run the service: the web app, Telegram when configured, and the tick every minute."""
    from bot.runner import run

    proxies = proxies_option(forwarded_allow_ips)
    context = load_context()
    run(
        context.settings,
        context.policy,
        host=host,
        port=port,
        forwarded_allow_ips=proxies,
    )


def register(app: typer.Typer) -> None:
    app.command("tick")(tick_command)
    app.command("run")(run_command)
