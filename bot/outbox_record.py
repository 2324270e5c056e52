"""Recording what became of each message handed to a channel: sent, to retry, dead, the
recipient refused (the address is marked undeliverable and the row tries the person's other
channel), or the channel's own fault (the channel pauses; see ``bot.pauses``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session

from bot.outbox_base import (
    OUTBOX,
    PERSON,
    DispatchReport,
    Outcome,
    StoreBase,
    Streak,
    backoff,
    log,
)
from bot.pauses import pause_channel, tell_coordinator
from surveys.audit import record as audit
from surveys.models import Channel, Deliverability, OutboxState, UTCDateTime


class OutcomeRecorder(StoreBase):
    def record(self, outcomes: list[Outcome], now: datetime, report: DispatchReport) -> None:
        with Session(self.engine) as session:
            sent = [o for o in outcomes if o.delivered is not None]
            for start in range(0, len(sent), 200):
                self._record_sent(session, sent[start : start + 200], now)
            report.sent += len(sent)
            for outcome in outcomes:
                if outcome.delivered is not None:
                    self._streaks.pop(outcome.row.channel, None)  # the run is broken
                elif outcome.render_error is not None:
                    self._fail(
                        session, outcome, f"cannot render: {outcome.render_error}", dead=True
                    )
                    report.dead += 1
                elif outcome.held is not None:
                    self._settle(
                        session, outcome.row, OutboxState.PENDING, outcome.held, available_at=now
                    )
                elif outcome.error is not None and outcome.error.message_fault:
                    self._fail(session, outcome, f"not sent: {outcome.error}", dead=True)
                    report.dead += 1
                elif outcome.error is not None and outcome.error.channel_fault:
                    self._channel_fault(session, outcome, now, report)
                elif outcome.error is not None and outcome.row.channel in self.paused:
                    # Any failure on a channel found faulty is suspect: nobody is marked for it.
                    self._settle(
                        session,
                        outcome.row,
                        OutboxState.PENDING,
                        f"waiting: the {outcome.row.channel} channel is paused (this attempt: "
                        f"{outcome.error})",
                        available_at=now,
                    )
                elif outcome.error is not None and outcome.error.permanent:
                    if not self._repeated_refusal(session, outcome, now, report):
                        self._refused(session, outcome, now, report)
                elif outcome.error is not None:
                    self._retry_later(session, outcome, now, report)
            session.commit()

    # --- the channel's own fault: pause --------------------------------------------------------

    def _channel_fault(
        self, session: Session, outcome: Outcome, now: datetime, report: DispatchReport
    ) -> None:
        """The channel cannot send anyone's messages: this one waits (no attempt counted), and
        the channel pauses."""
        row, error = outcome.row, outcome.error
        assert error is not None
        self._record_message_id(session, outcome)
        waiting = f"waiting: the {row.channel} channel is paused: {error}"
        self._settle(session, row, OutboxState.PENDING, waiting, available_at=now)
        self._pause(session, row.channel, str(error), now, row.id)

    def _pause(
        self, session: Session, channel: Channel, reason: str, now: datetime, outbox_id: int
    ) -> None:
        self.paused.add(channel)
        self._paused_from_db.add(channel)
        self._pausing.discard(channel)
        self._streaks.pop(channel, None)
        if pause_channel(session, channel.value, reason=reason, now=now, outbox_id=outbox_id):
            working = self.channels - {channel}
            if tell_coordinator(
                session,
                self.settings,
                channel=channel.value,
                reason=reason,
                now=now,
                working=working,
            ):
                self.forget_drained()

    def _repeated_refusal(
        self, session: Session, outcome: Outcome, now: datetime, report: DispatchReport
    ) -> bool:
        """True when this refusal is the same as those of the different recipients before it,
        often enough (``EVALBOT_OUTBOX_PAUSE_AFTER_SAME_REFUSALS``) to be the relay's fault:
        then the channel pauses and those recipients' addresses are marked usable again."""
        row, error = outcome.row, outcome.error
        assert error is not None
        threshold = self.settings.outbox_pause_after_same_refusals
        if error.refusal is None or threshold < 2:
            self._streaks.pop(row.channel, None)
            return False
        streak = self._streaks.get(row.channel)
        if streak is None or streak.refusal != error.refusal or row.recipient in streak.rows:
            streak = self._streaks[row.channel] = Streak(error.refusal)
        streak.rows[row.recipient] = (row.id, row.person_id)
        if len(streak.rows) < threshold:
            return False
        reason = (
            f"the same refusal for {len(streak.rows)} different recipients in a row, which is "
            f"the relay's fault rather than theirs: {error}"
        )
        self._record_message_id(session, outcome)
        waiting = f"waiting: the {row.channel} channel is paused: {reason}"
        self._settle(session, row, OutboxState.PENDING, waiting, available_at=now)
        earlier = [(r, ids) for r, ids in streak.rows.items() if ids[0] != row.id]
        self._pause(session, row.channel, reason, now, row.id)
        for recipient, (row_id, person_id) in earlier:
            self._unmark(session, row.channel, recipient, row_id, person_id, now, waiting)
        return True

    def _unmark(
        self,
        session: Session,
        channel: Channel,
        recipient: str,
        row_id: int,
        person_id: int | None,
        now: datetime,
        waiting: str,
    ) -> None:
        """Undo what an earlier refusal of a run did: the address is usable again, and the
        message, if it died of it, waits for the channel."""
        status = channel.value  # the person's <channel>_status columns
        if person_id is not None:
            restored = session.execute(
                update(PERSON)
                .where(
                    PERSON.c.id == person_id,
                    PERSON.c[f"{status}_status"] == Deliverability.UNUSABLE.value,
                    PERSON.c[f"{status}_status_reason"].like(f"%(outbox message {row_id}, %"),
                )
                .values(
                    {
                        f"{status}_status": Deliverability.OK.value,
                        f"{status}_status_reason": None,
                        "updated_at": now,
                    }
                )
            )
            if restored.rowcount:  # type: ignore[attr-defined]
                audit(
                    session,
                    at=now,
                    actor="system",
                    action=f"{status} restored",
                    entity="person",
                    entity_id=person_id,
                    reason="the refusal was the relay's, repeated for several recipients",
                    outbox_id=row_id,
                )
        session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == row_id, OUTBOX.c.state == OutboxState.DEAD.value)
            .values(
                state=OutboxState.PENDING.value,
                channel=channel.value,
                recipient=recipient,
                available_at=now,
                attempts=0,
                last_error=waiting[:4000],
            )
        )

    # --- the recipient's fault, or a passing one ---------------------------------------------

    def _record_sent(self, session: Session, sent: list[Outcome], now: datetime) -> None:
        """Mark rows sent in one statement: an UPDATE joined to a VALUES list (on SQLite and
        PostgreSQL alike), far cheaper than a statement per row. Written for the driver
        directly: with a few hundred parameters, building the statement would cost more."""
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        values = ", ".join([f"({mark}, {mark}, {mark}, {mark}, {mark})"] * len(sent))
        params: list[Any] = []
        for outcome in sent:
            delivered = outcome.delivered
            params += (
                outcome.row.id,
                delivered.server_reply[:2000] if delivered else "",
                outcome.outgoing.message_id if outcome.outgoing else None,
                outcome.row.recipient,
                delivered.provider_id[:100] if delivered and delivered.provider_id else None,
            )
        # A NULL in the first row of VALUES leaves PostgreSQL without the column's type.
        provider = "CAST(done.provider AS VARCHAR(100))"
        session.connection().exec_driver_sql(
            f"WITH done (row_id, reply, mid, recipient, provider) AS (VALUES {values}) "
            f"UPDATE outbox SET state = 'sent', sent_at = {mark}, server_reply = done.reply, "
            f"message_id = done.mid, recipient = done.recipient, provider_id = {provider}, "
            "claimed_by = NULL, lease_until = NULL FROM done WHERE outbox.id = done.row_id "
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
        status = row.channel.value  # the person's <channel>_status columns
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
        setattr(person, f"{status}_status", Deliverability.UNUSABLE.value)
        setattr(person, f"{status}_status_reason", reason)
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
