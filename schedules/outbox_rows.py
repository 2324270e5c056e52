"""Queueing a message: the outbox row as ``surveys.outbox.enqueue`` writes it, written with
``INSERT ... ON CONFLICT`` so processes queueing the same key at once never fail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from schedules.bulk_insert import _bulk_insert
from schedules.message_facts import (
    PersonFacts,
)
from schedules.plan_constants import (
    OUTBOX_TABLE,
)
from surveys import outbox
from surveys.models import (
    MessageKind,
    OutboxState,
    utcnow,
)


def outbox_row(
    *,
    key: str,
    person: PersonFacts,
    template: str,
    context: dict[str, Any],
    due_at: datetime,
    kind: MessageKind,
    booking_id: int | None,
    invitation_id: int | None,
    created_at: datetime,
) -> dict[str, Any]:
    """A pending outbox row as ``surveys.outbox.enqueue`` writes it, addressed by the channel
    the person uses now."""
    channel, recipient = outbox.address(person)
    return {
        "idempotency_key": key,
        "person_id": person.id,
        "channel": channel.value,
        "recipient": recipient,
        "template": template,
        "context": context,
        "kind": kind.value,
        "due_at": due_at,
        "available_at": due_at,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "booking_id": booking_id,
        "invitation_id": invitation_id,
        "created_at": created_at,
    }


def queue_message(
    session: Session,
    *,
    key: str,
    person: PersonFacts,
    template: str,
    context: dict[str, Any],
    due_at: datetime,
    kind: MessageKind,
    booking_id: int | None,
    invitation_id: int | None = None,
) -> bool:
    """Queue a message as ``surveys.outbox.enqueue`` does; True if this call queued it.

    With ``INSERT ... ON CONFLICT DO NOTHING``, so of two processes queueing the same key one
    wins and neither fails. A message withdrawn under the same key (planned for these same
    times, then withdrawn) is queued again.
    """
    row = outbox_row(
        key=key,
        person=person,
        template=template,
        context=context,
        due_at=due_at,
        kind=kind,
        booking_id=booking_id,
        invitation_id=invitation_id,
        created_at=utcnow(),
    )
    if _bulk_insert(session, OUTBOX_TABLE, [row], "idempotency_key", []):
        return True
    revived = session.execute(
        update(OUTBOX_TABLE)
        .where(
            OUTBOX_TABLE.c.idempotency_key == key,
            OUTBOX_TABLE.c.state == OutboxState.WITHDRAWN.value,
        )
        .values(
            state=OutboxState.PENDING.value,
            channel=row["channel"],
            recipient=row["recipient"],
            context=context,
            due_at=due_at,
            available_at=due_at,
            last_error=None,
        )
    )
    return int(revived.rowcount) == 1  # type: ignore[attr-defined]
