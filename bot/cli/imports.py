"""``evalbot import bookings FILE.csv``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import fail, load_context
from surveys.db import session_scope
from surveys.importer import REQUIRED, ImportFailed, Tally, import_file

MAX_SHOWN = 100

importing = typer.Typer(help="Import data from other systems.", no_args_is_help=True)


HELP = (
    "Import or update bookings from a booking system's CSV export, one row per delegate.\n\n"
    f"Columns: {', '.join(REQUIRED)}; optional: course_level, role, min_places, max_places, "
    "trainer_email, booked_at, status. Dates as 2026-03-02 09:30 or 02/03/2026 09:30, local time. "
    "The whole file is checked first: if any row is wrong nothing is imported and every problem "
    "is listed with its line and column. Importing an updated export again is safe."
)


@importing.command("bookings", help=HELP)
def bookings(
    file: Annotated[Path, typer.Argument(help="The booking system's CSV export.")],
) -> None:
    context = load_context()
    try:
        with session_scope(context.engine) as session:
            result = import_file(
                session,
                file,
                zone=context.settings.zone,
                now=datetime.now(UTC),
                actor=context.actor,
            )
    except ImportFailed as failure:
        lines = [problem.describe(file.name) for problem in failure.problems[:MAX_SHOWN]]
        if len(failure.problems) > MAX_SHOWN:
            lines.append(f"... and {len(failure.problems) - MAX_SHOWN} more problems.")
        lines.append(f"Nothing was imported: {len(failure.problems)} problem(s) in {file}.")
        fail("\n".join(lines), code=1)
    rows = "1 booking row" if result.rows == 1 else f"{result.rows:,} booking rows"
    typer.echo(f"Imported {rows} from {file}.")
    typer.echo(f"{'':<10}{'created':>9}{'updated':>9}{'unchanged':>11}")
    for label, tally in (
        ("sessions", result.sessions),
        ("bookings", result.bookings),
        ("people", result.people),
        ("agencies", result.agencies),
    ):
        typer.echo(_row(label, tally))
    if result.rescheduled:
        typer.echo(
            "Sessions with a new time (their unsent messages will move): "
            + ", ".join(result.rescheduled)
        )
    if result.erased:
        typer.echo(f"Left alone: {result.erased} rows whose booking belongs to an erased person.")


def _row(label: str, tally: Tally) -> str:
    return f"{label:<10}{tally.created:>9}{tally.updated:>9}{tally.unchanged:>11}"


def register(app: typer.Typer) -> None:
    app.add_typer(importing, name="import")
