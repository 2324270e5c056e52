"""A scheduled booking's survey invitations: created for the session's times, or moved to its
new times (an invitation whose link is out stays answerable), and saved in bulk."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from schedules.bulk_insert import _bulk_insert
from schedules.plan_constants import HANDLED, INVITATION_TABLE, LIVE_INVITATION
from schedules.planner_context import PlanContext
from schedules.planner_rows import _Invitation, _Row
from schedules.survey_timing import stage_times, stages_for
from schedules.withdrawal import chunks
from surveys.models import InvitationStatus, OutboxState, Stage, utcnow


class InvitationPlanner:
    """Plans the invitations of a pass's scheduled bookings; a session's stage times are worked
    out once for all its bookings."""

    def __init__(self, context: PlanContext):
        self.context = context
        self._times: dict[tuple[int, Stage, int], tuple[datetime, datetime]] = {}

    def plan(
        self, row: _Row, existing: dict[Stage, _Invitation], known: dict[str, OutboxState]
    ) -> dict[Stage, _Invitation]:
        """Create the booking's invitations or move them to the session's current times."""
        now = self.context.now
        report = self.context.report
        result: dict[Stage, _Invitation] = {}
        booking = row.booking
        for stage in stages_for(booking.manager_id, row.policy):
            opens_at, closes_at = self._stage_times(row, stage)
            person_id = booking.manager_id if stage == Stage.MANAGER else booking.delegate_id
            assert person_id is not None
            invitation = existing.get(stage)
            if invitation is None:
                if closes_at <= now:
                    continue  # a booking imported late never gets a stage that has closed
                result[stage] = _Invitation(
                    None,
                    booking.id,
                    person_id,
                    stage,
                    opens_at,
                    closes_at,
                    InvitationStatus.PLANNED,
                )
                report.invitations += 1
                continue
            if invitation.status == InvitationStatus.FINISHED:
                continue
            if invitation.status not in LIVE_INVITATION and closes_at <= now:
                continue
            out = _went_out(invitation, known) or invitation.started
            if out:
                # Its link is out: it stays answerable when the session moves.
                opens_at = min(opens_at, invitation.opens_at)
            else:
                invitation.person_id = person_id
            if not out or invitation.status not in LIVE_INVITATION:
                # Not out yet, or closed or withdrawn and now open again (its session moved
                # later, its booking is active again): the tick opens it at its time.
                invitation.status = InvitationStatus.PLANNED
            invitation.opens_at, invitation.closes_at = opens_at, closes_at
            invitation.changed = True
            result[stage] = invitation
        return result

    def _stage_times(self, row: _Row, stage: Stage) -> tuple[datetime, datetime]:
        key = (row.course_session.id, stage, id(row.policy))
        found = self._times.get(key)
        if found is None:
            found = self._times[key] = stage_times(
                row.course_session, row.policy.stage(stage), self.context.zone
            )
        return found


def existing_invitations(session: Session, ids: list[int]) -> dict[int, dict[Stage, _Invitation]]:
    """The invitations these bookings already have, by booking and stage."""
    i = INVITATION_TABLE.c
    found: dict[int, dict[Stage, _Invitation]] = defaultdict(dict)
    for part in chunks(ids):
        for r in session.execute(
            core_select(
                i.id,
                i.booking_id,
                i.person_id,
                i.stage,
                i.opens_at,
                i.closes_at,
                i.status,
                i.reminders_sent,
                i.started_at,
            ).where(i.booking_id.in_(part))
        ):
            invitation = _Invitation(
                r.id,
                r.booking_id,
                r.person_id,
                Stage(r.stage),
                r.opens_at,
                r.closes_at,
                InvitationStatus(r.status),
                r.reminders_sent,
                started=r.started_at is not None,
            )
            found[invitation.booking_id][invitation.stage] = invitation
    return found


def save_invitations(session: Session, rows: list[_Row]) -> None:
    """Insert the new invitations (learning their ids) and write back the moved ones."""
    new = [i for row in rows for i in row.invitations.values() if i.id is None]
    moved = [i for row in rows for i in row.invitations.values() if i.changed]
    if new:
        created = utcnow()
        _bulk_insert(
            session,
            INVITATION_TABLE,
            [
                {
                    "booking_id": i.booking_id,
                    "person_id": i.person_id,
                    "stage": i.stage,
                    "opens_at": i.opens_at,
                    "closes_at": i.closes_at,
                    "status": i.status,
                    "reminders_sent": 0,
                    "created_at": created,
                }
                for i in new
            ],
            ["booking_id", "stage"],
            [],
        )
        table = INVITATION_TABLE.c
        ids: dict[tuple[int, str], int] = {}
        for part in chunks(sorted({i.booking_id for i in new})):
            statement = core_select(table.id, table.booking_id, table.stage).where(
                table.booking_id.in_(part)
            )
            for r in session.execute(statement):
                ids[(r.booking_id, r.stage)] = r.id
        for invitation in new:
            invitation.id = ids[(invitation.booking_id, invitation.stage)]
    if moved:
        session.execute(
            update(INVITATION_TABLE).where(INVITATION_TABLE.c.id == bindparam("invitation_id")),
            [
                {
                    "invitation_id": i.id,
                    "person_id": i.person_id,
                    "opens_at": i.opens_at,
                    "closes_at": i.closes_at,
                    "status": i.status.value,
                }
                for i in moved
            ],
        )


def _went_out(invitation: _Invitation, known: dict[str, OutboxState]) -> bool:
    """Whether the invitation's own message has been sent (for any earlier times)."""
    prefix = f"inv:{invitation.id}:open:"
    return any(key.startswith(prefix) and state in HANDLED for key, state in known.items())
