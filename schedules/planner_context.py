"""What one planning pass shares between its parts: its settings, the report, the people of the
batch in hand, and the rows the batch writes when it is done (links, new messages, withdrawn
messages queued again), written in bulk."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, update
from sqlmodel import Session

from schedules.bulk_insert import _bulk_insert
from schedules.outbox_rows import outbox_row
from schedules.plan_constants import LINK_TABLE, OUTBOX_TABLE
from schedules.planner_rows import PlanReport, _Person
from schedules.policy import Policy
from surveys.models import MessageKind, OutboxState


class PlanOutput:
    """The links and messages of a batch, kept until the batch is written in one go."""

    def __init__(self, *, now: datetime, report: PlanReport):
        self.now = now
        self.report = report
        self.links: dict[str, dict[str, Any]] = {}
        self.messages: list[dict[str, Any]] = []
        self.revive: list[dict[str, Any]] = []

    def add_links(self, links: list[dict[str, Any]]) -> None:
        for link in links:
            self.links[link["token_hash"]] = link

    def queue(
        self,
        *,
        key: str,
        person: _Person,
        template: str,
        context: dict[str, Any],
        due_at: datetime,
        kind: MessageKind,
        booking_id: int,
        known: dict[str, OutboxState] | None = None,
    ) -> None:
        """Queue a message as ``surveys.outbox.enqueue`` would, in bulk; revive a withdrawn one."""
        state = (known or {}).get(key)
        if state is not None and state != OutboxState.WITHDRAWN:
            return
        values = outbox_row(
            key=key,
            person=person,
            template=template,
            context=context,
            due_at=due_at,
            kind=kind,
            booking_id=booking_id,
            invitation_id=None,
            created_at=self.now,
        )
        if state == OutboxState.WITHDRAWN:
            self.revive.append(values)
        else:
            self.messages.append(values)
        self.report.queued[template] += 1

    def write(self, session: Session) -> None:
        """Links and messages, in bulk; a row another process wrote first is left as it is."""
        if self.links:
            _bulk_insert(
                session, LINK_TABLE, list(self.links.values()), "token_hash", ["expires_at"]
            )
            self.links = {}
        if self.messages:
            _bulk_insert(session, OUTBOX_TABLE, self.messages, "idempotency_key", [])
            self.messages = []
        if self.revive:
            session.execute(
                update(OUTBOX_TABLE).where(
                    OUTBOX_TABLE.c.idempotency_key == bindparam("key"),
                    OUTBOX_TABLE.c.state == OutboxState.WITHDRAWN.value,
                ),
                [
                    {
                        "key": values["idempotency_key"],
                        "state": OutboxState.PENDING.value,
                        "due_at": values["due_at"],
                        "available_at": values["available_at"],
                        "context": values["context"],
                        "last_error": None,
                    }
                    for values in self.revive
                ],
            )
            self.revive = []


@dataclass
class PlanContext:
    """The state a planning pass's parts share."""

    session: Session
    now: datetime
    policy: Policy
    zone: ZoneInfo
    secret: bytes
    telegram: bool
    report: PlanReport = field(default_factory=PlanReport)
    # The delegates and managers of the batch in hand, by id.
    people: dict[int, _Person] = field(default_factory=dict)
    output: PlanOutput = field(init=False)

    def __post_init__(self) -> None:
        self.output = PlanOutput(now=self.now, report=self.report)
