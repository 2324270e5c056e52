"""The one Jinja2 environment for every message and page (autoescape on for HTML).

A partnership may put its own look and words over the shipped templates: files in
``EVALBOT_TEMPLATES_DIR`` win over the shipped ones of the same name (email, Telegram, web
pages and reports alike), and ``EVALBOT_LOGO`` and ``EVALBOT_BRAND_COLOUR`` reach every
template as the globals ``logo_url`` and ``brand_colour``. ``load_settings`` calls ``configure``
with them, so every message and page of the process has the same look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

# Jinja is loaded when a template is first needed: settings (and so every command) load this
# module, and most commands render nothing.
if TYPE_CHECKING:
    from jinja2 import BaseLoader, Environment

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_BRAND_COLOUR = "#1d4f91"
LOGO_PATH = "/brand/logo"  # where the web app serves EVALBOT_LOGO


@dataclass(frozen=True)
class Look:
    """What a partnership changes of Evalbot's templates."""

    overrides: Path | None = None
    brand_colour: str = DEFAULT_BRAND_COLOUR
    logo_url: str | None = None  # absolute, so that it works in an email too
    logo_alt: str = ""
    logo_data: str | None = None  # the logo as a data: URI, for PDFs made without a web server


_look = Look()


def configure(look: Look) -> None:
    """Use ``look`` for every template rendered from now on in this process."""
    global _look
    _look = look


def current_look() -> Look:
    return _look


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


def environment() -> Environment:
    """The environment for the look in force (see ``configure``)."""
    return _environment(_look)


def loader_for(overrides: Path | None) -> BaseLoader:
    from jinja2 import ChoiceLoader, FileSystemLoader

    shipped = FileSystemLoader(TEMPLATES)
    if overrides is None:
        return shipped
    return ChoiceLoader([FileSystemLoader(overrides), shipped])


def build_environment(look: Look, undefined: type | None = None) -> Environment:
    """An environment for ``look``; a template's unknown name is an error (``StrictUndefined``)
    unless ``undefined`` says otherwise."""
    from jinja2 import Environment, StrictUndefined, select_autoescape

    env = Environment(
        loader=loader_for(look.overrides),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined if undefined is None else undefined,
        auto_reload=False,  # templates ship with the code; no stat() on every render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = local_time
    env.globals["brand_colour"] = look.brand_colour
    env.globals["logo_url"] = look.logo_url
    env.globals["logo_alt"] = look.logo_alt
    env.globals["logo_data"] = look.logo_data
    env.tests["reached_by"] = reached_by
    return env


@cache
def _environment(look: Look) -> Environment:
    return build_environment(look)
