"""``evalbot templates check``: the partnership's own templates, checked before they are used."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import load_context
from bot.template_check import check_templates

templates_app = typer.Typer(help="Look after the message and page templates.", no_args_is_help=True)


@templates_app.command("check")
def check(
    folder: Annotated[
        Path | None,
        typer.Argument(
            help="A folder of templates over the shipped ones [EVALBOT_TEMPLATES_DIR].",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Render every template, overridden or not, with sample data; report errors by place."""
    if folder is None:
        folder = load_context(check_schema=False).settings.templates_dir
    result = check_templates(folder)
    for path in result.unknown:
        typer.echo(f"{path}: not a template Evalbot uses (check the name); it is never shown")
    for problem in result.problems:
        typer.secho(str(problem), fg=typer.colors.RED, err=True)
    count = len(result.checked)
    own = f", {len(result.overridden)} of them the partnership's own" if folder else ""
    if result.problems:
        typer.echo(f"Checked {count} templates{own}: {len(result.problems)} with errors.")
        raise typer.Exit(1)
    typer.echo(f"Checked {count} templates{own}: no errors.")


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app, name="templates")
