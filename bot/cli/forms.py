"""``evalbot web`` (the web app alone, for development) and ``evalbot surveys check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import fail, load_context
from surveys.db import make_engine
from surveys.definitions import DefinitionError, Kind, definition_path, load_definitions

WORKER_THREADS = 40  # the thread pool FastAPI runs request handlers in

surveys_app = typer.Typer(help="Look after the survey definitions.", no_args_is_help=True)


def web(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on [EVALBOT_WEB_HOST].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port to listen on [EVALBOT_WEB_PORT]."),
    ] = None,
) -> None:
    """Serve the web app (survey form and personal links) alone, without Telegram or the tick."""
    import uvicorn

    from bot.web.app import create_app

    context = load_context()
    settings = context.settings
    try:
        load_definitions(settings.survey_definitions_dir)
    except DefinitionError as exc:
        fail(f"The survey definitions cannot be used: {exc}")
    engine = context.engine
    if settings.database_url.startswith("sqlite"):
        # Each of the server's worker threads may hold a connection. SQLite's cost nothing to
        # keep, and opening one per burst of requests costs more than the queries themselves.
        engine = make_engine(settings.database_url, pool_size=WORKER_THREADS, max_overflow=0)
    chosen_host = host if host is not None else settings.web_host
    chosen_port = port if port is not None else settings.web_port
    typer.echo(f"Serving on http://{chosen_host}:{chosen_port} (links use {settings.public_url})")
    uvicorn.run(
        create_app(settings, engine),
        host=chosen_host,
        port=chosen_port,
        # Access logs would record every personal link's token: keep them off.
        access_log=False,
        server_header=False,
        log_level="info",
    )


@surveys_app.command("check")
def check(
    folder: Annotated[
        Path | None,
        typer.Argument(
            help="A folder of definitions to check [default: EVALBOT_SURVEY_DEFINITIONS_DIR]."
        ),
    ] = None,
) -> None:
    """Check the survey definitions (an override folder, or the ones in use) and list them."""
    context = load_context(check_schema=False)
    directory = folder if folder is not None else context.settings.survey_definitions_dir
    try:
        definitions = load_definitions(directory)
    except DefinitionError as exc:
        fail(str(exc))
    for stage, definition in definitions.items():
        typer.echo(
            f"{stage.value:<8} {definition.title}: {len(definition.questions)} questions, "
            f"version {definition.version[:12]} ({definition_path(stage, directory)})"
        )
        for question in definition.questions:
            marks = [question.kind.value]
            if question.kind is Kind.SCALE:
                marks[0] = f"scale {question.scale_min}-{question.scale_max}"
            if question.measure:
                marks.append(f"measures {question.measure}")
            if question.per_outcome:
                marks.append("per outcome")
            if question.optional:
                marks.append("optional")
            if question.when:
                marks.append(
                    "when " + ", ".join(f"{ref} is {'/'.join(v)}" for ref, v in question.when)
                )
            typer.echo(f"    {question.id:<26} {'; '.join(marks)}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("web")(web)
    app.add_typer(surveys_app, name="surveys")
