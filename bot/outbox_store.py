"""The dispatcher's reads and writes of the outbox: claiming, triage and outcomes.

``OutboxStore`` does every database step of delivery for one dispatcher (``worker_id``); the
dispatcher (``bot.dispatcher``) decides when. Each method opens its own short transaction.

- ``claim``: due rows in batches under a lease, one ``UPDATE ... RETURNING`` per state:
  ``WHERE id IN (SELECT ... LIMIT n)`` on SQLite, whose writers take turns, and the same with
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that workers never take the same row. Rate limits
  decide how many; what they hold back stays pending. Then triage, in the same transaction.
- ``record``: what happened to each message sent, sent rows in one statement.

The hot statements are built once (building one costs more than running it) and the sent rows
are written as one ``UPDATE ... FROM (VALUES ...)``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.channels.base import ChannelError, Delivered, Outgoing
from bot.ratelimit import DAY, ChannelLimits, limits_for
from bot.rendering import issue_unsubscribe_link, opt_out_applies
from bot.settings import Settings
from surveys.audit import record as audit
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


@dataclass
class DispatchReport:
    """What one run did, for the log and the ``tick`` output."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0
    withdrawn: int = 0
    switched: int = 0  # moved to the person's other channel
    held_back: int = 0  # due, but waiting for a rate limit

    def __str__(self) -> str:
        parts = [f"sent {self.sent}"]
        for label, count in (
            ("to retry", self.retrying),
            ("dead", self.dead),
            ("withdrawn", self.withdrawn),
            ("moved to the other channel", self.switched),
            ("held back by a rate limit", self.held_back),
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

    def address(self, channel: Channel) -> str | None:
        if channel == Channel.TELEGRAM:
            return None if self.telegram_chat_id is None else str(self.telegram_chat_id)
        return self.email or None

    def usable(self, channel: Channel) -> bool:
        status = self.telegram_status if channel == Channel.TELEGRAM else self.email_status
        return status == Deliverability.OK and self.address(channel) is not None

    def opted_out(self, channel: Channel) -> bool:
        return self.telegram_opt_out if channel == Channel.TELEGRAM else self.email_opt_out

    def unusable_reason(self, channel: Channel) -> str:
        if channel == Channel.TELEGRAM:
            if self.telegram_chat_id is None:
                return "has no linked Telegram chat"
            return (
                f"Telegram chat is marked unusable ({self.telegram_status_reason or 'no reason'})"
            )
        return (
            f"address {self.email} is marked undeliverable "
            f"({self.email_status_reason or 'no reason recorded'})"
        )


def other_channel(channel: Channel) -> Channel:
    return Channel.EMAIL if channel == Channel.TELEGRAM else Channel.TELEGRAM


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


class OutboxStore:
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
        self.limits: dict[Channel, ChannelLimits] = {c: limits_for(settings, c) for c in Channel}
        self.postgres = engine.dialect.name == "postgresql"
        self._unsubscribe_issued: set[int] = set()
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

    # --- claiming --------------------------------------------------------------------------

    def forget_drained(self, channel: Channel | None = None) -> None:
        """Look again for due rows everywhere (or of ``channel``) at the next claim: new rows
        were queued, or a row moved to that channel."""
        if channel is None:
            self._drained.clear()
        else:
            for state in OutboxState:
                self._drained.pop((channel, state), None)

    def _is_drained(self, channel: Channel, state: OutboxState, now: datetime) -> bool:
        found_empty = self._drained.get((channel, state))
        if found_empty is None:
            return False
        if now < found_empty or now - found_empty >= self._drained_for:
            self._drained.pop((channel, state), None)
            return False
        return True

    def claim(
        self, now: datetime, batch: int, report: DispatchReport, expired: bool = True
    ) -> ClaimResult:
        """Claim up to ``batch`` due rows of each channel (and rows whose lease ran out, with
        ``expired``); withdraw or redirect those that cannot go as they are."""
        result = ClaimResult()
        lease_until = now + timedelta(seconds=self.settings.outbox_lease_seconds)
        states = [OutboxState.FAILED, OutboxState.PENDING]
        if expired:
            states.insert(0, OutboxState.CLAIMED)
        with Session(self.engine) as session:
            claimed: list[Claimed] = []
            for channel in Channel:
                rows = self._claim_channel(
                    session, channel, states, now, batch, lease_until, result
                )
                claimed.extend(rows)
            result.claimed = len(claimed)
            if claimed:
                result.to_send = self._triage(session, claimed, now, report)
            session.commit()
        return result

    def _claim_channel(
        self,
        session: Session,
        channel: Channel,
        states: list[OutboxState],
        now: datetime,
        batch: int,
        lease_until: datetime,
        result: ClaimResult,
    ) -> list[Claimed]:
        limits = self.limits[channel]
        wanted = batch
        if limits.per_day > 0:
            budget = limits.day_budget(self._used_today(session, channel, now))
            if budget == 0:
                result.day_limited.add(channel)
                return []
            wanted = min(wanted, budget or wanted)
        granted = limits.per_second.take(wanted, now)
        if granted == 0:
            at = limits.per_second.next_token_at(now)
            result.wake_at = at if result.wake_at is None else min(result.wake_at, at)
            return []
        rows: list[Claimed] = []
        for state in states:
            if len(rows) >= granted:
                break
            if self._is_drained(channel, state, now):
                continue
            wanted = granted - len(rows)
            found = self._claim_rows(session, channel, state, now, wanted, lease_until)
            if len(found) < wanted:
                self._drained[(channel, state)] = now
            rows.extend(found)
        limits.per_second.give_back(granted - len(rows))
        return rows

    def _claim_rows(
        self,
        session: Session,
        channel: Channel,
        state: OutboxState,
        now: datetime,
        limit: int,
        lease_until: datetime,
    ) -> list[Claimed]:
        statement = self._claim_statements[state == OutboxState.CLAIMED]
        params = {
            "from_state": state.value,
            "of_channel": channel.value,
            "at": now,
            "how_many": limit,
            "worker_id": self.worker_id,
            "lease_end": lease_until,
        }
        return [
            Claimed(
                row_id,
                key,
                Channel(channel_name),
                recipient,
                template,
                context or {},
                MessageKind(kind),
                attempts,
                message_id,
                person_id,
            )
            for (
                row_id,
                key,
                channel_name,
                recipient,
                template,
                context,
                kind,
                attempts,
                message_id,
                person_id,
            ) in session.execute(statement, params)
        ]

    def _used_today(self, session: Session, channel: Channel, now: datetime) -> int:
        sent = session.execute(
            select(func.count())
            .select_from(OUTBOX)
            .where(OUTBOX.c.channel == channel.value, OUTBOX.c.sent_at > now - DAY)
        ).scalar_one()
        in_flight = session.execute(
            select(func.count())
            .select_from(OUTBOX)
            .where(
                OUTBOX.c.channel == channel.value,
                OUTBOX.c.state == OutboxState.CLAIMED.value,
                OUTBOX.c.lease_until >= now,
            )
        ).scalar_one()
        return int(sent) + int(in_flight)

    def count_due(self, now: datetime) -> int:
        with Session(self.engine) as session:
            return int(
                session.execute(
                    select(func.count())
                    .select_from(OUTBOX)
                    .where(
                        OUTBOX.c.state.in_([OutboxState.PENDING.value, OutboxState.FAILED.value]),
                        OUTBOX.c.available_at <= now,
                    )
                ).scalar_one()
            )

    def anything_due(self, now: datetime, claim: ClaimResult) -> bool:
        """Whether an ``until_idle`` run must go on: rows due (except those waiting for a daily
        limit) or rows claimed by anyone, whose lease may yet run out."""
        day_limited = claim.day_limited
        with Session(self.engine) as session:
            due = select(OUTBOX.c.id).where(
                OUTBOX.c.state.in_([OutboxState.PENDING.value, OutboxState.FAILED.value]),
                OUTBOX.c.available_at <= now,
            )
            if day_limited:
                due = due.where(OUTBOX.c.channel.not_in([c.value for c in day_limited]))
            claimed = select(OUTBOX.c.id).where(OUTBOX.c.state == OutboxState.CLAIMED.value)
            return (
                session.execute(due.limit(1)).first() is not None
                or session.execute(claimed.limit(1)).first() is not None
            )

    def renew_leases(self, now: datetime) -> None:
        with Session(self.engine) as session:
            session.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.claimed_by == self.worker_id,
                    OUTBOX.c.state == OutboxState.CLAIMED.value,
                )
                .values(lease_until=now + timedelta(seconds=self.settings.outbox_lease_seconds))
            )
            session.commit()

    # --- triage: before sending --------------------------------------------------------------

    def _triage(
        self, session: Session, rows: list[Claimed], now: datetime, report: DispatchReport
    ) -> list[Claimed]:
        people = self._people(session, {r.person_id for r in rows if r.person_id is not None})
        to_send: list[Claimed] = []
        for row in rows:
            person = people.get(row.person_id) if row.person_id is not None else None
            if person is None:
                # No person (or no longer one): the recorded recipient is all there is.
                row.recipient_name = str(row.context.get("recipient_name", ""))
                if row.channel in self.channels:
                    to_send.append(row)
                else:
                    self._settle(
                        session, row, OutboxState.DEAD, f"no {row.channel} channel is set up"
                    )
                    report.dead += 1
                continue
            if person.erased:
                self._settle(session, row, OutboxState.WITHDRAWN, "the person's data was erased")
                report.withdrawn += 1
                continue
            if opt_out_applies(row.kind) and person.opted_out(row.channel):
                reason = (
                    f"not sent: {person.name} opted out of reminders and campaigns by {row.channel}"
                )
                self._settle(session, row, OutboxState.WITHDRAWN, reason)
                report.withdrawn += 1
                continue
            if not person.usable(row.channel) or row.channel not in self.channels:
                why = (
                    f"no {row.channel} channel is set up"
                    if row.channel not in self.channels
                    else f"{person.name}'s {person.unusable_reason(row.channel)}"
                )
                self._switch_or_die(session, row, person, why, now, report)
                continue
            spacing_until = self.limits[row.channel].per_recipient.reserve(
                person.address(row.channel) or row.recipient, now
            )
            if spacing_until is not None:
                self._settle(session, row, OutboxState.PENDING, None, available_at=spacing_until)
                report.held_back += 1
                continue
            row.recipient = person.address(row.channel) or row.recipient
            row.recipient_name = person.name
            if opt_out_applies(row.kind) and person.id not in self._unsubscribe_issued:
                issue_unsubscribe_link(session, self.settings, person.id)
                self._unsubscribe_issued.add(person.id)
            to_send.append(row)
        return to_send

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
            )
        return people

    # --- recording outcomes --------------------------------------------------------------------

    def record(self, outcomes: list[Outcome], now: datetime, report: DispatchReport) -> None:
        with Session(self.engine) as session:
            sent = [o for o in outcomes if o.delivered is not None]
            for start in range(0, len(sent), 200):
                self._record_sent(session, sent[start : start + 200], now)
            report.sent += len(sent)
            for outcome in outcomes:
                if outcome.render_error is not None:
                    self._fail(
                        session, outcome, f"cannot render: {outcome.render_error}", dead=True
                    )
                    report.dead += 1
                elif outcome.error is not None and outcome.error.permanent:
                    self._refused(session, outcome, now, report)
                elif outcome.error is not None:
                    self._retry_later(session, outcome, now, report)
            session.commit()

    def _record_sent(self, session: Session, sent: list[Outcome], now: datetime) -> None:
        """Mark rows sent in one statement: an UPDATE joined to a VALUES list (on SQLite and
        PostgreSQL alike), far cheaper than a statement per row. Written for the driver
        directly: with a few hundred parameters, building the statement would cost more."""
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        values = ", ".join([f"({mark}, {mark}, {mark}, {mark})"] * len(sent))
        params: list[Any] = []
        for outcome in sent:
            params += (
                outcome.row.id,
                outcome.delivered.server_reply[:2000] if outcome.delivered else "",
                outcome.outgoing.message_id if outcome.outgoing else None,
                outcome.row.recipient,
            )
        session.connection().exec_driver_sql(
            f"WITH done (row_id, reply, mid, recipient) AS (VALUES {values}) "
            f"UPDATE outbox SET state = 'sent', sent_at = {mark}, server_reply = done.reply, "
            "message_id = done.mid, recipient = done.recipient, claimed_by = NULL, "
            "lease_until = NULL FROM done WHERE outbox.id = done.row_id "
            "AND outbox.state <> 'sent'",
            (*params, self._bind_time(now)),
        )

    def _bind_time(self, at: datetime) -> Any:
        """``at`` as the driver takes it for a UTC timestamp column."""
        dialect = self.engine.dialect
        processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        return processor(at) if processor else at

    def _retry_later(
        self, session: Session, outcome: Outcome, now: datetime, report: DispatchReport
    ) -> None:
        row, error = outcome.row, outcome.error
        assert error is not None
        if row.attempts >= self.settings.outbox_max_attempts:
            reason = f"gave up after {row.attempts} attempts; the last: {error}"
            self._fail(session, outcome, reason, dead=True)
            report.dead += 1
            log.warning("outbox %s dead: %s", row.id, reason)
            return
        wait = (
            timedelta(seconds=error.retry_after)
            if error.retry_after is not None
            else backoff(self.settings, row.attempts, self.rng)
        )
        self._fail(session, outcome, str(error), dead=False, available_at=now + wait)
        report.retrying += 1

    def _refused(
        self, session: Session, outcome: Outcome, now: datetime, report: DispatchReport
    ) -> None:
        """A permanent refusal: the address is undeliverable; try the other channel."""
        row, error = outcome.row, outcome.error
        assert error is not None
        person = (
            self._people(session, {row.person_id}).get(row.person_id)
            if row.person_id is not None
            else None
        )
        if person is None or person.address(row.channel) != row.recipient:
            self._fail(session, outcome, f"refused: {error}", dead=True)
            report.dead += 1
            return
        reason = f"{error} (outbox message {row.id}, {now:%Y-%m-%d %H:%M} UTC)"
        status = "telegram" if row.channel == Channel.TELEGRAM else "email"
        session.execute(
            update(PERSON)
            .where(PERSON.c.id == person.id)
            .values(
                {
                    f"{status}_status": Deliverability.UNUSABLE.value,
                    f"{status}_status_reason": reason[:2000],
                    "updated_at": now,
                }
            )
        )
        audit(
            session,
            at=now,
            actor="system",
            action=f"{status} undeliverable",
            entity="person",
            entity_id=person.id,
            recipient=row.recipient,
            reason=str(error),
            outbox_id=row.id,
        )
        log.warning("%s of person %s marked undeliverable: %s", status, person.id, error)
        if status == "email":
            person.email_status = Deliverability.UNUSABLE.value
            person.email_status_reason = reason
        else:
            person.telegram_status = Deliverability.UNUSABLE.value
            person.telegram_status_reason = reason
        self._record_message_id(session, outcome)
        why = f"{error}; {row.recipient} is now marked undeliverable"
        self._switch_or_die(session, row, person, why, now, report, attempted=True)

    def _fail(
        self, session: Session, outcome: Outcome, reason: str, *, dead: bool, **changes: Any
    ) -> None:
        values: dict[str, Any] = {
            "state": (OutboxState.DEAD if dead else OutboxState.FAILED).value,
            "last_error": reason[:4000],
            "claimed_by": None,
            "lease_until": None,
            **changes,
        }
        if outcome.outgoing is not None:
            values["message_id"] = outcome.outgoing.message_id
        session.execute(
            update(OUTBOX)
            .where(
                OUTBOX.c.id == outcome.row.id,
                OUTBOX.c.claimed_by == self.worker_id,
                OUTBOX.c.state == OutboxState.CLAIMED.value,
            )
            .values(**values)
        )

    def _record_message_id(self, session: Session, outcome: Outcome) -> None:
        if outcome.outgoing is not None:
            session.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == outcome.row.id)
                .values(message_id=outcome.outgoing.message_id)
            )
