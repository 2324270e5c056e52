"""``evalbot web`` (the web app alone, for development), ``evalbot surveys check`` and
``evalbot surveys outcomes`` (a course's learning outcomes, which per-outcome questions name)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.cli.common import FORWARDED_ALLOW_IPS, fail, load_context, proxies_option
from surveys.db import make_engine, session_scope
from surveys.definitions import DefinitionError, Kind, load_definitions, load_variants
from surveys.models import Answer, Booking, Course, CourseSession, SurveyInvitation

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
    forwarded_allow_ips: str | None = FORWARDED_ALLOW_IPS,
) -> None:
    """Serve the web app (survey form and personal links) alone, without Telegram or the tick."""
    import uvicorn

    from bot import log_redaction
    from bot.web.app import create_app
    from bot.web.security import proxy_options

    log_redaction.install()  # requests are logged with each personal link's token replaced

    proxies = proxies_option(forwarded_allow_ips)
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
        access_log=True,
        server_header=False,
        log_level="info",
        **proxy_options(proxies if proxies is not None else settings.forwarded_allow_ips),
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
        general = load_definitions(directory)
        variants = load_variants(directory)
    except DefinitionError as exc:
        fail(str(exc))
    listed = [(stage.value, definition) for stage, definition in general.items()]
    listed += [
        (f"{stage.value} ({kind})", definition) for (stage, kind), definition in variants.items()
    ]
    width = max(len(name) for name, _ in listed)
    for name, definition in listed:
        typer.echo(
            f"{name:<{width}} {definition.title}: {len(definition.questions)} questions, "
            f"version {definition.version[:12]} ({definition.source})"
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


MAX_OUTCOMES = 12
MAX_OUTCOME_LENGTH = 300


@surveys_app.command("outcomes")
def outcomes(
    course_title: Annotated[
        str, typer.Argument(metavar="COURSE", help="The course, by its title (any case).")
    ],
    new: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="OUTCOME",
            help='The learning outcomes, in order, each completing "By the end of the course '
            'you will be able to ..." (for example "recognise the signs of neglect"). '
            "Leave out to list the current ones.",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every outcome: ask about the course as a whole.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Change outcomes that answers were already given against (those answers will "
            "then be read against the new wording).",
        ),
    ] = False,
) -> None:
    """Show or set a course's learning outcomes, which the knowledge and confidence questions
    are asked about, one by one, in every stage."""
    if new and clear:
        fail("Give new outcomes or --clear, not both.")
    wanted = _checked_outcomes(new or [])
    context = load_context()
    with session_scope(context.engine) as session:
        courses = session.exec(select(Course).order_by(col(Course.title))).all()
        wanted_title = " ".join(course_title.split()).casefold()
        course = next((c for c in courses if c.title.casefold() == wanted_title), None)
        if course is None:
            titles = [c.title for c in courses]
            known = "".join(f"\n  {title}" for title in titles) or " none yet"
            fail(f"No course is titled {course_title!r}. Courses:{known}")
        current = [str(outcome) for outcome in course.learning_outcomes or []]
        if not wanted and not clear:
            _show_outcomes(course.title, current)
            return
        if wanted == current:
            typer.echo(f"{course.title}: the outcomes are already these; nothing changed.")
            return
        # Answers name an outcome by its place in the list: appending leaves them all true.
        kept = wanted[: len(current)] == current
        given = 0 if kept else _answers_per_outcome(session, course)
        if given and not force:
            fail(
                f"{given} answer(s) were already given against the outcomes of {course.title}, "
                "by their place in the list. Changing, removing or reordering those outcomes "
                "would make the answers read as if about another one. Add new outcomes at the "
                "end instead, or give --force if the change is only in wording.",
                code=1,
            )
        course.learning_outcomes = wanted
        session.add(course)
        session.commit()
        _show_outcomes(course.title, wanted)


def _checked_outcomes(given: list[str]) -> list[str]:
    found: list[str] = []
    for number, raw in enumerate(given, start=1):
        text = " ".join(raw.split()).removesuffix(".")
        if not text:
            fail(f"Outcome {number} is empty.")
        if len(text) > MAX_OUTCOME_LENGTH:
            fail(f"Outcome {number} is {len(text)} characters; at most {MAX_OUTCOME_LENGTH}.")
        if "{" in text or "}" in text:
            fail(f"Outcome {number}: braces {{ }} are not allowed in an outcome.")
        if text.lower() in (f.lower() for f in found):
            fail(f"Outcome {number} repeats an earlier one: {text!r}.")
        found.append(text)
    if len(found) > MAX_OUTCOMES:
        fail(
            f"{len(found)} outcomes given; at most {MAX_OUTCOMES} (each is asked about twice in "
            "every survey)."
        )
    return found


def _answers_per_outcome(session: Session, course: Course) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(Answer)
            .join(SurveyInvitation, col(SurveyInvitation.id) == Answer.invitation_id)
            .join(Booking, col(Booking.id) == SurveyInvitation.booking_id)
            .join(CourseSession, col(CourseSession.id) == Booking.session_id)
            .where(CourseSession.course_id == course.id, col(Answer.outcome_index).is_not(None))
        ).one()
    )


def _show_outcomes(title: str, found: list[str]) -> None:
    if not found:
        typer.echo(
            f"{title} has no learning outcomes: its surveys ask about the course as a whole."
        )
        return
    typer.echo(f"{title}: by the end of the course you will be able to")
    for number, outcome in enumerate(found, start=1):
        typer.echo(f"  {number}. {outcome}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("web")(web)
    app.add_typer(surveys_app, name="surveys")
