"""What the outbox holds back at a moment, and until when, in words for a person.

``evalbot tick`` prints it and ``evalbot run`` logs it, so a first run on a Sunday night says that
its messages wait for the sending window on Monday morning instead of "0 messages due".
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import Session, col, select

from schedules.calendar import in_window, next_send_time
from schedules.planning import UNSENT
from schedules.policy import Policy
from surveys.models import OutboxMessage
from surveys.text import plural


def _when(at: datetime, now: datetime, zone: ZoneInfo) -> str:
    local, today = at.astimezone(zone), now.astimezone(zone)
    if local.date() == today.date():
        return f"{local:%H:%M} today"
    if (local.date() - today.date()).days < 7:
        return f"{local:%A %H:%M}"
    return f"{local:%A %-d %B %Y %H:%M}"


def holding(session: Session, now: datetime, policy: Policy, zone: ZoneInfo) -> str:
    """One line: what is waiting to be sent and until when.

    Outside the sending window: the messages that go when it next opens ("12 messages due, held
    until the sending window opens Monday 08:00"). Inside it: what is due now, and when the next
    later message goes.
    """
    unsent = col(OutboxMessage.state).in_(UNSENT)

    def count_by(at: datetime) -> int:
        return int(
            session.exec(
                select(func.count()).where(unsent, col(OutboxMessage.available_at) <= at)
            ).one()
        )

    if not in_window(now, policy, zone):
        opens = next_send_time(now, policy, zone)
        waiting = count_by(opens)
        if waiting:
            return (
                f"{plural(waiting, 'message')} due, held until the sending window opens "
                f"{_when(opens, now, zone)}."
            )
    due = count_by(now)
    later = session.exec(
        select(func.min(OutboxMessage.available_at)).where(
            unsent, col(OutboxMessage.available_at) > now
        )
    ).one()
    head = f"{plural(due, 'message')} due now" if due else "Nothing is due now"
    if later is None:
        return f"{head}; nothing else is waiting."
    return f"{head}; the next message goes {_when(_aware(later), now, zone)}."


def _aware(at: datetime) -> datetime:
    """SQLite gives back naive UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
