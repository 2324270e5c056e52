"""The planner: claims the bookings to plan and plans them in batches (see
``schedules.planning``'s docstring for what planning a booking does)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from schedules.bulk_insert import _bulk_insert
from schedules.calendar import cancellation_cutoff, next_send_time
from schedules.message_context import (
    charge_pence,
    session_context,
)
from schedules.message_links import (
    link_rows,
    person_links,
)
from schedules.outbox_rows import outbox_row
from schedules.plan_constants import (
    ACTIVE,
    BOOKING_TABLE,
    CONFIRMATION,
    COURSE_TABLE,
    HANDLED,
    INVITATION_TABLE,
    LINK_TABLE,
    LIVE_INVITATION,
    OUTBOX_TABLE,
    PERSON_TABLE,
    REMINDER,
    SESSION_CANCELLED,
    SESSION_CANCELLED_NOTICE,
    SESSION_TABLE,
    UNSENT,
)
from schedules.planner_rows import (
    PlanReport,
    _Booking,
    _Course,
    _Invitation,
    _Person,
    _Row,
    _Session,
)
from schedules.policy import Policy
from schedules.survey_timing import signature, stage_times, stages_for
from schedules.withdrawal import (
    chunks,
    planned_messages,
    withdraw_invitations,
    withdraw_messages,
    withdraw_unsent,
)
from surveys.models import (
    InvitationStatus,
    LinkPurpose,
    MessageKind,
    OutboxState,
    SessionStatus,
    Stage,
    utcnow,
)


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
        self.session = session
        self.telegram = telegram
        self.now = now
        self.policy = policy
        self.zone = zone
        self.secret = secret
        self.batch_size = batch_size
        self.report = PlanReport()
        self._people: dict[int, _Person] = {}
        self._links: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._revive: list[dict[str, Any]] = []
        self._send_times: dict[tuple[int, datetime], datetime] = {}
        self._times: dict[tuple[int, Stage, int], tuple[datetime, datetime]] = {}
        # Per session and course policy: the bookings of one session share these.
        self._session_texts: dict[tuple[int, int], dict[str, Any]] = {}

    def run(self, commit: Callable[[], None] | None = None) -> PlanReport:
        """Plan every booking that needs it; ``commit`` is called after each batch."""
        after = 0
        while True:
            batch = self._candidates(after)
            if not batch:
                return self.report
            after = batch[-1].booking.id
            self._plan_batch(batch)
            if commit is not None:
                commit()

    def _candidates(self, after: int) -> list[_Row]:
        b, s, c = BOOKING_TABLE.c, SESSION_TABLE.c, COURSE_TABLE.c
        needs_plan = and_(
            s.status == SessionStatus.SCHEDULED.value, b.planned_version != s.schedule_version
        )
        needs_notice = and_(
            s.status == SessionStatus.CANCELLED.value, b.planned_version != SESSION_CANCELLED
        )
        statement = (
            core_select(
                b.id,
                b.ref,
                b.planned_version,
                b.delegate_id,
                b.manager_id,
                b.replaces_id,
                s.id.label("session_id"),
                s.ref.label("session_ref"),
                s.starts_at,
                s.ends_at,
                s.venue,
                s.online,
                s.status.label("session_status"),
                s.schedule_version,
                s.previous_starts_at,
                s.joining_link,
                c.id.label("course_id"),
                c.title,
                c.duration,
            )
            .select_from(BOOKING_TABLE.join(SESSION_TABLE).join(COURSE_TABLE))
            .where(b.status.in_(ACTIVE), b.id > after, or_(needs_plan, needs_notice))
            .order_by(b.id)
            .limit(self.batch_size)
        )
        sessions: dict[int, _Session] = {}
        courses: dict[int, _Course] = {}
        rows = []
        for r in self.session.execute(statement):
            course_session = sessions.get(r.session_id)
            if course_session is None:
                course_session = sessions[r.session_id] = _Session(
                    r.session_id,
                    r.session_ref,
                    r.starts_at,
                    r.ends_at,
                    r.venue,
                    bool(r.online),
                    SessionStatus(r.session_status),
                    r.schedule_version,
                    r.previous_starts_at,
                    r.joining_link,
                )
            course = courses.get(r.course_id)
            if course is None:
                course = courses[r.course_id] = _Course(r.course_id, r.title, r.duration, [])
            booking = _Booking(
                r.id, r.ref, r.planned_version, r.delegate_id, r.manager_id, r.replaces_id
            )
            cancelled = course_session.status == SessionStatus.CANCELLED
            target = SESSION_CANCELLED if cancelled else course_session.schedule_version
            policy = self.policy.for_course(course.title)
            rows.append(_Row(booking, course_session, course, policy, target))
        return rows

    def _claim(self, rows: list[_Row]) -> list[_Row]:
        """Take the bookings for this pass, except those another process planned meanwhile.

        One conditional ``UPDATE ... RETURNING`` for each (seen, target) pair of versions: a
        booking whose ``planned_version`` is no longer what was read is left to its planner.
        """
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for row in rows:
            groups[(row.booking.planned_version, row.target)].append(row.booking.id)
        claimed: set[int] = set()
        for (seen, target), ids in groups.items():
            for part in chunks(ids):
                result = self.session.execute(
                    update(BOOKING_TABLE)
                    .where(BOOKING_TABLE.c.id.in_(part), BOOKING_TABLE.c.planned_version == seen)
                    .values(planned_version=target)
                    .returning(BOOKING_TABLE.c.id)
                )
                claimed.update(result.scalars().all())
        return [row for row in rows if row.booking.id in claimed]

    def _plan_batch(self, batch: list[_Row]) -> None:
        rows = self._claim(batch)
        self._load_people(rows)
        cancelled = [row for row in rows if row.target == SESSION_CANCELLED]
        if cancelled:
            self._cancelled(cancelled)
        scheduled = [row for row in rows if row.target != SESSION_CANCELLED]
        if scheduled:
            self._plan(scheduled)
        self._write()

    def _load_people(self, rows: list[_Row]) -> None:
        wanted: set[int] = set()
        for row in rows:
            wanted.add(row.booking.delegate_id)
            if row.booking.manager_id is not None:
                wanted.add(row.booking.manager_id)
        p = PERSON_TABLE.c
        self._people = {}
        for part in chunks(sorted(wanted)):
            for r in self.session.execute(
                core_select(
                    p.id,
                    p.name,
                    p.email,
                    p.telegram_chat_id,
                    p.telegram_link_generation,
                    p.preferred_channel,
                    p.email_status,
                    p.telegram_status,
                ).where(p.id.in_(part))
            ):
                # The stored strings compare equal to the enums: no need to build them.
                self._people[r.id] = _Person(*r)

    # --- a cancelled session ----------------------------------------------------------------

    def _cancelled(self, rows: list[_Row]) -> None:
        ids = [row.booking.id for row in rows]
        self.report.messages_withdrawn += withdraw_unsent(self.session, ids, "session cancelled")
        self.report.invitations_withdrawn += withdraw_invitations(self.session, ids)
        for row in rows:
            self.report.sessions_cancelled += 1
            if self.now >= row.course_session.starts_at:
                continue  # cancelled after the event: tidying records, nobody to tell
            delegate = self._people[row.booking.delegate_id]
            context = {
                **session_context(row.course_session, row.course),
                "booking_ref": row.booking.ref,
                "delegate_name": delegate.name,
            }
            recipients = [("delegate", delegate)]
            if row.booking.manager_id is not None:
                recipients.append(("manager", self._people[row.booking.manager_id]))
            for role, person in recipients:
                # Not held for the sending window: people may be about to travel.
                self._queue(
                    key=f"booking:{row.booking.id}:session-cancelled:{role}",
                    person=person,
                    template=SESSION_CANCELLED_NOTICE,
                    context={**context, "role": role},
                    due_at=self.now,
                    kind=MessageKind.NOTICE,
                    booking_id=row.booking.id,
                )

    # --- a scheduled session ----------------------------------------------------------------

    def _plan(self, rows: list[_Row]) -> None:
        ids = [row.booking.id for row in rows]
        existing = self._existing_invitations(ids)
        replanned = [row.booking.id for row in rows if row.booking.planned_version != 0]
        known = self._known(replanned)
        for row in rows:
            row.invitations = self._invitations(
                row, existing.get(row.booking.id, {}), known.get(row.booking.id, {})
            )
        self._save_invitations(rows)
        if replanned:
            self._withdraw_stale([row for row in rows if row.booking.planned_version != 0])
            known = self._known(replanned)
        for row in rows:
            self.report.bookings += 1
            self._confirmation(row, known.get(row.booking.id, {}))

    def _existing_invitations(self, ids: list[int]) -> dict[int, dict[Stage, _Invitation]]:
        i = INVITATION_TABLE.c
        found: dict[int, dict[Stage, _Invitation]] = defaultdict(dict)
        for part in chunks(ids):
            for r in self.session.execute(
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

    def _known(self, booking_ids: list[int]) -> dict[int, dict[str, OutboxState]]:
        """The planned messages each booking already has, by key."""
        known: dict[int, dict[str, OutboxState]] = defaultdict(dict)
        for message in planned_messages(self.session, booking_ids):
            known[message.booking_id][message.idempotency_key] = OutboxState(message.state)
        return known

    def _invitations(
        self, row: _Row, existing: dict[Stage, _Invitation], known: dict[str, OutboxState]
    ) -> dict[Stage, _Invitation]:
        """Create the booking's invitations or move them to the session's current times."""
        result: dict[Stage, _Invitation] = {}
        booking = row.booking
        for stage in stages_for(booking.manager_id, row.policy):
            opens_at, closes_at = self._stage_times(row, stage)
            person_id = booking.manager_id if stage == Stage.MANAGER else booking.delegate_id
            assert person_id is not None
            invitation = existing.get(stage)
            if invitation is None:
                if closes_at <= self.now:
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
                self.report.invitations += 1
                continue
            if invitation.status == InvitationStatus.FINISHED:
                continue
            if invitation.status not in LIVE_INVITATION and closes_at <= self.now:
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
                row.course_session, row.policy.stage(stage), self.zone
            )
        return found

    def _save_invitations(self, rows: list[_Row]) -> None:
        """Insert the new invitations (learning their ids) and write back the moved ones."""
        new = [i for row in rows for i in row.invitations.values() if i.id is None]
        moved = [i for row in rows for i in row.invitations.values() if i.changed]
        if new:
            created = utcnow()
            _bulk_insert(
                self.session,
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
                for r in self.session.execute(statement):
                    ids[(r.booking_id, r.stage)] = r.id
            for invitation in new:
                invitation.id = ids[(invitation.booking_id, invitation.stage)]
        if moved:
            self.session.execute(
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

    def _withdraw_stale(self, rows: list[_Row]) -> None:
        """Withdraw unsent messages planned for other times; recount the reminders sent."""
        suffix = {row.booking.id: f":{signature(row.course_session)}" for row in rows}
        stale = [
            message.id
            for message in planned_messages(self.session, list(suffix))
            if message.state in UNSENT
            and not message.idempotency_key.endswith(suffix[message.booking_id])
        ]
        self.report.messages_withdrawn += withdraw_messages(
            self.session, stale, "the session's time changed"
        )
        moved = [i for row in rows for i in row.invitations.values() if i.changed]
        if not moved:
            return
        # A reminder withdrawn before it went out was never sent: the tick may send it again.
        o = OUTBOX_TABLE.c
        counts: Counter[int] = Counter(
            self.session.execute(
                core_select(o.invitation_id).where(
                    o.invitation_id.in_([i.id for i in moved]),
                    o.template == REMINDER,
                    o.state != OutboxState.WITHDRAWN.value,
                )
            ).scalars()
        )
        recount = [
            {"invitation_id": i.id, "reminders_sent": counts.get(i.id or 0, 0)}
            for i in moved
            if i.reminders_sent != counts.get(i.id or 0, 0)
        ]
        if recount:
            self.session.execute(
                update(INVITATION_TABLE).where(INVITATION_TABLE.c.id == bindparam("invitation_id")),
                recount,
            )

    def _send_time(self, at: datetime, policy: Policy) -> datetime:
        key = (id(policy), at)
        found = self._send_times.get(key)
        if found is None:
            found = self._send_times[key] = next_send_time(at, policy, self.zone)
        return found

    def _session_text(self, row: _Row) -> dict[str, Any]:
        """What a confirmation says of the session, the same for all its bookings."""
        key = (row.course_session.id, id(row.policy))
        found = self._session_texts.get(key)
        if found is None:
            cutoff = cancellation_cutoff(row.course_session.starts_at, row.policy, self.zone)
            found = self._session_texts[key] = {
                **session_context(row.course_session, row.course),
                "cancel_by": cutoff.isoformat(),
                # For people: "by 23:59 on Thursday" rather than "by 00:00 on Friday".
                "cancel_until": (cutoff - timedelta(minutes=1)).isoformat(),
                "charge_pence": charge_pence(row.policy, row.course),
                "cancellation_terms": row.policy.cancellation_terms,
                "accessibility_statement": row.policy.accessibility_statement,
            }
        return found

    def _confirmation(self, row: _Row, known: dict[str, OutboxState]) -> None:
        booking, course_session = row.booking, row.course_session
        if booking.replaces_id is not None:
            return  # a replacement gets its joining details with its nomination
        due = self._send_time(self.now, row.policy)
        if due >= course_session.starts_at:
            return  # it would arrive after the start
        prefix = f"booking:{booking.id}:confirmation:"
        changed = any(key.startswith(prefix) and state in HANDLED for key, state in known.items())
        delegate = self._people[booking.delegate_id]
        links = {"cancel": [LinkPurpose.CANCEL.value, f"booking:{booking.id}"]}
        links.update(person_links(delegate, self.telegram))
        pre = row.invitations.get(Stage.PRE)
        context = {
            **self._session_text(row),
            "booking_ref": booking.ref,
            "changed": changed,
            "previous_starts_at": (
                course_session.previous_starts_at.isoformat()
                if changed and course_session.previous_starts_at
                else None
            ),
            # When the pre-course questionnaire comes: later (a date), now (with this), or never.
            "pre_opens_at": (
                pre.opens_at.isoformat() if pre is not None and pre.opens_at > self.now else None
            ),
            "pre_open": pre is not None and pre.opens_at <= self.now,
            "links": links,
        }
        for link in link_rows(
            self.secret,
            links,
            person=delegate,
            booking=booking,
            invitation=None,
            starts_at=course_session.starts_at,
            created_at=self.now,
        ):
            self._links[link["token_hash"]] = link
        self._queue(
            key=f"{prefix}{signature(course_session)}",
            person=delegate,
            template=CONFIRMATION,
            context=context,
            due_at=due,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
            known=known,
        )

    # --- writing ----------------------------------------------------------------------------

    def _queue(
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
            self._revive.append(values)
        else:
            self._messages.append(values)
        self.report.queued[template] += 1

    def _write(self) -> None:
        """Links and messages, in bulk; a row another process wrote first is left as it is."""
        if self._links:
            _bulk_insert(
                self.session, LINK_TABLE, list(self._links.values()), "token_hash", ["expires_at"]
            )
            self._links = {}
        if self._messages:
            _bulk_insert(self.session, OUTBOX_TABLE, self._messages, "idempotency_key", [])
            self._messages = []
        if self._revive:
            self.session.execute(
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
                    for values in self._revive
                ],
            )
            self._revive = []


def _went_out(invitation: _Invitation, known: dict[str, OutboxState]) -> bool:
    """Whether the invitation's own message has been sent (for any earlier times)."""
    prefix = f"inv:{invitation.id}:open:"
    return any(key.startswith(prefix) and state in HANDLED for key, state in known.items())


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
