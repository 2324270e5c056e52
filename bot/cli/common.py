"""What every command shares: settings, the database, the actor's name and error handling."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from typer._click.core import Context as ClickContext
from typer.core import TyperGroup

from bot.settings import Settings, SettingsError, check_proxies, load_settings
from schedules.policy import Policy, PolicyError, load_policy
from surveys.booking_csv import parse_local_datetime
from surveys.db import SchemaOutOfDate, ensure_current, make_engine


@dataclass
class Context:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.settings.policy)

    @property
    def actor(self) -> str:
        return f"cli:{getpass.getuser()}"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class EvalbotGroup(TyperGroup):
    """The command group: a database Evalbot cannot reach or open ends any command with one
    message naming it, not a traceback."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, InterfaceError) as exc:
            fail(database_problem(exc))


def database_problem(exc: OperationalError | InterfaceError) -> str:
    """What went wrong with the database, where it is, and what to do, without the password."""
    cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    try:
        url = make_url(load_settings().database_url)
    except (SettingsError, ArgumentError):
        return f"Evalbot cannot use its database: {cause}. Check EVALBOT_DATABASE_URL."
    if url.get_backend_name() == "sqlite":
        return (
            f"Evalbot cannot use the SQLite database {url.database}: {cause}. Check that the file "
            "and its folder exist and may be written, and that EVALBOT_DATABASE_URL names it."
        )
    place = f"{url.host or 'localhost'}:{url.port or 5432}"
    return (
        f"Evalbot cannot reach the database {url.database!r} on {place}: {cause}. Check that "
        f"the database server is running and accepts connections on {place}, and that "
        "EVALBOT_DATABASE_URL names the right host, port, user and password."
    )


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL when it does not exist (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def load_settings_or_fail() -> Settings:
    """The settings, or their problem and exit 2 (for checking options before the database)."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))


def load_context(*, check_schema: bool = True) -> Context:
    """Settings and a database at the current schema, or a clear message and exit 2."""
    try:
        context = Context(load_settings())
    except SettingsError as exc:
        fail(str(exc))
    try:
        context.policy  # noqa: B018 - checked now, so a bad policy stops every command
    except PolicyError as exc:
        fail(f"Evalbot cannot start: the policy is not valid.\n  {exc}")
    if check_schema:
        try:
            ensure_current(context.engine)
        except SchemaOutOfDate as exc:
            fail(str(exc))
    return context


FORWARDED_ALLOW_IPS: Any = typer.Option(
    None,
    "--forwarded-allow-ips",
    help="The reverse proxies (addresses or networks, comma-separated, or *) whose "
    "X-Forwarded-For names the client [EVALBOT_FORWARDED_ALLOW_IPS; default: none].",
)


def proxies_option(value: str | None) -> str | None:
    """``--forwarded-allow-ips`` checked, or None when it was not given."""
    if value is None:
        return None
    try:
        return check_proxies(value)
    except ValueError as exc:
        fail(f"--forwarded-allow-ips: {exc}")


_DAY_SHAPE = re.compile(r"\d{1,2}/\d{1,2}/\d{4}|\d{4}-\d{2}-\d{2}")


def parse_day(value: str | None, option: str, zone: ZoneInfo) -> date | None:
    """A date option (``--from``) written as the booking export writes dates: ``31/03/2026``
    (UK) or ``2026-03-31``; a clear error naming the option otherwise."""
    if value is None:
        return None
    moment = parse_local_datetime(value, zone, date_only_ok=True)
    if moment is None or len(value.strip()) > 10:
        if _DAY_SHAPE.fullmatch(value.strip()):
            fail(f"{option}: {value!r} is not a real date")
        fail(f"{option}: expected a date like 31/03/2026 or 2026-03-31, got {value!r}")
    return moment.astimezone(zone).date()


def parse_now(value: str | None, settings: Settings) -> datetime:
    """``--now`` as an aware UTC datetime; a time without a zone is the partnership's local time."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now: expected an ISO date and time such as 2026-03-02T09:00, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=settings.zone)
    return parsed.astimezone(UTC)
