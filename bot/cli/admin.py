"""``evalbot db upgrade`` and ``evalbot status``."""

from __future__ import annotations

import typer
from sqlalchemy import func
from sqlmodel import Session, select

from bot.cli.common import fail, load_context, load_settings_or_fail, missing_sqlite_file
from bot.pauses import channel_pauses
from surveys import db
from surveys.models import Agency, Booking, BookingStatus, CourseSession, Person

database = typer.Typer(help="Look after the database.", no_args_is_help=True)


@database.command("upgrade")
def upgrade() -> None:
    """Create the database or bring it to the current schema. Safe to run at any time."""
    context = load_context(check_schema=False)
    before, after = db.upgrade(context.engine)
    if before == after:
        typer.echo(f"The database is up to date (revision {after}).")
    else:
        typer.echo(f"Upgraded the database from {before or 'empty'} to revision {after}.")


def status() -> None:
    """Show how many sessions, bookings (by status), people and agencies there are."""
    missing = missing_sqlite_file(load_settings_or_fail().database_url)
    if missing is not None:
        fail(
            f"There is no Evalbot database here: {missing} does not exist. Run Evalbot in the "
            "folder that holds its evalbot.toml (or set EVALBOT_DATABASE_URL), or create a new "
            "database with `evalbot db upgrade`.",
            code=1,
        )
    context = load_context()
    with Session(context.engine) as session:
        pauses = channel_pauses(session)
        sessions = session.exec(select(func.count()).select_from(CourseSession)).one()
        people = session.exec(select(func.count()).select_from(Person)).one()
        agencies = session.exec(select(func.count()).select_from(Agency)).one()
        by_status = dict(
            session.exec(select(Booking.status, func.count()).group_by(Booking.status)).all()
        )
    typer.echo(f"Sessions:  {sessions}")
    typer.echo(f"Bookings:  {sum(by_status.values())}")
    for value in BookingStatus:
        typer.echo(f"  {value.value:<18} {by_status.get(value.value, 0)}")
    typer.echo(f"People:    {people}")
    typer.echo(f"Agencies:  {agencies}")
    for pause in pauses:
        since = pause.since.astimezone(context.settings.zone)
        typer.secho(
            f"Delivery:  sending by {pause.channel} is PAUSED since {since:%d %b %Y %H:%M}: "
            f"{pause.reason}. Once mended, resume with {pause.resume_hint}.",
            fg=typer.colors.RED,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(database, name="db")
    app.command("status")(status)
