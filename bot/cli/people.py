"""``evalbot person export`` and ``evalbot person erase``: a person's data on request."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from sqlmodel import Session

from bot.cli.common import fail, load_context, parse_now
from surveys.db import compact
from surveys.people import (
    PersonNotFound,
    erase_people,
    erase_person,
    find_person,
    inactive_since,
    person_record,
)

person_app = typer.Typer(
    help="A person's data on request: export everything held about them, or erase them.",
    no_args_is_help=True,
)


@person_app.command("export")
def export(
    email: str = typer.Argument(..., help="The person's email address (any case)."),
    out: Path | None = typer.Option(
        None, "--out", help="Write the JSON to this file instead of printing it."
    ),
) -> None:
    """Everything Evalbot holds about a person, as JSON: bookings, surveys, answers, messages."""
    context = load_context()
    with Session(context.engine) as session:
        try:
            record = person_record(session, find_person(session, email))
        except PersonNotFound as exc:
            fail(f"{exc}.", code=1)
    text = json.dumps(record, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    typer.echo(f"Wrote what is held about {record['person']['email']} to {out}.")


@person_app.command("erase")
def erase(
    email: str = typer.Argument(..., help="The person's email address (any case)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    now: str | None = typer.Option(None, "--now", help="Act as if it were this time (ISO)."),
) -> None:
    """Erase a person: their name, email, Telegram chat, free-text answers, reasons and links.

    Their bookings and scored answers stay, pointing to no one, so the partnership's figures
    still add up; nothing more is sent to or about them. This cannot be undone.
    """
    context = load_context()
    moment = parse_now(now, context.settings)
    with Session(context.engine) as session:
        try:
            person = find_person(session, email)
        except PersonNotFound as exc:
            fail(f"{exc}.", code=1)
        if person.erased_at is not None:
            fail(f"{email.strip()} was already erased.", code=1)
        record = person_record(session, person)
        typer.echo(
            f"{person.name} <{person.email}>: {len(record['bookings'])} bookings, "
            f"{len(record['surveys'])} surveys, {len(record['messages'])} messages."
        )
        if not yes:
            typer.confirm("Erase this person? This cannot be undone", abort=True)
        done = erase_person(session, person, now=moment, actor=context.actor)
        session.commit()
    compact(context.engine)
    typer.echo(
        f"Erased. Bookings kept without a name: {done.bookings}; free-text answers cleared: "
        f"{done.answers_cleared}; surveys withdrawn: {done.surveys_withdrawn}; unsent messages "
        f"withdrawn: {done.messages_withdrawn}; messages emptied: {done.messages_emptied}; "
        f"links removed: {done.links_removed}; audit entries cleaned: "
        f"{done.audit_entries_cleaned}."
    )


@person_app.command("purge")
def purge(
    before: str = typer.Option(
        ...,
        "--before",
        help="Erase everyone whose last booking ended before this date (ISO, e.g. 2020-04-01): "
        "the end of the partnership's retention period.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    now: str | None = typer.Option(None, "--now", help="Act as if it were this time (ISO)."),
) -> None:
    """Erase everyone the retention period has run out for, as `person erase` does one person."""
    context = load_context()
    cutoff = parse_now(before, context.settings)
    moment = parse_now(now, context.settings)
    if cutoff > moment:
        fail(f"--before: {before} is in the future; expected the end of the retention period.")
    with Session(context.engine) as session:
        people = inactive_since(session, cutoff)
        if not people:
            typer.echo(f"No one has been inactive since before {before}.")
            return
        typer.echo(f"{len(people)} people have had no booking since before {before}.")
        if not yes:
            typer.confirm(f"Erase these {len(people)} people? This cannot be undone", abort=True)
        erase_people(session, people, now=moment, actor=context.actor)
        session.commit()
    compact(context.engine)
    typer.echo(f"Erased {len(people)} people.")


def register(app: typer.Typer) -> None:
    app.add_typer(person_app, name="person")
