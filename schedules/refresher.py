"""Refresher reminders, queued by each tick: "your training on this course is due for refresh".

Someone is due when their last attended session of a course ended longer ago than the course's
``policy.refresher_years`` and they have not booked that course again
(``schedules.campaigns.due_refreshers``).
Each person is reminded once per course per due date: the idempotency key names all three, so
the reminder goes once however often the tick runs, and again only when a later attendance gives
a new due date. A reminder is a message the person may opt out of: it goes by a channel they
have not refused, or not at all.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.campaigns import (
    DueRefresher,
    due_refreshers,
    people_by_id,
    reach,
    refresher_context,
)
from schedules.policy import Policy
from surveys import outbox
from surveys.models import MessageKind, OutboxMessage

TEMPLATE = "refresher-due"


def reminder_key(item: DueRefresher) -> str:
    return f"refresher:person:{item.person_id}:course:{item.course_id}:due:{item.due_on}"


def queue_refresher_reminders(
    session: Session, *, now: datetime, policy: Policy, zone: ZoneInfo
) -> int:
    """Queue a ``refresher-due`` for every person and course newly due; returns how many."""
    due = due_refreshers(session, now=now, policy=policy, zone=zone)
    if not due:
        return 0
    keys = {reminder_key(item): item for item in due}
    known: set[str] = set()
    wanted = list(keys)
    for start in range(0, len(wanted), 500):
        known.update(
            session.exec(
                select(col(OutboxMessage.idempotency_key)).where(
                    col(OutboxMessage.idempotency_key).in_(wanted[start : start + 500])
                )
            ).all()
        )
    fresh = {key: item for key, item in keys.items() if key not in known}
    if not fresh:
        return 0
    people = people_by_id(session, {item.person_id for item in fresh.values()})
    send_at = next_send_time(now, policy, zone)
    queued = 0
    for key, item in fresh.items():
        person = people[item.person_id]
        channel, _ = reach(person)
        if channel is None:
            continue  # opted out, or no way to reach them: asked again only for a new due date
        message = outbox.enqueue(
            session,
            key=key,
            person=person,
            template=TEMPLATE,
            context=refresher_context([item], None),
            due_at=send_at,
            kind=MessageKind.REMINDER,
            channel=channel,
        )
        queued += message is not None
    return queued
