"""What the outbox store's parts share: the rows in hand, what became of them, the people they
go to, and the steps of ending a claim (``StoreBase``). ``bot.outbox_store`` claims and triages;
``bot.outbox_record`` records outcomes."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.channels.base import ChannelError, Delivered, Outgoing
from bot.ratelimit import ChannelLimits, channel_limits
from bot.rendering import opt_out_applies
from bot.settings import Settings
from schedules.policy import load_policy
from surveys.models import (
    Channel,
    Deliverability,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
    UTCDateTime,
)

log = logging.getLogger("evalbot.dispatcher")

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
PERSON: Table = Person.__table__  # type: ignore[attr-defined]


@dataclass
class Claimed:
    """One claimed row: what sending it needs."""

    id: int
    idempotency_key: str
    channel: Channel
    recipient: str
    template: str
    context: dict[str, Any]
    kind: MessageKind
    attempts: int  # counting this one
    message_id: str | None
    person_id: int | None
    recipient_name: str = ""


@dataclass
class Outcome:
    """What became of one message handed to a channel."""

    row: Claimed
    outgoing: Outgoing | None = None
    delivered: Delivered | None = None
    error: ChannelError | None = None
    render_error: str | None = None
    held: str | None = None  # not sent, because its channel paused meanwhile: it waits


@dataclass
class Streak:
    """Recipient refusals in a row on one channel, all with the same ``refusal``: the
    (outbox id, person id) of each, by recipient."""

    refusal: str
    rows: dict[str, tuple[int, int | None]] = field(default_factory=dict)


@dataclass
class DispatchReport:
    """What one run did, for the log and the ``tick`` output."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0
    withdrawn: int = 0
    switched: int = 0  # moved to the person's other channel
    held_back: int = 0  # due, but waiting for a rate limit
    paused: int = 0  # due, but waiting for a paused channel

    def __str__(self) -> str:
        parts = [f"sent {self.sent}"]
        for label, count in (
            ("to retry", self.retrying),
            ("dead", self.dead),
            ("withdrawn", self.withdrawn),
            ("moved to the other channel", self.switched),
            ("held back by a rate limit", self.held_back),
            ("waiting for a paused channel", self.paused),
        ):
            if count:
                parts.append(f"{label} {count}")
        return ", ".join(parts)


@dataclass
class ClaimResult:
    """One claim: the rows to send now, and what held others back."""

    to_send: list[Claimed] = field(default_factory=list)
    claimed: int = 0
    wake_at: datetime | None = None  # when a held-back channel may go again
    day_limited: set[Channel] = field(default_factory=set)
    paused: set[Channel] = field(default_factory=set)


@dataclass
class PersonView:
    """What triage needs to know of a message's recipient."""

    id: int
    name: str
    email: str
    telegram_chat_id: int | None
    email_status: str
    email_status_reason: str | None
    telegram_status: str
    telegram_status_reason: str | None
    email_opt_out: bool
    telegram_opt_out: bool
    erased: bool
    mobile: str | None = None
    sms_status: str = Deliverability.OK.value
    sms_status_reason: str | None = None
    sms_opt_out: bool = False  # chose email only: no text messages of any kind

    def address(self, channel: Channel) -> str | None:
        if channel == Channel.TELEGRAM:
            return None if self.telegram_chat_id is None else str(self.telegram_chat_id)
        if channel == Channel.SMS:
            return self.mobile or None
        return self.email or None

    def status(self, channel: Channel) -> str:
        return str(getattr(self, f"{channel.value}_status"))

    def usable(self, channel: Channel) -> bool:
        return self.status(channel) == Deliverability.OK and self.address(channel) is not None

    def opted_out(self, channel: Channel) -> bool:
        """Opted out of reminders and campaigns by ``channel`` (of every text, for SMS)."""
        return bool(getattr(self, f"{channel.value}_opt_out"))

    def unusable_reason(self, channel: Channel) -> str:
        if channel == Channel.TELEGRAM:
            if self.telegram_chat_id is None:
                return "has no linked Telegram chat"
            return (
                f"Telegram chat is marked unusable ({self.telegram_status_reason or 'no reason'})"
            )
        if channel == Channel.SMS:
            if not self.mobile:
                return "has no mobile number"
            return (
                f"mobile number {self.mobile} is marked undeliverable "
                f"({self.sms_status_reason or 'no reason recorded'})"
            )
        return (
            f"address {self.email} is marked undeliverable "
            f"({self.email_status_reason or 'no reason recorded'})"
        )


