"""Removing a person's strings from wherever Evalbot stores text, whatever the column.

Erasure must not depend on a list of columns that the next feature's column escapes, so this
module reads the tables' own description (SQLModel's metadata): every String, Text and JSON
column is searched, and a table is linked to a person by its foreign keys.

- ``identity`` strings (name, email, mobile number, Telegram chat id) are removed from every
  table: they may stand in a message to a manager, a campaign's scope, an audit entry's actor
  or a relay's error about someone else's message. The ``person`` table itself is left to the
  caller, so that someone else who shares the name keeps it.
- ``private`` strings (free text the person wrote) are removed from the rows linked to them:
  their bookings, surveys and answers, the messages to or about them, and the audit entries
  about any of those. Elsewhere the same words may be someone else's.

A string value equal to a trace (ignoring case and surrounding space) is replaced whole; a
longer one loses each whole-word occurrence of a trace of ``MIN_SUBSTRING`` characters or more
(shorter ones would take unrelated words with them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    cast,
    or_,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, SQLModel

ERASED = "(erased)"
MIN_SUBSTRING = 5
SKIPPED_TABLES = {"person", "alembic_version"}
CHUNK = 500
CODE_LENGTH = 64


@dataclass
class Traces:
    """What identifies the people being erased, and what links rows to them."""

    identity: set[str] = field(default_factory=set)
    private: set[str] = field(default_factory=set)
    person_ids: set[int] = field(default_factory=set)
    booking_ids: set[int] = field(default_factory=set)
    invitation_ids: set[int] = field(default_factory=set)
    outbox_ids: set[int] = field(default_factory=set)
    message_ids: set[str] = field(default_factory=set)  # the Message-IDs of mail to or about them

    def add_identity(self, *values: object) -> None:
        self.identity |= {str(v).strip() for v in values if v is not None and str(v).strip()}

    def add_private(self, *values: object) -> None:
        self.private |= {str(v).strip() for v in values if v is not None and str(v).strip()}

    def linked_ids(self) -> dict[str, set[int]]:
        """The ids linking a row to the people, by the table a foreign key points at."""
        return {
            "person": self.person_ids,
            "booking": self.booking_ids,
            "survey_invitation": self.invitation_ids,
            "outbox": self.outbox_ids,
        }


class Scrubber:
    """Replaces traces in a value: a string, or JSON made of dicts, lists and strings."""

    def __init__(self, traces: Iterable[str]):
        self.whole = {t.casefold() for t in traces}
        long = sorted((t for t in traces if len(t) >= MIN_SUBSTRING), key=len, reverse=True)
        # Whole words only: erasing "Christa" must not take "Christ" out of "Christmas".
        alternatives = "|".join(re.escape(t) for t in long)
        self.pattern = (
            re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if long else None
        )

    def __bool__(self) -> bool:
        return bool(self.whole)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().casefold() in self.whole:
                return ERASED
            return self.pattern.sub(ERASED, value) if self.pattern else value
        if isinstance(value, dict):
            return {key: self.scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.scrub(item) for item in value]
        return value


def text_columns(table: Table) -> list[Any]:
    """The columns of ``table`` that may hold text: String, Text and JSON, keys excepted.

    Unique columns are identifiers (idempotency keys, token hashes), and String columns shorter
    than ``CODE_LENGTH`` are codes, not prose: searching them would only cost time.
    """
    unique = {
        column.name
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
        for column in constraint.columns
    }
    return [
        column
        for column in table.columns
        if isinstance(column.type, String | Text | JSON)
        and not _code(column.type)
        and not column.primary_key
        and not column.unique
        and column.name not in unique
    ]


def _code(kind: Any) -> bool:
    """A short String column holds a code (a status, a stage, a channel), never prose."""
    length = getattr(kind, "length", None)
    return not isinstance(kind, Text) and length is not None and length < CODE_LENGTH


def tables() -> Iterator[Table]:
    for table in SQLModel.metadata.sorted_tables:
        if table.name not in SKIPPED_TABLES:
            yield table


def scrub_linked(session: Session, traces: Traces) -> int:
    """Remove identity and private strings from every row linked to the people; the count of
    values changed."""
    scrubber = Scrubber(traces.identity | traces.private)
    if not scrubber:
        return 0
    linked = traces.linked_ids()
    changed = 0
    for table in tables():
        conditions: list[ColumnElement[bool]] = []
        for column in table.columns:
            for key in column.foreign_keys:
                ids = linked.get(key.column.table.name)
                if ids and key.column.name == "id":
                    conditions.extend(column.in_(chunk) for chunk in _chunks(ids))
        if table.name == "audit_log":
            conditions.extend(_audit_about(table, linked))
        if conditions:
            changed += _scrub_rows(session, table, or_(*conditions), scrubber)
    return changed


def scrub_everywhere(session: Session, traces: Traces) -> int:
    """Remove identity strings from every text column of every table (``person`` aside)."""
    scrubber = Scrubber(traces.identity)
    if not scrubber:
        return 0
    # The database narrows the rows down; JSON is stored with non-ASCII escaped, so each trace
    # is looked for as written and as JSON writes it.
    needles = set()
    for trace in traces.identity:
        needles |= {trace, json.dumps(trace)[1:-1]}
    changed = 0
    for table in tables():
        columns = text_columns(table)
        if not columns:
            continue
        found = [
            _contains(session, cast(column, Text), needle)
            for column in columns
            for needle in needles
        ]
        changed += _scrub_rows(session, table, or_(*found), scrubber)
    return changed


def _audit_about(table: Table, linked: dict[str, set[int]]) -> list[ColumnElement[bool]]:
    entities = {"person": "person", "booking": "booking", "outbox": "outbox"}
    entities |= {"survey_invitation": "survey_invitation", "invitation": "survey_invitation"}
    conditions: list[ColumnElement[bool]] = []
    for entity, kind in entities.items():
        for chunk in _chunks(linked.get(kind, set())):
            conditions.append(and_(table.c.entity == entity, table.c.entity_id.in_(chunk)))
    return conditions


def _scrub_rows(
    session: Session, table: Table, where: ColumnElement[bool], scrubber: Scrubber
) -> int:
    columns = text_columns(table)
    keys = list(table.primary_key.columns)
    if not columns or not keys:
        return 0
    rows = session.execute(core_select(*keys, *columns).where(where)).all()
    changed = 0
    for row in rows:
        values = {}
        for column in columns:
            before = row._mapping[column]
            after = scrubber.scrub(before)
            if after != before:
                values[column.name] = after
        if values:
            identity = and_(*(key == row._mapping[key] for key in keys))
            session.execute(update(table).where(identity).values(**values))
            changed += len(values)
    return changed


def _contains(session: Session, text: ColumnElement[str], needle: str) -> ColumnElement[bool]:
    """``text`` contains ``needle`` in any case: SQLite's LIKE ignores ASCII case already, and
    leaving out lower() spares a copy of every value for every needle."""
    pattern = _like(needle)
    if session.get_bind().dialect.name == "sqlite":
        return text.like(pattern, escape="\\")
    return text.ilike(pattern, escape="\\")


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _chunks(ids: set[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]
