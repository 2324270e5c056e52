"""``evalbot import bookings FILE.csv`` (and ``--check``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from bot.cli.common import fail, load_context
from surveys.importer import OPTIONAL, REQUIRED, ImportFailed, Tally, import_file

MAX_SHOWN = 100

importing = typer.Typer(help="Import data from other systems.", no_args_is_help=True)


HELP = (
    "Import or update bookings from a booking system's CSV export, one row per delegate.\n\n"
    f"Columns: {', '.join(REQUIRED)}; optional: {', '.join(OPTIONAL)}. Dates as "
    "2026-03-02 09:30 or 02/03/2026 09:30, local time. The whole file is checked: if any row is "
    "wrong nothing is imported and every problem is listed with its line and column. Importing "
    "an updated export again is safe. With --check the file is checked against the database "
    "and nothing is written."
)


def _plural(count: int, one: str) -> str:
    return f"1 {one}" if count == 1 else f"{count:,} {one}s"


@importing.command("bookings", help=HELP)
def bookings(
    file: Annotated[Path, typer.Argument(help="The booking system's CSV export.")],
    check: Annotated[
        bool,
        typer.Option("--check", help="Check the file and say what it would do; write nothing."),
    ] = False,
) -> None:
    context = load_context()
    try:
        with Session(context.engine, expire_on_commit=False) as session:
            result = import_file(
                session,
                file,
                zone=context.settings.zone,
                now=datetime.now(UTC),
                actor=context.actor,
            )
            if check:
                session.rollback()
            else:
                session.commit()
    except ImportFailed as failure:
        lines = [problem.describe(file.name) for problem in failure.problems[:MAX_SHOWN]]
        if len(failure.problems) > MAX_SHOWN:
            lines.append(f"... and {len(failure.problems) - MAX_SHOWN:,} more problems.")
        problems = _plural(len(failure.problems), "problem")
        if check:
            lines.append(f"{problems} in {file}; nothing was written.")
        else:
            lines.append(f"Nothing was imported: {problems} in {file}.")
        fail("\n".join(lines), code=1)
    rows = _plural(result.rows, "booking row")
    if check:
        typer.echo(f"Checked {rows} in {file}: no problems. Nothing was written (--check).")
        typer.echo("Importing it would give:")
    else:
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
    if result.relocated:
        typer.echo(
            "Sessions with a new venue or joining link (their delegates will be told): "
            + ", ".join(result.relocated)
        )
    if result.erased:
        rows_left = _plural(result.erased, "row")
        typer.echo(f"Left alone: {rows_left} whose booking belongs to an erased person.")


def _row(label: str, tally: Tally) -> str:
    return f"{label:<10}{tally.created:>9}{tally.updated:>9}{tally.unchanged:>11}"


def register(app: typer.Typer) -> None:
    app.add_typer(importing, name="import")
