"""The one Jinja2 environment for every message and page (autoescape on for HTML)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def local_time(
    value: datetime | str, zone: str = "Europe/London", fmt: str = "%A %-d %B %Y, %H:%M"
) -> str:
    """A UTC datetime (or its ISO text) shown in the partnership's local time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(ZoneInfo(zone)).strftime(fmt)


def reached_by(moment: datetime | str, now: datetime | str) -> bool:
    """``{% if cancel_by is reached_by(sent_at) %}``: whether ``moment`` is at or before ``now``."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if isinstance(now, str):
        now = datetime.fromisoformat(now)
    return moment <= now


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        auto_reload=False,  # templates ship with the code; no stat() on every render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = local_time
    env.tests["reached_by"] = reached_by
    return env
