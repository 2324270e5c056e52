"""One pass of everything that is due: ``tick(engine, now=...)``.

The schedule is data (invitations and outbox rows), so a tick only compares it with ``now``: run
every minute, or once after a day's downtime, it does what has fallen due since and no more.
In order:

1. close invitations whose time is up; move new bookings beyond a full session's
   ``max_places`` to its waiting list; withdraw what belongs to bookings no longer active
   (cancelled, replaced, no-show, waiting), tell each new waiting-list entry its number and
   release each cancelled place to the waiting list (``schedules.waitlist``);
2. plan new and moved bookings, and cancelled sessions (``schedules.planning``), and each
   session's trainer's report (``schedules.trainer_reports``);
3. open invitations whose time has come (and close any that planning moved into the past),
   withdraw unsent survey messages of invitations finished, closed or withdrawn, and queue the
   ``survey-invitation`` of each survey newly open;
4. queue each open, unfinished invitation's due reminder (``survey-reminder``), under its cap
   (the trainers' reports' invitations and reminders too);
5. remind the trainer of a register still open ``register_reminder_after`` after the end;
6. turn closed registers into no-show notices (``schedules.attendance``);
7. queue refresher reminders (``schedules.refresher``);
8. the waiting list: tell the waiting entries of cancelled sessions, lapse and make place
   offers (``schedules.offers``), and report sessions under their minimum at
   ``min_places_check``;
9. hold what would go out outside the sending window (after downtime, say) until it opens.

Every step is idempotent: a second tick at the same ``now`` finds nothing to do. Several
processes may tick at once: each row is claimed with a conditional update before anything is
queued for it, and messages carry unique idempotency keys. Each step commits on its own; a dry
run does all of them in one transaction and rolls it back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from schedules.attendance import process_closed_registers
from schedules.calendar import in_window, next_send_time
from schedules.cancellation import record_late_cancellation_charges
from schedules.certificates import queue_certificate_notices
from schedules.offers import OfferReport, run_offers
from schedules.planning import (
    BOOKING_INACTIVE,
    BOOKING_TABLE,
    INACTIVE,
    INVITATION,
    INVITATION_TABLE,
    LIVE_INVITATION,
    OUTBOX_TABLE,
    REMINDER,
    UNSENT,
    PlanReport,
    chunks,
    plan,
    queue_invitation_messages,
    withdraw_invitations,
    withdraw_messages,
    withdraw_unsent,
)
from schedules.policy import Policy
from schedules.refresher import queue_refresher_reminders
from schedules.register_reminders import remind_registers
from schedules.reminders import queue_reminders
from schedules.retention import erase_expired
from schedules.sessions import check_under_filled, overflow_to_waiting
from schedules.trainer_reports import TrainerPlan, plan_trainer_reports, queue_trainer_messages
from schedules.waitlist import after_inactive, tell_cancelled_sessions
from surveys.models import (
    Booking,
    InvitationStatus,
    OutboxMessage,
    SurveyInvitation,
)
from surveys.people import Erasure
from surveys.text import plural

log = logging.getLogger(__name__)

# How far ahead of falling due a message is looked at again (withdrawn if its survey is
# finished, held if it would go out outside the window): more than the minute between ticks.
LOOK_AHEAD = timedelta(hours=1)
_T = TypeVar("_T")


@dataclass
class TickReport:
    """What one tick did, or in a dry run would do."""

    now: datetime
    dry_run: bool = False
    plan: PlanReport = field(default_factory=PlanReport)
    trainer: TrainerPlan = field(default_factory=TrainerPlan)  # the trainers' reports
    bookings_withdrawn: int = 0  # no longer active: their surveys and messages withdrawn
    opened: int = 0
    closed: int = 0
    invitations: int = 0  # survey invitations queued as their surveys opened
    messages_withdrawn: int = 0
    reminders: int = 0
    register_reminders: int = 0
    no_show_notices: int = 0
    refresher_reminders: int = 0
    charges: int = 0  # late cancellations charged, not replaced by the start
    certificates: int = 0  # certificate-ready notices queued
    waitlisted: int = 0  # new bookings beyond a full session's maximum, put on its waiting list
    waiting_told_cancelled: int = 0  # waiting-list entries of cancelled sessions, told
    offers: OfferReport = field(default_factory=OfferReport)
    under_filled: int = 0  # sessions under their minimum, reported to the coordinator
    queued: Counter[str] = field(default_factory=Counter)  # every message queued, by template
    held: int = 0  # due outside the sending window: moved to its next opening
    due: int = 0  # messages due for delivery at ``now`` after the tick
    # Those the retention period ran out for, erased (``schedules.retention``); None if no one.
    erasure: Erasure | None = None

    @property
    def erased(self) -> int:
        return self.erasure.people if self.erasure is not None else 0

    def lines(self) -> list[str]:
        """The report for a person, one fact a line."""
        verb = "would be" if self.dry_run else ""
        out = [
            f"Bookings planned: {self.plan.bookings} ({self.plan.invitations} new invitations)",
            f"Sessions cancelled, bookings told: {self.plan.sessions_cancelled}",
            f"Trainers' reports planned: {self.trainer.planned}; moved: {self.trainer.moved}; "
            f"withdrawn: {self.trainer.withdrawn}",
            f"Bookings no longer active, withdrawn: {self.bookings_withdrawn}",
            f"Surveys opened: {self.opened}; closed: {self.closed}",
            f"Survey invitations queued: {self.invitations}",
            f"Unsent messages withdrawn: {self.messages_withdrawn + self.plan.messages_withdrawn}",
            f"Reminders queued: {self.reminders}",
            f"Register reminders queued: {self.register_reminders}",
            f"No-show notices: {plural(self.no_show_notices, 'booking')}",
            f"Refresher reminders: {self.refresher_reminders}",
            f"Late cancellations charged: {self.charges}",
            f"Certificate notices: {self.certificates}",
            f"Waiting list: {self.waitlisted} new bookings beyond the maximum put on it; "
            f"{self.waiting_told_cancelled} told their session was cancelled",
            f"Place offers: {self.offers.offered} made, {self.offers.lapsed} lapsed, "
            f"{self.offers.unfilled} places nobody on the list took",
            f"Sessions under their minimum reported: {self.under_filled}",
            f"Held for the sending window: {self.held}",
            f"People erased, past the retention period: {self.erased}",
        ]
        if self.queued:
            parts = ", ".join(f"{name} {count}" for name, count in sorted(self.queued.items()))
            out.append(f"Queued: {parts}")
        else:
            out.append("Queued: nothing")
        out.append(f"Messages due now{' ' + verb if verb else ''}: {self.due}")
        return out


def tick(
    engine: Engine,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    definitions_dir: Path | None = None,
    telegram: bool = True,
    dry_run: bool = False,
    batch_size: int = 1000,
    admin_email: str | None = None,
    retention_years: int = 0,
) -> TickReport:
    """One pass of everything due at ``now`` (aware); see the module's docstring.

    ``definitions_dir`` is where the partnership's survey definitions are (for the first
    question an invitation shows); ``telegram`` whether messages may offer a Telegram link;
    ``admin_email`` the coordinator's address (places nobody took, under-filled sessions);
    ``retention_years`` (0: none) how long people are kept after their last session.
    """
    if now.tzinfo is None:
        raise ValueError("tick needs an aware datetime for now")
    report = TickReport(now=now, dry_run=dry_run)
    with Session(engine, expire_on_commit=False) as session:
        commit: Callable[[], None] = session.flush if dry_run else session.commit
        runner = _Steps(session, commit, retry=not dry_run)

        def survey_messages(step: Callable[..., _T]) -> _T:
            """Queue survey invitations or reminders: these steps take the same settings."""
            return step(
                session,
                now=now,
                policy=policy,
                zone=zone,
                secret=secret,
                definitions_dir=definitions_dir,
                telegram=telegram,
            )

        try:
            first_id = session.exec(select(func.max(OutboxMessage.id))).one() or 0
            # Close first: a survey past its closing is closed, whatever became of its booking.
            report.closed = runner.run(lambda: close_due(session, now))
            report.waitlisted = runner.run(lambda: overflow_to_waiting(session, now=now))
            report.bookings_withdrawn, withdrawn = runner.run(
                lambda: withdraw_inactive(
                    session,
                    then=lambda ids: after_inactive(
                        session, ids, now=now, policy=policy, zone=zone
                    ),
                )
            )
            report.messages_withdrawn += withdrawn
            report.plan = runner.run(
                lambda: plan(
                    session,
                    now=now,
                    policy=policy,
                    zone=zone,
                    secret=secret,
                    telegram=telegram,
                    commit=commit,
                    batch_size=batch_size,
                )
            )
            report.trainer = runner.run(
                lambda: plan_trainer_reports(session, now=now, policy=policy, zone=zone)
            )
            report.opened = runner.run(lambda: open_due(session, now))
            report.closed += runner.run(lambda: close_due(session, now))  # moved by planning
            report.messages_withdrawn += runner.run(lambda: withdraw_answered(session, now))
            report.invitations = runner.run(lambda: survey_messages(queue_invitation_messages))
            report.reminders = runner.run(lambda: survey_messages(queue_reminders))
            trainer_invitations, trainer_reminders = runner.run(
                lambda: survey_messages(queue_trainer_messages)
            )
            report.invitations += trainer_invitations
            report.reminders += trainer_reminders
            report.register_reminders = runner.run(
                lambda: remind_registers(session, now=now, policy=policy, zone=zone, secret=secret)
            )
            report.no_show_notices = runner.run(
                lambda: process_closed_registers(
                    session, now=now, policy=policy, secret=secret, zone=zone
                )
            )
            report.refresher_reminders = runner.run(
                lambda: queue_refresher_reminders(session, now=now, policy=policy, zone=zone)
            )
            report.charges = runner.run(
                lambda: record_late_cancellation_charges(session, now=now, policy=policy)
            )
            report.certificates = runner.run(
                lambda: queue_certificate_notices(
                    session, now=now, policy=policy, zone=zone, secret=secret
                )
            )
            report.waiting_told_cancelled = runner.run(
                lambda: tell_cancelled_sessions(session, now=now)
            )
            report.offers = runner.run(
                lambda: run_offers(
                    session,
                    now=now,
                    policy=policy,
                    zone=zone,
                    secret=secret,
                    admin_email=admin_email,
                )
            )
            report.under_filled = runner.run(
                lambda: check_under_filled(
                    session, now=now, policy=policy, zone=zone, admin_email=admin_email
                )
            )
            report.held = runner.run(lambda: hold_for_window(session, now, policy, zone))
            report.erasure = runner.run(
                lambda: erase_expired(session, now=now, years=retention_years)
            )
            report.queued = Counter(
                dict(
                    session.exec(
                        select(OutboxMessage.template, func.count())
                        .where(col(OutboxMessage.id) > first_id)
                        .group_by(col(OutboxMessage.template))
                    ).all()
                )
            )
            report.due = session.exec(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    col(OutboxMessage.state).in_(UNSENT),
                    col(OutboxMessage.available_at) <= now,
                )
            ).one()
        finally:
            if dry_run:
                session.rollback()
    return report


class _Steps:
    """Runs each step and commits it; a step that loses a lock race is tried again."""

    def __init__(self, session: Session, commit: Callable[[], None], *, retry: bool):
        self.session = session
        self.commit = commit
        self.retry = retry

    def run(self, step: Callable[[], _T]) -> _T:
        attempts = 3 if self.retry else 1
        for attempt in range(1, attempts + 1):
            try:
                result = step()
                self.commit()
                return result
            except OperationalError as exc:
                # Deadlocks (PostgreSQL) and a busy database (SQLite) pass: every step's claims
                # make a second try safe.
                self.session.rollback()
                if attempt == attempts or not _transient(exc):
                    raise
                log.warning("tick step retried after %s", exc.orig)
        raise AssertionError("unreachable")


def _transient(exc: OperationalError) -> bool:
    text = str(exc.orig).lower()
    return any(word in text for word in ("deadlock", "locked", "could not serialize"))


# --- the steps ----------------------------------------------------------------------------------


def hold_for_window(session: Session, now: datetime, policy: Policy, zone: ZoneInfo) -> int:
    """Keep messages meant for the sending window inside it, whenever delivery happens.

    A message is meant for the window when its due time is inside it. Delivered late (the
    service was down, or a retry fell due in the evening), it would go out whenever the next
    tick runs, on a Saturday perhaps: so a message that would go out now, or within the hour,
    outside the window, waits for the window's next opening. Messages due outside the window on
    purpose (a session's cancellation, at any hour) are left alone.
    """
    horizon = now + LOOK_AHEAD
    if in_window(now, policy, zone) and in_window(horizon, policy, zone):
        return 0
    held = []
    for message_id, due_at, available_at in session.execute(
        core_select(OUTBOX_TABLE.c.id, OUTBOX_TABLE.c.due_at, OUTBOX_TABLE.c.available_at).where(
            OUTBOX_TABLE.c.state.in_(UNSENT), OUTBOX_TABLE.c.available_at <= horizon
        )
    ):
        goes_at = max(available_at, now)
        if in_window(due_at, policy, zone) and not in_window(goes_at, policy, zone):
            held.append(
                {"row_id": message_id, "available_at": next_send_time(goes_at, policy, zone)}
            )
    if held:
        session.execute(
            update(OUTBOX_TABLE).where(
                OUTBOX_TABLE.c.id == bindparam("row_id"),
                # (no IN list: executemany cannot expand one)
                or_(*(OUTBOX_TABLE.c.state == state.value for state in UNSENT)),
            ),
            held,
        )
    return len(held)


def withdraw_inactive(
    session: Session, *, then: Callable[[list[int]], None] | None = None
) -> tuple[int, int]:
    """Bookings cancelled, replaced, marked no-show or waiting: withdraw their surveys and
    planned messages; ``then`` is called with the ids claimed, in the same transaction.

    Returns (bookings, messages). Each booking is claimed by setting its ``planned_version`` to
    ``BOOKING_INACTIVE``, so it is done once; should it become active again (a register
    corrected), the differing version has planning take it up afresh. Its other notices (a
    cancellation's confirmation, a no-show notice) are not planned messages and are left alone.
    """
    candidates = session.exec(
        select(Booking.id).where(
            col(Booking.status).in_(INACTIVE),
            col(Booking.planned_version) != BOOKING_INACTIVE,
        )
    ).all()
    claimed: list[int] = []
    for part in chunks([booking_id for booking_id in candidates if booking_id is not None]):
        result = session.execute(
            update(BOOKING_TABLE)
            .where(
                BOOKING_TABLE.c.id.in_(part),
                BOOKING_TABLE.c.status.in_(INACTIVE),
                BOOKING_TABLE.c.planned_version != BOOKING_INACTIVE,
            )
            .values(planned_version=BOOKING_INACTIVE)
            .returning(BOOKING_TABLE.c.id)
        )
        claimed.extend(result.scalars().all())
    if not claimed:
        return 0, 0
    messages = withdraw_unsent(session, claimed, "the booking is no longer active")
    withdraw_invitations(session, claimed)
    if then is not None:
        then(claimed)
    return len(claimed), messages


def open_due(session: Session, now: datetime) -> int:
    """Planned invitations whose opening has come and whose closing has not."""
    result = session.execute(
        update(SurveyInvitation)
        .where(
            col(SurveyInvitation.status) == InvitationStatus.PLANNED,
            col(SurveyInvitation.opens_at) <= now,
            col(SurveyInvitation.closes_at) > now,
        )
        .values(status=InvitationStatus.OPEN)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def close_due(session: Session, now: datetime) -> int:
    """Invitations past their closing, unfinished."""
    result = session.execute(
        update(SurveyInvitation)
        .where(
            col(SurveyInvitation.status).in_(LIVE_INVITATION),
            col(SurveyInvitation.closes_at) <= now,
        )
        .values(status=InvitationStatus.CLOSED)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def withdraw_answered(session: Session, now: datetime) -> int:
    """Unsent invitations and reminders of surveys finished, closed or withdrawn.

    Only messages falling due before ``now + LOOK_AHEAD`` are looked at (the outbox's due
    index keeps that cheap however much is queued): whatever is later is looked at again by the
    ticks before it falls due, and the dispatcher sends nothing before it is due.
    """
    outbox_c, invitation_c = OUTBOX_TABLE.c, INVITATION_TABLE.c
    done = session.execute(
        core_select(outbox_c.id)
        .join(INVITATION_TABLE, invitation_c.id == outbox_c.invitation_id)
        .where(
            outbox_c.state.in_(UNSENT),
            outbox_c.available_at <= now + LOOK_AHEAD,
            outbox_c.template.in_((INVITATION, REMINDER)),
            or_(
                invitation_c.status.not_in(LIVE_INVITATION),
                invitation_c.finished_at.is_not(None),
            ),
        )
    ).scalars()
    return withdraw_messages(session, list(done), "the survey is finished or closed")
