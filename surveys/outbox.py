"""Writing to the outbox: every message Evalbot sends starts as a row here.

Rows are keyed by an idempotency key, so planning the same message twice writes it once.
Delivery (claiming, sending, retrying) lives in ``bot.dispatcher``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session, select

from surveys.models import (
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
)


def enqueue(
    session: Session,
    *,
    key: str,
    person: Person,
    template: str,
    context: dict[str, Any],
    due_at: datetime,
    kind: MessageKind,
    channel: Channel | None = None,
    booking_id: int | None = None,
    invitation_id: int | None = None,
    campaign_id: int | None = None,
) -> OutboxMessage | None:
    """Queue a message unless one with ``key`` exists; returns the new row, or None.

    The channel is the person's preferred one where it is usable, else email. ``context`` must
    be JSON: plain values, ISO dates, and ``links`` as ``{name: [purpose, subject]}`` that the
    renderer turns into personal URLs at send time.
    """
    existing = session.exec(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
    ).first()
    if existing is not None:
        return None
    chosen, recipient = address(person, channel)
    message = OutboxMessage(
        idempotency_key=key,
        person_id=person.id,
        channel=chosen,
        recipient=recipient,
        template=template,
        context=context,
        kind=kind,
        due_at=due_at,
        available_at=due_at,
        state=OutboxState.PENDING,
        booking_id=booking_id,
        invitation_id=invitation_id,
        campaign_id=campaign_id,
    )
    session.add(message)
    session.flush()
    return message


class Addressee(Protocol):
    """What choosing a channel reads of a person (a ``Person`` row, or planning's plain copy)."""

    @property
    def email(self) -> str: ...
    @property
    def telegram_chat_id(self) -> int | None: ...
    @property
    def preferred_channel(self) -> Channel: ...
    @property
    def email_status(self) -> Deliverability: ...
    @property
    def telegram_status(self) -> Deliverability: ...


def address(person: Addressee, channel: Channel | None = None) -> tuple[Channel, str]:
    """The channel and recipient a message to ``person`` goes to (``channel`` if it can)."""
    chosen = channel or choose_channel(person)
    if chosen is Channel.TELEGRAM and person.telegram_chat_id is not None:
        return Channel.TELEGRAM, str(person.telegram_chat_id)
    return Channel.EMAIL, person.email


def choose_channel(person: Addressee) -> Channel:
    """The person's preferred channel while it works, falling back to the other one."""
    telegram_ok = (
        person.telegram_chat_id is not None and person.telegram_status == Deliverability.OK
    )
    if person.preferred_channel == Channel.TELEGRAM and telegram_ok:
        return Channel.TELEGRAM
    if person.email_status != Deliverability.OK and telegram_ok:
        return Channel.TELEGRAM
    return Channel.EMAIL


def withdraw(session: Session, *, booking_id: int, reason: str) -> int:
    """Withdraw every unsent message about a booking; returns how many."""
    rows = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.booking_id == booking_id,
            OutboxMessage.state.in_([OutboxState.PENDING, OutboxState.FAILED]),  # type: ignore[attr-defined]
        )
    ).all()
    for row in rows:
        row.state = OutboxState.WITHDRAWN
        row.last_error = reason
        session.add(row)
    return len(rows)
