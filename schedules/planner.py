"""The planner: claims the bookings to plan and plans them in batches (see
``schedules.planning``'s docstring for what planning a booking does).

Its parts: ``planner_batch`` (which bookings a batch takes), ``planner_invitations`` (their
survey invitations), ``planner_replans`` (a booking planned again for new times),
``planner_notices`` (confirmations, a cancelled session's notices) and ``planner_context``
(what they share, and the rows a batch writes at its end).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from schedules.plan_constants import SESSION_CANCELLED
from schedules.planner_batch import candidates, claim, load_people
from schedules.planner_context import PlanContext
from schedules.planner_invitations import InvitationPlanner, existing_invitations, save_invitations
from schedules.planner_notices import Notices
from schedules.planner_replans import known_messages, withdraw_stale
from schedules.planner_rows import PlanReport, _Row
from schedules.policy import Policy


class Planner:
    """Plans bookings in batches; see the module's docstring."""

    def __init__(
        self,
        session: Session,
        *,
        now: datetime,
        policy: Policy,
        zone: ZoneInfo,
        secret: bytes,
        telegram: bool = True,
        batch_size: int = 1000,
    ):
        self.context = PlanContext(
            session=session, now=now, policy=policy, zone=zone, secret=secret, telegram=telegram
        )
        self.session = session
        self.batch_size = batch_size
        self.report = self.context.report
        self.invitations = InvitationPlanner(self.context)
        self.notices = Notices(self.context)

    def run(self, commit: Callable[[], None] | None = None) -> PlanReport:
        """Plan every booking that needs it; ``commit`` is called after each batch."""
        after = 0
        while True:
            batch = candidates(
                self.session, self.context.policy, after=after, limit=self.batch_size
            )
            if not batch:
                return self.report
            after = batch[-1].booking.id
            self._plan_batch(batch)
            if commit is not None:
                commit()

    def _plan_batch(self, batch: list[_Row]) -> None:
        rows = claim(self.session, batch)
        self.context.people = load_people(self.session, rows)
        cancelled = [row for row in rows if row.target == SESSION_CANCELLED]
        if cancelled:
            self.notices.session_cancelled(cancelled)
        scheduled = [row for row in rows if row.target != SESSION_CANCELLED]
        if scheduled:
            self._plan(scheduled)
        self.context.output.write(self.session)

    def _plan(self, rows: list[_Row]) -> None:
        """A scheduled session's bookings: invitations, stale messages, confirmations."""
        ids = [row.booking.id for row in rows]
        existing = existing_invitations(self.session, ids)
        replanned = [row.booking.id for row in rows if row.booking.planned_version != 0]
        known = known_messages(self.session, replanned)
        for row in rows:
            row.invitations = self.invitations.plan(
                row, existing.get(row.booking.id, {}), known.get(row.booking.id, {})
            )
        save_invitations(self.session, rows)
        if replanned:
            stale = [row for row in rows if row.booking.planned_version != 0]
            withdraw_stale(self.session, stale, self.report)
            known = known_messages(self.session, replanned)
        for row in rows:
            self.report.bookings += 1
            self.notices.confirmation(row, known.get(row.booking.id, {}))


def plan(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    telegram: bool = True,
    commit: Callable[[], None] | None = None,
    batch_size: int = 1000,
) -> PlanReport:
    """Plan every booking not yet planned for its session's current times.

    ``telegram``: whether there is a bot to offer people a Telegram link to. ``commit`` (when
    given) is called after each batch, so a big import is planned in steps.
    """
    planner = Planner(
        session,
        now=now,
        policy=policy,
        zone=zone,
        secret=secret,
        telegram=telegram,
        batch_size=batch_size,
    )
    return planner.run(commit)