def other_channel(channel: Channel) -> Channel:
    """Where a message goes when its channel cannot reach the person: email and Telegram
    stand in for each other; a text message falls back to email."""
    return Channel.TELEGRAM if channel == Channel.EMAIL else Channel.EMAIL


def backoff(settings: Settings, attempts: int, rng: random.Random) -> timedelta:
    """The wait before try ``attempts + 1``: doubling from the base, capped, with jitter
    (between half and all of it) so that many failures do not come back at once."""
    delay = settings.outbox_backoff_seconds * 2 ** max(0, attempts - 1)
    delay = min(delay, settings.outbox_backoff_max_seconds)
    return timedelta(seconds=delay * rng.uniform(0.5, 1.0))


PEOPLE_STATEMENT = select(
    PERSON.c.id,
    PERSON.c.name,
    PERSON.c.email,
    PERSON.c.telegram_chat_id,
    PERSON.c.email_status,
    PERSON.c.email_status_reason,
    PERSON.c.telegram_status,
    PERSON.c.telegram_status_reason,
    PERSON.c.email_opt_out,
    PERSON.c.telegram_opt_out,
    PERSON.c.erased_at,
    PERSON.c.mobile,
    PERSON.c.sms_status,
    PERSON.c.sms_status_reason,
    PERSON.c.sms_opt_out,
).where(PERSON.c.id.in_(bindparam("ids", expanding=True)))


def claim_statement(*, postgres: bool, expired_leases: bool) -> Any:
    """``UPDATE ... RETURNING`` that claims up to ``:how_many`` due rows of ``:of_channel`` in
    ``:from_state`` for ``:worker_id`` until ``:lease_end``, oldest first."""
    c = OUTBOX.c
    if expired_leases:
        due, order = c.lease_until < bindparam("at"), c.lease_until
    else:
        due, order = c.available_at <= bindparam("at"), c.available_at
    pick = (
        select(c.id)
        .where(c.state == bindparam("from_state"), c.channel == bindparam("of_channel"), due)
        .order_by(order, c.id)
        .limit(bindparam("how_many"))
    )
    if postgres:
        # Rows another dispatcher has locked are skipped, not waited for.
        picked = pick.with_for_update(skip_locked=True).cte("picked")
        statement = update(OUTBOX).where(c.id == picked.c.id)
    else:
        # SQLite runs one writer at a time, so the choice and the update are one step.
        statement = update(OUTBOX).where(c.id.in_(pick.scalar_subquery()))
    return (
        statement.where(c.state == bindparam("from_state"))
        .values(
            state=OutboxState.CLAIMED.value,
            claimed_by=bindparam("worker_id"),
            lease_until=bindparam("lease_end", type_=UTCDateTime()),
            attempts=c.attempts + 1,
        )
        .returning(
            c.id,
            c.idempotency_key,
            c.channel,
            c.recipient,
            c.template,
            c.context,
            c.kind,
            c.attempts,
            c.message_id,
            c.person_id,
        )
    )


