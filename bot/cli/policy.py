"""``evalbot policy show``: the policy in force and where each value comes from."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import fail
from bot.settings import SettingsError, load_settings
from schedules.policy import PolicyError
from schedules.policy_sources import policy_values

policy_app = typer.Typer(help="The partnership's policy.", no_args_is_help=True)


@policy_app.command("show")
def show(
    course: Annotated[
        str | None, typer.Option("--course", help="Show the policy for this course title.")
    ] = None,
) -> None:
    """Print every policy value in force with its source: default, partnership or course."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    try:
        values = policy_values(settings.policy, course)
    except PolicyError as exc:
        fail(f"The policy is not valid.\n  {exc}")
    heading = f'Policy for the course "{course}"' if course else "Policy for the partnership"
    typer.echo(f"{heading} (source: default, partnership or course):")
    width = max(len(value.key) for value in values)
    for value in values:
        typer.echo(f"  {value.key.ljust(width)}  {value.value}  [{value.source}]")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
