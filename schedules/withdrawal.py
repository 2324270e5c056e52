"""Withdrawal: a booking's planned messages not yet sent, and its invitations still planned or
open."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from schedules.plan_constants import (
    CHUNK,
    INVITATION_TABLE,
    LIVE_INVITATION,
    OUTBOX_TABLE,
    PLANNED_TEMPLATES,
    UNSENT,
)
from surveys.models import (
    InvitationStatus,
    OutboxState,
)


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def planned_messages(session: Session, booking_ids: Sequence[int]) -> list[Row[Any]]:
    """(booking_id, id, idempotency_key, state, template) of the bookings' planned messages.

    Looked up by booking only, so the booking index is the one used however many messages
    are waiting elsewhere; the caller filters.
    """
    found: list[Row[Any]] = []
    table = OUTBOX_TABLE.c
    for part in chunks(booking_ids):
        statement = core_select(
            table.booking_id, table.id, table.idempotency_key, table.state, table.template
        ).where(table.booking_id.in_(part))
        found.extend(session.execute(statement).all())
    return [row for row in found if row.template in PLANNED_TEMPLATES]


def withdraw_messages(session: Session, message_ids: Sequence[int], reason: str) -> int:
    """Withdraw these outbox rows if they are still unsent."""
    withdrawn = 0
    for part in chunks(message_ids):
        result = session.execute(
            update(OUTBOX_TABLE)
            .where(OUTBOX_TABLE.c.id.in_(part), OUTBOX_TABLE.c.state.in_(UNSENT))
            .values(state=OutboxState.WITHDRAWN.value, last_error=reason)
        )
        withdrawn += int(result.rowcount)  # type: ignore[attr-defined]
    return withdrawn


def withdraw_unsent(session: Session, booking_ids: Sequence[int], reason: str) -> int:
    """Withdraw the planned messages (confirmations, invitations, reminders) not yet sent."""
    unsent = [row.id for row in planned_messages(session, booking_ids) if row.state in UNSENT]
    return withdraw_messages(session, unsent, reason)


def withdraw_invitations(session: Session, booking_ids: Sequence[int]) -> int:
    """Withdraw the invitations of these bookings that are still planned or open."""
    withdrawn = 0
    for part in chunks(booking_ids):
        result = session.execute(
            update(INVITATION_TABLE)
            .where(
                INVITATION_TABLE.c.booking_id.in_(part),
                INVITATION_TABLE.c.status.in_(LIVE_INVITATION),
            )
            .values(status=InvitationStatus.WITHDRAWN.value)
        )
        withdrawn += int(result.rowcount)  # type: ignore[attr-defined]
    return withdrawn


def withdraw_booking(session: Session, booking_id: int, *, reason: str) -> tuple[int, int]:
    """A cancelled, replaced or no-show booking: (messages, invitations) withdrawn."""
    messages = withdraw_unsent(session, [booking_id], reason)
    return messages, withdraw_invitations(session, [booking_id])
