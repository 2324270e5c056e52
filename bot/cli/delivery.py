"""``evalbot outbox``: what is waiting, failed or dead; retrying; undeliverable addresses.

- ``evalbot outbox``: counts by state and channel, then the pending, failed and dead messages,
  the soonest due first, with the reasons of those that did not go (``--state`` to list other
  states, ``--limit`` for more).
- ``evalbot outbox retry [ID...] [--to EMAIL]``: re-queue dead messages after a fix.
- ``evalbot outbox clear-address EMAIL``: an admin has mended an undeliverable address.
- ``evalbot outbox deliver [--until-idle]``: a delivery worker (SIGTERM finishes what it holds).
- ``evalbot outbox test-email ADDRESS``: send a test message now, to check the email settings;
  when it gets through, a paused email channel resumes.
- ``evalbot outbox resume CHANNEL``: an admin has mended what paused a channel (``bot.pauses``).
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from bot.channels.base import ChannelError, Outgoing
from bot.channels.registry import build_channels, email_channel
from bot.cli.common import Context, fail, load_context, parse_now
from bot.dispatcher import Dispatcher, DispatchReport
from bot.pauses import channel_pauses, resume_channel
from bot.rendering import RenderError, render_email
from surveys.models import (
    Channel,
    MessageKind,
    OutboxMessage,
    OutboxState,
)
from surveys.outbox_repair import RepairError, clear_address, person_by_email, requeue_dead
from surveys.text import plural

outbox = typer.Typer(
    help="The outbox, which every message goes through. Alone: what is pending, failed or dead.",
    invoke_without_command=True,
    no_args_is_help=False,
)

LISTED = (OutboxState.PENDING, OutboxState.FAILED, OutboxState.DEAD)


@outbox.callback()
def overview(
    ctx: typer.Context,
    state: Annotated[
        list[OutboxState] | None,
        typer.Option("--state", help="List messages in this state (repeatable)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many messages per state.")] = 20,
) -> None:
    """Counts by state and channel, then the pending, failed and dead messages (with the
    reasons of those that did not go)."""
    if ctx.invoked_subcommand is not None:
        return
    context = load_context()
    now = datetime.now(UTC)
    with Session(context.engine) as session:
        counts = session.exec(
            select(OutboxMessage.state, OutboxMessage.channel, func.count()).group_by(
                OutboxMessage.state, OutboxMessage.channel
            )
        ).all()
        due = session.exec(
            select(func.count()).where(
                col(OutboxMessage.state).in_([OutboxState.PENDING, OutboxState.FAILED]),
                OutboxMessage.available_at <= now,
            )
        ).one()
        by_state: dict[str, dict[str, int]] = {}
        for row_state, channel, count in counts:
            by_state.setdefault(row_state, {})[channel] = count
        typer.echo("Outbox")
        for value in OutboxState:
            per_channel = by_state.get(value.value, {})
            detail = ", ".join(f"{c} {n}" for c, n in sorted(per_channel.items()))
            total = sum(per_channel.values())
            typer.echo(f"  {value.value:<10} {total:>7}" + (f"   ({detail})" if detail else ""))
        typer.echo(f"  due now    {due:>7}")
        echo_pauses(session, context)
        for listed in state or list(LISTED):
            _list(session, context, listed, limit)


def echo_pauses(session: Session, context: Context) -> None:
    """Say which channels are paused, since when, why and how to resume them."""
    for pause in channel_pauses(session):
        since = pause.since.astimezone(context.settings.zone)
        typer.secho(
            f"\nSending by {pause.channel} is PAUSED since {since:%d %b %Y %H:%M}: {pause.reason}",
            fg=typer.colors.RED,
        )
        typer.echo(f"  Its messages wait. Once mended, resume with {pause.resume_hint}.")


def _list(session: Session, context: Context, state: OutboxState, limit: int) -> None:
    order = (
        col(OutboxMessage.available_at)
        if state in (OutboxState.PENDING, OutboxState.FAILED)
        else col(OutboxMessage.id).desc()
    )
    rows = session.exec(
        select(OutboxMessage).where(OutboxMessage.state == state).order_by(order).limit(limit)
    ).all()
    if not rows:
        return
    zone = context.settings.zone
    typer.echo(f"\n{state.value.capitalize()} (up to {limit}):")
    for row in rows:
        if state == OutboxState.PENDING:
            when = f"due {row.available_at.astimezone(zone):%d %b %H:%M}"
        elif state == OutboxState.FAILED:
            when = f"next try {row.available_at.astimezone(zone):%d %b %H:%M}"
        else:
            when = f"{row.attempts} attempts"
        typer.echo(
            f"  #{row.id} {row.channel} to {row.recipient}: {row.template} ({row.kind}), {when}"
        )
        if row.last_error:
            typer.echo(f"      {row.last_error}")


@outbox.command("retry")
def retry(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Outbox ids; all dead ones if none.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Only messages to this email address.")
    ] = None,
    now: Annotated[str | None, typer.Option(help="Re-queue as of this time (ISO).")] = None,
) -> None:
    """Re-queue dead messages (after mending what killed them); they go at the next delivery."""
    context = load_context()
    when = parse_now(now, context.settings)
    with Session(context.engine) as session:
        try:
            person = person_by_email(session, to) if to else None
        except RepairError as exc:
            fail(str(exc))
        done = requeue_dead(session, now=when, actor=context.actor, ids=ids, person=person)
        session.commit()
    typer.echo(f"Re-queued {plural(len(done.ids), 'dead message')}.")
    if done.blocked:
        typer.echo(
            f"{done.blocked} of them are to people whose email address is marked undeliverable; "
            "they will go by Telegram where linked, else die again. Mend the address, then "
            "run `evalbot outbox clear-address EMAIL`."
        )


@outbox.command("clear-address")
def clear_address_command(
    email: Annotated[str, typer.Argument(help="The address an admin has checked or mended.")],
) -> None:
    """Mark an undeliverable email address as usable again, so messages try it once more."""
    context = load_context()
    now = datetime.now(UTC)
    with Session(context.engine) as session:
        try:
            person = person_by_email(session, email)
        except RepairError as exc:
            fail(str(exc))
        done = clear_address(session, person, now=now, actor=context.actor)
        session.commit()
    if done.previous_reason is None:
        typer.echo(f"{done.email} is not marked undeliverable; nothing to clear.")
        return
    typer.echo(
        f"{done.email} ({done.name}) will be tried again. It was marked: {done.previous_reason}"
    )
    if done.dead:
        typer.echo(
            f"{plural(done.dead, 'dead message')} to {done.name}: "
            f"`evalbot outbox retry --to {done.email}` sends them again."
        )


@outbox.command("deliver")
def deliver(
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop once nothing is due or in flight.")
    ] = False,
) -> None:
    """Run a delivery worker: send what falls due until SIGTERM or Ctrl-C, which finish the
    messages in hand first. Several may run against one PostgreSQL database."""
    context = load_context()
    report = asyncio.run(_deliver(context, until_idle=until_idle))
    typer.echo(f"Delivered: {report}.")


async def _deliver(context: Context, *, until_idle: bool) -> DispatchReport:
    channels = build_channels(context.settings)
    dispatcher = Dispatcher(
        context.engine,
        context.settings,
        channels,
        clock=lambda: datetime.now(UTC),
        # The loop is this worker's own, so SQLite's short waits may block it; PostgreSQL's
        # network round trips are worth overlapping with sending.
        database_thread=context.engine.dialect.name == "postgresql",
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, dispatcher.stop)
    try:
        return await dispatcher.run(until_idle=until_idle)
    finally:
        for channel in channels.values():
            await channel.close()


@outbox.command("test-email")
def test_email(
    address: Annotated[str, typer.Argument(help="Where to send the test message.")],
) -> None:
    """Send a test message straight away (not queued) and show what the relay answered."""
    context = load_context(check_schema=False)
    now = datetime.now(UTC)
    row = OutboxMessage(
        id=0,
        idempotency_key=f"admin-test:{address}:{now.isoformat()}",
        channel=Channel.EMAIL,
        recipient=address,
        template="admin-test",
        context={"sent_by": context.actor},
        kind=MessageKind.NOTICE,
        due_at=now,
        available_at=now,
    )
    try:
        message = render_email(
            context.settings, row, recipient=address, recipient_name=address, now=now
        )
    except RenderError as exc:
        fail(f"Cannot build the test message: {exc}")
    try:
        reply = asyncio.run(_send_test(context, message))
    except ChannelError as exc:
        fail(f"The test message to {address} was not sent: {exc}", code=1)
    typer.echo(f"Sent to {address}: {reply}")
    try:
        with Session(context.engine) as session:
            resumed = resume_channel(
                session,
                Channel.EMAIL.value,
                now=now,
                actor=context.actor,
                why=f"a test message to {address} got through",
            )
            session.commit()
    except SQLAlchemyError:
        # Testing the relay needs no database; without one at the current schema there is
        # no pause to end either.
        resumed = None
    if resumed is not None:
        typer.echo("Sending by email had been paused; it resumes now, and the waiting messages go.")


@outbox.command("resume")
def resume(
    channel: Annotated[Channel, typer.Argument(help="The paused channel to resume.")],
) -> None:
    """Resume a paused channel once what paused it is mended; its waiting messages go at once."""
    context = load_context()
    now = datetime.now(UTC)
    with Session(context.engine) as session:
        resumed = resume_channel(
            session, channel.value, now=now, actor=context.actor, why="an admin said so"
        )
        session.commit()
    if resumed is None:
        typer.echo(f"Sending by {channel.value} is not paused; nothing to resume.")
        return
    typer.echo(
        f"Sending by {channel.value} resumes. It was paused since "
        f"{resumed.since.astimezone(context.settings.zone):%d %b %Y %H:%M}: {resumed.reason}"
    )


async def _send_test(context: Context, message: Outgoing) -> str:
    channel = email_channel(context.settings)
    try:
        return (await channel.send(message)).server_reply
    finally:
        await channel.close()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(outbox, name="outbox")
