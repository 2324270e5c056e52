"""A campaign's kind and scope: parsing and checking what the admin asked for, and its key.

The scope key and the message keys it gives make running the same campaign again reach only
the people it has not reached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import func

from surveys.models import BOOKING_STAGES, Stage

CampaignKind = Literal["remind", "places", "refresher"]
KINDS: tuple[CampaignKind, ...] = ("remind", "places", "refresher")


class CampaignError(ValueError):
    """A campaign that cannot run as asked; the message says why, for the admin."""


_SCOPE_KEYS: dict[str, tuple[str, ...]] = {
    "remind": ("stage", "session", "course", "agency", "date_from", "date_to"),
    "places": ("session", "agency", "sector"),
    "refresher": ("course", "agency", "sector"),
}


@dataclass(frozen=True)
class Scope:
    """Who a campaign is for. Text matches ignore case and extra spaces."""

    stage: Stage | None = None
    session: str | None = None  # a session ref
    course: str | None = None  # a course title
    agency: str | None = None  # an agency name
    sector: str | None = None
    date_from: date | None = None  # the session's local date, inclusive
    date_to: date | None = None

    @classmethod
    def parse(cls, kind: str, raw: Mapping[str, Any]) -> Scope:
        """A scope from a mapping (the CLI's options, Telegram's, or a stored one)."""
        if kind not in KINDS:
            raise CampaignError(f"unknown campaign {kind!r}: use one of {', '.join(KINDS)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None or value == "":
                continue
            if name not in _SCOPE_KEYS[kind]:
                allowed = ", ".join(_SCOPE_KEYS[kind])
                raise CampaignError(f"a {kind} campaign has no {name!r} scope; it takes {allowed}")
            if name == "stage":
                # A reminder campaign reaches delegates and managers: the trainer's report has
                # its own reminder, and is no booking's survey.
                stage = str(value).strip().lower()
                if stage not in BOOKING_STAGES:
                    stages = ", ".join(s.value for s in BOOKING_STAGES)
                    raise CampaignError(f"stage {value!r}: use one of {stages}")
                values[name] = Stage(stage)
            elif name in ("date_from", "date_to"):
                values[name] = _date(value, name)
            else:
                text = " ".join(str(value).split())
                if text:
                    values[name] = text
        scope = cls(**values)
        if kind == "places" and scope.session is None:
            raise CampaignError("a places campaign needs the session: give its ref (--session)")
        if scope.date_from and scope.date_to and scope.date_from > scope.date_to:
            raise CampaignError(
                f"the dates are the wrong way round: from {scope.date_from} is after "
                f"to {scope.date_to}"
            )
        return scope

    def as_dict(self) -> dict[str, str]:
        """The set parts only, as text: what is stored and what the scope key is made of."""
        found: dict[str, str] = {}
        for name in ("stage", "session", "course", "agency", "sector", "date_from", "date_to"):
            value = getattr(self, name)
            if value is None:
                continue
            found[name] = value.isoformat() if isinstance(value, date) else str(value)
        return found


def _date(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CampaignError(f"{name}: expected a date like 2026-03-31, got {value!r}") from None


def scope_key(kind: str, scope: Scope) -> str:
    """The same kind and scope always give the same key (64 hex characters)."""
    canonical = {name: value.casefold() for name, value in scope.as_dict().items()}
    text = json.dumps({"kind": kind, **canonical}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def message_key(key: str, person_id: int) -> str:
    return f"campaign:{key}:person:{person_id}"


def _same(column: Any, value: str) -> Any:
    """Case- and space-insensitive equality on a text column."""
    return func.lower(func.trim(column)) == value.casefold()


class UnknownScope(CampaignError):
    """A campaign's scope names a course or session that does not exist."""