class StoreBase:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        worker_id: str,
        channels: set[Channel],
        rng: random.Random,
    ):
        """``channels``: those this worker can send through; rows for another are moved to
        the person's other channel, or are dead."""
        self.engine = engine
        self.settings = settings
        self.worker_id = worker_id
        self.channels = channels
        self.rng = rng
        self.limits: dict[Channel, ChannelLimits] = channel_limits(settings)
        self.policy = load_policy(settings.policy)  # which messages may go by text
        self.postgres = engine.dialect.name == "postgresql"
        self._unsubscribe_issued: set[int] = set()
        # Channels paused (``bot.pauses``), as the last claim read them or this worker paused
        # them; and each channel's run of identical recipient refusals.
        self.paused: set[Channel] = set()
        self._pausing: set[Channel] = set()  # found faulty here, the pause not written yet
        self._paused_from_db: set[Channel] = set()
        self._paused_read: datetime | None = None  # when the pauses were last read
        self._streaks: dict[Channel, Streak] = {}
        # (channel, state) pairs found with nothing more due, and when: not asked again for a
        # second (or the poll interval, if shorter), unless new rows are queued or moved there.
        # Without it, every claim would look for Telegram rows among a queue of emails, a scan
        # of the whole due queue (the index is on state and due time only): up to a tenth of
        # what a message cost with 20,000 emails queued, and more the longer the queue.
        self._drained: dict[tuple[Channel, OutboxState], datetime] = {}
        # Built once: building a statement costs more than running it.
        self._drained_for = timedelta(seconds=min(1.0, settings.outbox_poll_seconds))
        self._claim_statements = {
            expired: claim_statement(postgres=self.postgres, expired_leases=expired)
            for expired in (False, True)
        }

    def forget_drained(self, channel: Channel | None = None) -> None:
        """Look again for due rows everywhere (or of ``channel``) at the next claim: new rows
        were queued, or a row moved to that channel."""
        if channel is None:
            self._drained.clear()
        else:
            for state in OutboxState:
                self._drained.pop((channel, state), None)

    def note_channel_fault(self, channel: Channel) -> None:
        """A sender met a fault of ``channel`` itself: send nothing more by it from now on,
        although the pause is written only with the outcome."""
        self._pausing.add(channel)
        self.paused.add(channel)

    def _is_drained(self, channel: Channel, state: OutboxState, now: datetime) -> bool:
        found_empty = self._drained.get((channel, state))
        if found_empty is None:
            return False
        if now < found_empty or now - found_empty >= self._drained_for:
            self._drained.pop((channel, state), None)
            return False
        return True

    def _switch_or_die(
        self,
        session: Session,
        row: Claimed,
        person: PersonView,
        why: str,
        now: datetime,
        report: DispatchReport,
        *,
        attempted: bool = False,
    ) -> None:
        """Move the row to the person's other channel where it can reach them, else dead."""
        other = other_channel(row.channel)
        if other not in self.channels:
            blocker = f"no {other} channel is set up"
        elif not person.usable(other):
            blocker = f"{person.name}'s {person.unusable_reason(other)}"
        elif opt_out_applies(row.kind) and person.opted_out(other):
            blocker = f"{person.name} opted out of reminders and campaigns by {other}"
        else:
            self._settle(
                session,
                row,
                OutboxState.PENDING,
                f"{why}; sending by {other} instead",
                attempted=attempted,
                available_at=now,
                channel=other.value,
                recipient=person.address(other),
            )
            self.forget_drained(other)
            report.switched += 1
            return
        reason = f"not sent: {why}, and {blocker}"
        if row.channel == Channel.EMAIL and person.email_status != Deliverability.OK:
            reason += (
                f". Once the address is mended, run `evalbot outbox clear-address {person.email}`"
                " and then `evalbot outbox retry`"
            )
        self._settle(session, row, OutboxState.DEAD, reason, attempted=attempted)
        report.dead += 1
        log.warning("outbox %s dead: %s", row.id, reason)

    def _settle(
        self,
        session: Session,
        row: Claimed,
        state: OutboxState,
        reason: str | None,
        *,
        attempted: bool = False,
        **changes: Any,
    ) -> None:
        """End this claim: the row is withdrawn, dead, or waits again (a ``reason`` of None
        keeps the last error). Unless it was ``attempted``, the claim is not an attempt."""
        values: dict[str, Any] = {
            "state": state.value,
            "claimed_by": None,
            "lease_until": None,
            **changes,
        }
        if not attempted:
            values["attempts"] = OUTBOX.c.attempts - 1
        if reason is not None:
            values["last_error"] = reason[:4000]
        session.execute(
            update(OUTBOX)
            .where(
                OUTBOX.c.id == row.id,
                OUTBOX.c.claimed_by == self.worker_id,
                OUTBOX.c.state == OutboxState.CLAIMED.value,
            )
            .values(**values)
        )

    def _people(self, session: Session, ids: set[int]) -> dict[int, PersonView]:
        if not ids:
            return {}
        found = session.execute(PEOPLE_STATEMENT, {"ids": list(ids)})
        people: dict[int, PersonView] = {}
        for (
            person_id,
            name,
            email,
            chat_id,
            email_status,
            email_reason,
            telegram_status,
            telegram_reason,
            email_opt_out,
            telegram_opt_out,
            erased_at,
            mobile,
            sms_status,
            sms_reason,
            sms_opt_out,
        ) in found:
            people[person_id] = PersonView(
                person_id,
                name,
                email,
                chat_id,
                email_status,
                email_reason,
                telegram_status,
                telegram_reason,
                bool(email_opt_out),
                bool(telegram_opt_out),
                erased=erased_at is not None,
                mobile=mobile,
                sms_status=sms_status,
                sms_status_reason=sms_reason,
                sms_opt_out=bool(sms_opt_out),
            )
        return people
