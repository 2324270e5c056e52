"""How a campaign's messages are getting on: its outbox rows by state.

The CLI's progress bar and the staff console's progress page both read ``delivery``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from surveys.models import OutboxMessage, OutboxState


@dataclass(frozen=True)
class Delivery:
    """A campaign's messages by outbox state."""

    states: dict[str, int]

    def count(self, *states: OutboxState) -> int:
        return sum(self.states.get(state.value, 0) for state in states)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def sent(self) -> int:
        return self.count(OutboxState.SENT)

    @property
    def waiting(self) -> int:
        """Queued and not yet sent: pending, being sent, or failed and to be tried again."""
        return self.count(OutboxState.PENDING, OutboxState.CLAIMED, OutboxState.FAILED)

    @property
    def retrying(self) -> int:
        return self.count(OutboxState.FAILED)

    @property
    def dead(self) -> int:
        return self.count(OutboxState.DEAD)

    @property
    def withdrawn(self) -> int:
        return self.count(OutboxState.WITHDRAWN)

    @property
    def done(self) -> int:
        """Messages that will not change again: sent, undeliverable or withdrawn."""
        return self.sent + self.dead + self.withdrawn

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "sent": self.sent,
            "waiting": self.waiting,
            "retrying": self.retrying,
            "dead": self.dead,
            "withdrawn": self.withdrawn,
        }


def delivery(session: Session, campaign_id: int) -> Delivery:
    """The campaign's outbox rows counted by state."""
    rows = session.exec(
        select(col(OutboxMessage.state), func.count())
        .where(col(OutboxMessage.campaign_id) == campaign_id)
        .group_by(col(OutboxMessage.state))
    ).all()
    return Delivery({str(state): int(count) for state, count in rows})
