"""What planning works on and reports: plain copies of the rows of a batch (thousands of
bookings are planned at once) and the report of a pass."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from schedules.policy import Policy
from surveys.models import (
    Channel,
    Deliverability,
    InvitationStatus,
    SessionStatus,
    Stage,
)


@dataclass
class PlanReport:
    """What one planning pass did (or, in a dry run, would do)."""

    bookings: int = 0
    invitations: int = 0
    invitations_withdrawn: int = 0
    messages_withdrawn: int = 0
    sessions_cancelled: int = 0
    queued: Counter[str] = field(default_factory=Counter)  # by template


@dataclass(frozen=True)
class _Session:
    id: int
    ref: str
    starts_at: datetime
    ends_at: datetime
    venue: str | None
    online: bool
    status: SessionStatus
    schedule_version: int
    previous_starts_at: datetime | None
    joining_link: str | None


@dataclass(frozen=True)
class _Course:
    id: int
    title: str
    duration: str
    learning_outcomes: list[str]  # not needed to plan: left empty


@dataclass(frozen=True)
class _Person:
    id: int
    name: str
    email: str
    telegram_chat_id: int | None
    telegram_link_generation: int
    preferred_channel: Channel
    email_status: Deliverability
    telegram_status: Deliverability


@dataclass(frozen=True)
class _Booking:
    id: int
    ref: str
    planned_version: int
    delegate_id: int
    manager_id: int | None
    replaces_id: int | None


@dataclass
class _Invitation:
    """An invitation as planning handles it: plain values, since thousands are planned at once."""

    id: int | None
    booking_id: int
    person_id: int
    stage: Stage
    opens_at: datetime
    closes_at: datetime
    status: InvitationStatus
    reminders_sent: int = 0
    started: bool = False
    changed: bool = False


@dataclass
class _Row:
    """One booking being planned, with everything it is planned from."""

    booking: _Booking
    course_session: _Session
    course: _Course
    policy: Policy
    target: int  # the planned_version it is claimed for
    invitations: dict[Stage, _Invitation] = field(default_factory=dict)
