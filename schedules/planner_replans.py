"""A booking planned before and planned again (its session's time changed, it moved to another
session, it became active again): the messages it already has, and those planned for other
times withdrawn before they go out."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from schedules.plan_constants import INVITATION_TABLE, OUTBOX_TABLE, REMINDER, UNSENT
from schedules.planner_rows import PlanReport, _Row
from schedules.survey_timing import signature
from schedules.withdrawal import planned_messages, withdraw_messages
from surveys.models import OutboxState


def known_messages(session: Session, booking_ids: list[int]) -> dict[int, dict[str, OutboxState]]:
    """The planned messages each booking already has, by key."""
    known: dict[int, dict[str, OutboxState]] = defaultdict(dict)
    for message in planned_messages(session, booking_ids):
        known[message.booking_id][message.idempotency_key] = OutboxState(message.state)
    return known


def withdraw_stale(session: Session, rows: list[_Row], report: PlanReport) -> None:
    """Withdraw unsent messages planned for other times; recount the reminders sent."""
    suffix = {row.booking.id: f":{signature(row.course_session)}" for row in rows}
    stale = [
        message.id
        for message in planned_messages(session, list(suffix))
        if message.state in UNSENT
        and not message.idempotency_key.endswith(suffix[message.booking_id])
    ]
    report.messages_withdrawn += withdraw_messages(
        session, stale, "the session's time or place changed"
    )
    moved = [i for row in rows for i in row.invitations.values() if i.changed]
    if not moved:
        return
    # A reminder withdrawn before it went out was never sent: the tick may send it again.
    o = OUTBOX_TABLE.c
    counts: Counter[int] = Counter(
        session.execute(
            core_select(o.invitation_id).where(
                o.invitation_id.in_([i.id for i in moved]),
                o.template == REMINDER,
                o.state != OutboxState.WITHDRAWN.value,
            )
        ).scalars()
    )
    recount = [
        {"invitation_id": i.id, "reminders_sent": counts.get(i.id or 0, 0)}
        for i in moved
        if i.reminders_sent != counts.get(i.id or 0, 0)
    ]
    if recount:
        session.execute(
            update(INVITATION_TABLE).where(INVITATION_TABLE.c.id == bindparam("invitation_id")),
            recount,
        )


WHERE_AND_WHEN = ("session_starts_at", "session_ends_at", "venue", "online", "joining_link")


def last_confirmation(
    session: Session,
    booking_id: int,
    templates: tuple[str, ...],
    states: tuple[OutboxState, ...] = (OutboxState.SENT, OutboxState.CLAIMED),
) -> dict[str, Any] | None:
    """What the booking's delegate was last told of their session (when and where), from the
    newest of its messages of ``templates`` in ``states`` (by default: gone out, or going out
    now); None when there is none."""
    o = OUTBOX_TABLE.c
    context = session.execute(
        core_select(o.context)
        .where(
            o.booking_id == booking_id,
            o.template.in_(templates),
            o.state.in_([state.value for state in states]),
        )
        .order_by(o.id.desc())
        .limit(1)
    ).scalar()
    if context is None:
        return None
    return {name: context.get(name) for name in WHERE_AND_WHEN}
