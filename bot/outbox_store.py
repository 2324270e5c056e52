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

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlmodel import Session

from bot.outbox_base import (
    OUTBOX,
    Claimed,
    ClaimResult,
    DispatchReport,
    Outcome,
    PersonView,
    backoff,
    claim_statement,
    log,
    other_channel,
)
from bot.outbox_record import OutcomeRecorder
from bot.pauses import paused_channels
from bot.ratelimit import DAY
from bot.rendering import issue_unsubscribe_link, opt_out_applies
from surveys.models import Channel, MessageKind, OutboxState

CHANNEL_NAMES = frozenset(c.value for c in Channel)
PAUSES_READ = timedelta(seconds=1)

__all__ = [
    "ClaimResult",
    "Claimed",
    "DispatchReport",
    "OutboxStore",
    "Outcome",
    "PersonView",
    "backoff",
    "claim_statement",
    "log",
    "other_channel",
]


class OutboxStore(OutcomeRecorder):
    """Every database step of delivery for one dispatcher (see the module's account)."""

    # --- claiming --------------------------------------------------------------------------

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
            # A paused channel's rows stay pending, in every worker: the pause is in the
            # database, read again at most once a second (a pause here counts at once).
            if (
                self._paused_read is None
                or not timedelta() <= now - self._paused_read < PAUSES_READ
            ):
                self._paused_from_db = {
                    Channel(c) for c in paused_channels(session) if c in CHANNEL_NAMES
                }
                self._paused_read = now
            self.paused = self._pausing | self._paused_from_db
            result.paused = set(self.paused)
            claimed: list[Claimed] = []
            for channel in Channel:
                if channel in self.paused:
                    continue
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

    def count_due(self, now: datetime, *, paused: bool = False) -> int:
        """Rows due at ``now`` of the channels running (or, with ``paused``, of those paused)."""
        with Session(self.engine) as session:
            names = [c.value for c in self.paused]
            due = (
                select(func.count())
                .select_from(OUTBOX)
                .where(
                    OUTBOX.c.state.in_([OutboxState.PENDING.value, OutboxState.FAILED.value]),
                    OUTBOX.c.available_at <= now,
                )
            )
            if paused:
                if not names:
                    return 0
                due = due.where(OUTBOX.c.channel.in_(names))
            elif names:
                due = due.where(OUTBOX.c.channel.not_in(names))
            return int(session.execute(due).scalar_one())

    def anything_due(self, now: datetime, claim: ClaimResult) -> bool:
        """Whether an ``until_idle`` run must go on: rows due (except those waiting for a daily
        limit or a paused channel) or rows claimed by anyone, whose lease may yet run out."""
        day_limited = claim.day_limited | claim.paused | self.paused
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
            if row.channel == Channel.SMS and not self._may_text(row, person):
                why = (
                    f"{person.name} chose email only"
                    if person.sms_opt_out
                    else f"the policy does not send {row.template} by text"
                )
                self._switch_or_die(session, row, person, why, now, report)
                continue
            if opt_out_applies(row.kind) and person.opted_out(row.channel):
                reason = (
                    f"not sent: {person.name} opted out of reminders and campaigns by {row.channel}"
                )
                self._settle(session, row, OutboxState.WITHDRAWN, reason)
                report.withdrawn += 1
                continue
            if row.channel == Channel.EMAIL and self._text_instead(row, person):
                # Sent as a text message: claimed again under that channel's own limits.
                self._settle(
                    session,
                    row,
                    OutboxState.PENDING,
                    None,
                    available_at=now,
                    channel=Channel.SMS.value,
                    recipient=person.mobile,
                )
                self.forget_drained(Channel.SMS)
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

    # --- text messages -----------------------------------------------------------------------

    def _may_text(self, row: Claimed, person: PersonView) -> bool:
        """Whether the policy lets this message go by text, and the person has not chosen
        email only."""
        if person.sms_opt_out:
            return False
        title = row.context.get("course_title")
        policy = self.policy.for_course(title) if isinstance(title, str) else self.policy
        return row.template in policy.sms_messages

    def _text_instead(self, row: Claimed, person: PersonView) -> bool:
        """A message the policy lets go by text, to someone with a number and no working
        Telegram chat, goes by text when text messages are set up and running."""
        if Channel.SMS not in self.channels or Channel.SMS in self.paused:
            return False
        if Channel.TELEGRAM in self.channels and person.usable(Channel.TELEGRAM):
            return False
        if opt_out_applies(row.kind) and person.opted_out(Channel.SMS):
            return False
        return person.usable(Channel.SMS) and self._may_text(row, person)
