"""Every answer as rows for a partnership's own analysis."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    select,
)
from sqlalchemy.engine import Connection

from surveys.models import Stage
from surveys.report.query import (
    AGENCY,
    ANSWER,
    BOOKING,
    COURSE,
    INVITATION,
    PERSON,
    SESSION,
    answers_joined,
    as_utc,
    outcome_text,
)

# The answers export ----------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "booking_ref",
    "course",
    "session_ref",
    "session_date",
    "agency",
    "sector",
    "stage",
    "survey_status",
    "question_key",
    "item",
    "measure",
    "outcome_index",
    "outcome",
    "value",
    "answered_at",
    "channel",
)


def export_answers(
    connection: Connection,
    *,
    zone: ZoneInfo,
    stages: Sequence[Stage] = (),
    date_from: date | None = None,
    date_to: date | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Every answer, one row each in ``EXPORT_COLUMNS`` order, streamed.

    ``date_from`` and ``date_to`` (inclusive) are local dates of the session the answer's
    booking is on. No names: the booking ref links a row to the booking system's records.
    """
    query = (
        select(
            BOOKING.c.ref,
            COURSE.c.title,
            COURSE.c.learning_outcomes,
            SESSION.c.ref.label("session_ref"),
            SESSION.c.starts_at,
            AGENCY.c.name,
            AGENCY.c.sector,
            INVITATION.c.stage,
            INVITATION.c.status,
            ANSWER.c.question_key,
            ANSWER.c.item,
            ANSWER.c.measure,
            ANSWER.c.outcome_index,
            ANSWER.c.value_num,
            ANSWER.c.value_text,
            ANSWER.c.value_json,
            ANSWER.c.answered_at,
            ANSWER.c.channel,
        )
        .select_from(
            answers_joined()
            .join(PERSON, PERSON.c.id == BOOKING.c.delegate_id)
            .outerjoin(AGENCY, AGENCY.c.id == PERSON.c.agency_id)
        )
        .order_by(SESSION.c.starts_at, BOOKING.c.ref, INVITATION.c.stage, ANSWER.c.question_key)
    )
    if stages:
        query = query.where(INVITATION.c.stage.in_([stage.value for stage in stages]))
    if date_from is not None:
        start = datetime.combine(date_from, time(0), tzinfo=zone)
        query = query.where(SESSION.c.starts_at >= start)
    if date_to is not None:
        end = datetime.combine(date_to, time(0), tzinfo=zone) + timedelta(days=1)
        query = query.where(SESSION.c.starts_at < end)
    for row in connection.execution_options(yield_per=5000).execute(query):
        yield (
            row.ref,
            row.title,
            row.session_ref,
            as_utc(row.starts_at).astimezone(zone).date().isoformat(),
            row.name or "",
            row.sector or "",
            row.stage,
            row.status,
            row.question_key,
            row.item,
            row.measure or "",
            "" if row.outcome_index is None else row.outcome_index,
            outcome_text(row.learning_outcomes, row.outcome_index) or "",
            _value(row.value_num, row.value_text, row.value_json),
            as_utc(row.answered_at).astimezone(zone).isoformat(timespec="seconds"),
            row.channel,
        )


def _value(number: float | None, text: str | None, listed: Any) -> str:
    """One answer as text: the chosen keys joined by "; ", the text, or the number."""
    if isinstance(listed, list):
        return "; ".join(str(item) for item in listed)
    if text is not None:
        return text
    if number is None:
        return ""
    return str(int(number)) if float(number).is_integer() else str(number)
