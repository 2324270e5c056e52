"""What every command shares: settings, the database, the actor's name and error handling."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.engine import Engine, make_url

from bot.settings import Settings, SettingsError, load_settings
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
