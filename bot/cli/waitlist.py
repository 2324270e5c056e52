"""``evalbot waitlist SESSION_REF`` (a session's waiting list) and ``evalbot session ...``
(sessions under their minimum, and cancelling a session with everyone told)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.common import fail, load_context, parse_now
from schedules.sessions import (
    SessionCancelError,
    cancel_session,
    session_figures,
    under_filled_sessions,
)
from schedules.waitlist import waiting_list
from surveys.db import session_scope
from surveys.models import CourseSession

_Now = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Act as if it were this time (ISO; local time unless a zone is given).",
        show_default=False,
    ),
]
_SessionRef = Annotated[
    str, typer.Argument(metavar="SESSION_REF", help="The session's reference.", show_default=False)
]

sessions_app = typer.Typer(
    help="Sessions: those under their minimum places, and cancelling one.", no_args_is_help=True
)


def waitlist(session_ref: _SessionRef) -> None:
    """Show a session's waiting list in order (first booked, first offered a place)."""
    context = load_context()
    zone = context.settings.zone
    with session_scope(context.engine) as session:
        course_session = session.exec(
            select(CourseSession).where(CourseSession.ref == session_ref)
        ).first()
        if course_session is None:
            fail(f"No session has the reference {session_ref!r}.", code=1)
        entries = waiting_list(session, course_session.id or 0)
        figures = session_figures(session, course_session)
    maximum = figures["max_places"]
    places = f"{figures['booked']} booked" + (f" of {maximum} places" if maximum else "")
    typer.echo(f"Session {session_ref}: {places}; {len(entries)} waiting.")
    for entry in entries:
        booked = f"{entry.booked_at.astimezone(zone):%d %b %Y %H:%M}" if entry.booked_at else "-"
        offer = (
            f"  offered a place, open until {entry.offer_expires_at.astimezone(zone):%d %b %H:%M}"
            if entry.offer_expires_at
            else ""
        )
        agency = f", {entry.agency}" if entry.agency else ""
        typer.echo(
            f"{entry.position:>4}. {entry.booking_ref}  {entry.delegate_name} "
            f"<{entry.delegate_email}>{agency}  booked {booked}{offer}"
        )


@sessions_app.command("under-filled")
def under_filled(now: _Now = None) -> None:
    """Sessions still to come with fewer bookings than their minimum."""
    context = load_context()
    moment = parse_now(now, context.settings)
    zone = context.settings.zone
    with session_scope(context.engine) as session:
        found = under_filled_sessions(session, now=moment)
    if not found:
        typer.echo("No session to come is under its minimum.")
        return
    for row in found:
        told = (
            f"; coordinator told {row.reported_at.astimezone(zone):%d %b %Y}"
            if row.reported_at
            else ""
        )
        starts = f"{row.starts_at.astimezone(zone):%d %b %Y %H:%M}"
        typer.echo(
            f"{row.session_ref}  {row.course_title}, {starts}: {row.booked} booked, "
            f"minimum {row.min_places}, {row.waiting} waiting{told}"
        )


@sessions_app.command("cancel")
def cancel(session_ref: _SessionRef, now: _Now = None) -> None:
    """Cancel a session: its delegates, their managers and its waiting list are told on the
    next tick, and its unsent messages and surveys are withdrawn."""
    context = load_context()
    moment = parse_now(now, context.settings)
    try:
        with session_scope(context.engine) as session:
            cancel_session(session, session_ref, now=moment, actor=context.actor)
    except SessionCancelError as exc:
        fail(f"Not cancelled: {exc}", code=1)
    typer.echo(
        f"Session {session_ref} is cancelled. The next tick tells its delegates, their managers "
        "and its waiting list, and withdraws its unsent messages."
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("waitlist")(waitlist)
    app.add_typer(sessions_app, name="session")
