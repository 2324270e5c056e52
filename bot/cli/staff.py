"""``evalbot staff add/list/remove``: who may sign in to the staff console (``/admin/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlmodel import Session

from bot.cli.common import fail, load_context
from surveys.staff import StaffError, StaffRole, add_staff, list_staff, remove_staff

staff_app = typer.Typer(
    help="Who may sign in to the staff console: coordinators change things, viewers look.",
    no_args_is_help=True,
)


@staff_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="Their email address; the sign-in link goes there.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Their name, as pages show it.")
    ] = None,
    role: Annotated[
        StaffRole,
        typer.Option("--role", help="coordinator (may change things) or viewer (sees only)."),
    ] = StaffRole.COORDINATOR,
) -> None:
    """Let someone sign in to the console (or change the name and role of one who can)."""
    context = load_context()
    with Session(context.engine) as session:
        try:
            member, added = add_staff(
                session,
                email=email,
                name=name,
                role=role,
                now=datetime.now(UTC),
                actor=context.actor,
            )
        except StaffError as exc:
            fail(f"{exc}.")
        session.commit()
        verb = "Added" if added else "Updated"
        typer.echo(f"{verb} {member.name} <{member.email}> as a {member.role}.")
    typer.echo(f"They sign in at {context.settings.public_url}/admin/sign-in with that address.")


@staff_app.command("list")
def list_command() -> None:
    """Everyone who may sign in, with their role."""
    context = load_context()
    with Session(context.engine) as session:
        members = list_staff(session)
    if not members:
        typer.echo("No staff yet: `evalbot staff add EMAIL --name NAME` adds one.")
        return
    for member in members:
        typer.echo(f"{member.email:<40} {member.role:<12} {member.name}")


@staff_app.command("remove")
def remove(
    email: Annotated[str, typer.Argument(help="The staff member's email address.")],
) -> None:
    """Stop someone signing in; a browser they are signed in on is signed out at once."""
    context = load_context()
    with Session(context.engine) as session:
        try:
            member = remove_staff(session, email=email, now=datetime.now(UTC), actor=context.actor)
        except StaffError as exc:
            fail(f"{exc}.", code=1)
        session.commit()
        typer.echo(f"Removed {member.name} <{member.email}>; they can no longer sign in.")


def register(app: typer.Typer) -> None:
    app.add_typer(staff_app, name="staff")
