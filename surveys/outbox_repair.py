"""Mending delivery: re-queue dead messages, and clear an address marked undeliverable.

Shared by ``evalbot outbox retry`` / ``clear-address`` and the console's outbox page, so both
follow the same rules and leave the same audit entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from surveys.audit import record
from surveys.models import Deliverability, OutboxMessage, OutboxState, Person
from surveys.people import PersonNotFound, find_person


class RepairError(LookupError):
    """Nothing to mend as asked; the message says why."""


def person_by_email(session: Session, email: str) -> Person:
    try:
        return find_person(session, email)
    except PersonNotFound:
        raise RepairError(f"No person has the email address {email.strip()!r}.") from None


@dataclass(frozen=True)
class Requeued:
    ids: list[int]
    blocked: int  # of them, to people whose email address is still marked undeliverable


def requeue_dead(
    session: Session,
    *,
    now: datetime,
    actor: str,
    ids: list[int] | None = None,
    person: Person | None = None,
) -> Requeued:
    """Put dead messages (all, those of ``ids``, or those to ``person``) back in the queue,
    due at ``now`` with their attempts reset; they go at the next delivery."""
    query = select(OutboxMessage).where(OutboxMessage.state == OutboxState.DEAD)
    if ids:
        query = query.where(col(OutboxMessage.id).in_(ids))
    if person is not None:
        query = query.where(OutboxMessage.person_id == person.id)
    rows = session.exec(query).all()
    blocked = 0
    for row in rows:
        row.state = OutboxState.PENDING
        row.available_at = now
        row.attempts = 0
        row.claimed_by = None
        row.lease_until = None
        session.add(row)
        owner = session.get(Person, row.person_id) if row.person_id else None
        if owner is not None and owner.email_status != Deliverability.OK:
            blocked += 1
    requeued = [row.id for row in rows if row.id is not None]
    record(session, at=now, actor=actor, action="outbox retry", entity="outbox", ids=requeued)
    return Requeued(requeued, blocked)


@dataclass(frozen=True)
class Cleared:
    name: str
    email: str
    previous_reason: str | None  # None: it was not marked, and nothing changed
    dead: int  # dead messages to them, which ``requeue_dead`` would send again


def clear_address(session: Session, person: Person, *, now: datetime, actor: str) -> Cleared:
    """Mark a person's email address usable again after an admin has checked or mended it."""
    dead = session.exec(
        select(func.count()).where(
            OutboxMessage.person_id == person.id, OutboxMessage.state == OutboxState.DEAD
        )
    ).one()
    if person.email_status == Deliverability.OK:
        return Cleared(person.name, person.email, None, int(dead))
    reason = person.email_status_reason
    person.email_status = Deliverability.OK
    person.email_status_reason = None
    person.updated_at = now
    session.add(person)
    record(
        session,
        at=now,
        actor=actor,
        action="email cleared",
        entity="person",
        entity_id=person.id,
        previous_reason=reason,
    )
    return Cleared(person.name, person.email, reason or "no reason recorded", int(dead))
