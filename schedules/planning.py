"""Planning: each booking's survey invitations and messages, for its session's current times.

A booking is planned for its session's ``schedule_version`` (``Booking.planned_version``); the
import bumps the version when a session's time changes (and resets a booking moved to another
session to 0), so the bookings to plan are exactly those whose two numbers differ. Planning a
booking:

- creates or moves its invitations (pre, end, impact; manager when the policy enables it and the
  booking has an approving manager) with their opening and closing times, never creating one
  that has already closed;
- queues its ``booking-confirmation`` (joining details and the cancel link; "changed" when an
  earlier confirmation went out), due in the sending window;
- withdraws its unsent messages planned for other times. Keys end with the session and version
  (``booking:7:confirmation:s3v2``, ``inv:42:open:s3v2``), so a message for new times is a new
  message while a sent one stays sent.

Each survey message is queued when it falls due, by ``schedules.tick``: the invitation when its
survey opens (``queue_invitation_messages``, here), each reminder when its offset comes and only
while the survey is open and unfinished. Queued then rather than at import, a message goes by the
channel the person uses by then and previews the survey's current first question; an invitation
whose message already went out is never sent again, even after its session moves.

A cancelled session's bookings are planned once more: their unsent messages and invitations are
withdrawn, the delegates and managers are told (``session-cancelled``), and ``planned_version``
becomes ``SESSION_CANCELLED``.

Bookings are claimed with a conditional ``UPDATE`` of ``planned_version`` before anything is
written, so several processes planning at once never plan one booking twice. Planning works on
the tables with SQLAlchemy Core (no ORM objects): an import of 100,000 bookings is planned in
batches, each committed on its own.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Row, Table, and_, bindparam, or_, update
from sqlalchemy import column as sa_column
from sqlalchemy import select as core_select
from sqlalchemy import table as sa_table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import Select

from schedules.calendar import cancellation_cutoff, next_send_time, shift
from schedules.policy import Policy, StagePolicy
from surveys import outbox, tokens
from surveys.models import (
    Booking,
    BookingStatus,
    Channel,
    Course,
    CourseSession,
    Deliverability,
    Duration,
    InvitationStatus,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
    SessionStatus,
    Stage,
    SurveyInvitation,
    UTCDateTime,
    utcnow,
)

# Bookings whose people should hear about the course and be asked about it.
ACTIVE = (BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED)
INACTIVE = tuple(status for status in BookingStatus if status not in ACTIVE)
# planned_version beyond the session's schedule versions (0 is "not planned yet"):
SESSION_CANCELLED = -1  # its session was cancelled and its people told
BOOKING_INACTIVE = -2  # cancelled, replaced or no-show: its surveys and planned messages withdrawn
CHUNK = 500  # ids in one IN (...) list

CONFIRMATION = "booking-confirmation"
INVITATION = "survey-invitation"
REMINDER = "survey-reminder"
SESSION_CANCELLED_NOTICE = "session-cancelled"
# The messages planning and the tick own: the only ones they ever withdraw.
PLANNED_TEMPLATES = (CONFIRMATION, INVITATION, REMINDER)

UNSENT = (OutboxState.PENDING, OutboxState.FAILED)
# A message in one of these states has gone out (or been tried for good): never plan it again.
HANDLED = (OutboxState.SENT, OutboxState.CLAIMED, OutboxState.DEAD)
LIVE_INVITATION = (InvitationStatus.PLANNED, InvitationStatus.OPEN)

INVITATION_TABLE: Table = SQLModel.metadata.tables["survey_invitation"]
BOOKING_TABLE: Table = SQLModel.metadata.tables["booking"]
SESSION_TABLE: Table = SQLModel.metadata.tables["course_session"]
COURSE_TABLE: Table = SQLModel.metadata.tables["course"]
PERSON_TABLE: Table = SQLModel.metadata.tables["person"]
OUTBOX_TABLE: Table = SQLModel.metadata.tables["outbox"]
LINK_TABLE: Table = SQLModel.metadata.tables["link"]


@dataclass
class PlanReport:
    """What one planning pass did (or, in a dry run, would do)."""

    bookings: int = 0
    invitations: int = 0
    invitations_withdrawn: int = 0
    messages_withdrawn: int = 0
    sessions_cancelled: int = 0
    queued: Counter[str] = field(default_factory=Counter)  # by template


# --- what messages read of the rows (the tables' rows, or planning's plain copies) ----------


class SessionFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def ref(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def venue(self) -> str | None: ...
    @property
    def online(self) -> bool: ...
    @property
    def schedule_version(self) -> int: ...
    @property
    def joining_link(self) -> str | None: ...


class CourseFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def title(self) -> str: ...
    @property
    def duration(self) -> str: ...
    @property
    def learning_outcomes(self) -> list[str]: ...


class SurveyCourseFacts(CourseFacts, Protocol):
    """A course as a survey message needs it: its type picks the survey's variant."""

    @property
    def course_type(self) -> str: ...


class PersonFacts(outbox.Addressee, Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def name(self) -> str: ...
    @property
    def telegram_link_generation(self) -> int: ...


class BookingFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def ref(self) -> str: ...


class MarkedBookingFacts(BookingFacts, Protocol):
    @property
    def status(self) -> str: ...


class InvitationFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def stage(self) -> str: ...
    @property
    def opens_at(self) -> datetime: ...
    @property
    def closes_at(self) -> datetime: ...


def signature(course_session: SessionFacts) -> str:
    """What a message was planned for: the session and its schedule version."""
    return f"s{course_session.id}v{course_session.schedule_version}"


def stage_times(
    course_session: SessionFacts, stage: StagePolicy, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """When a stage's survey opens and closes for this session (on the local clock)."""
    anchor = course_session.starts_at if stage.anchor == "start" else course_session.ends_at
    opens_at = shift(anchor, stage.opens_after, zone)
    return opens_at, shift(opens_at, stage.closes_after, zone)


def stages_for(manager_id: int | None, policy: Policy) -> list[Stage]:
    stages = [Stage.PRE, Stage.END, Stage.IMPACT]
    if policy.manager_survey and manager_id is not None:
        stages.append(Stage.MANAGER)
    return stages


def day_length(course: CourseFacts) -> str:
    """``"half day"`` or ``"full day"``: how messages, charges and certificates name its length."""
    return "half day" if course.duration == Duration.HALF else "full day"


def charge_pence(policy: Policy, course: CourseFacts) -> int:
    half = course.duration == Duration.HALF
    return policy.charge_half_day_pence if half else policy.charge_full_day_pence


def session_context(course_session: SessionFacts, course: CourseFacts) -> dict[str, Any]:
    """What every message about a session says of it (JSON only, dates as ISO text)."""
    return {
        "course_title": course.title,
        "day_length": day_length(course),
        "session_ref": course_session.ref,
        "session_starts_at": course_session.starts_at.isoformat(),
        "session_ends_at": course_session.ends_at.isoformat(),
        "venue": course_session.venue or "",
        "online": course_session.online,
        "joining_link": course_session.joining_link,
        # The calendar invitation's SEQUENCE counts from it (``bot.calendar_invite``).
        "schedule_version": course_session.schedule_version,
    }


def person_links(person: PersonFacts, telegram: bool = True) -> dict[str, list[str]]:
    """The Telegram deep link, for someone who has not linked a chat yet (if there is a bot)."""
    if not telegram or person.telegram_chat_id is not None:
        return {}
    subject = f"person:{person.id}:{person.telegram_link_generation}"
    return {"telegram": [LinkPurpose.TELEGRAM.value, subject]}


def offer_telegram(session: Session, secret: bytes, person: Person) -> dict[str, list[str]]:
    """The Telegram deep link for a notice to someone who has not linked a chat, its hash
    recorded. It is queued whether or not there is a bot: without one, the message is rendered
    without it (``bot.links``)."""
    links = person_links(person)
    rows = [
        {
            "purpose": purpose,
            "token_hash": tokens.token_hash(
                tokens.make_token(secret, LinkPurpose(purpose), subject)
            ),
            "created_at": utcnow(),
            "person_id": person.id,
            "booking_id": None,
            "invitation_id": None,
            "expires_at": None,
        }
        for purpose, subject in links.values()
    ]
    if rows:  # as ``issue_links``: two processes may record the same link at once
        _bulk_insert(session, LINK_TABLE, rows, "token_hash", ["expires_at"])
    return links


def link_fields(
    purpose: LinkPurpose,
    *,
    person: PersonFacts,
    booking: BookingFacts,
    invitation: InvitationFacts | None,
    starts_at: datetime,
) -> dict[str, Any]:
    """What a link is recorded with: a survey link ends when the survey closes, a cancel link
    at the start of the session; a Telegram deep link does not end."""
    fields: dict[str, Any] = {
        "person_id": person.id,
        "booking_id": None,
        "invitation_id": None,
        "expires_at": None,
    }
    if purpose is LinkPurpose.SURVEY and invitation is not None:
        fields.update(
            booking_id=booking.id, invitation_id=invitation.id, expires_at=invitation.closes_at
        )
    elif purpose is LinkPurpose.CANCEL:
        fields.update(booking_id=booking.id, expires_at=starts_at)
    return fields


def link_rows(
    secret: bytes,
    links: dict[str, list[str]],
    *,
    person: PersonFacts,
    booking: BookingFacts,
    invitation: InvitationFacts | None,
    starts_at: datetime,
    created_at: datetime,
) -> list[dict[str, Any]]:
    """The ``link`` rows for the links a message carries: each token's hash, never the token."""
    rows = []
    for purpose_text, subject in links.values():
        purpose = LinkPurpose(purpose_text)
        digest = tokens.token_hash(tokens.make_token(secret, purpose, subject))
        fields = link_fields(
            purpose, person=person, booking=booking, invitation=invitation, starts_at=starts_at
        )
        rows.append(
            {"purpose": purpose.value, "token_hash": digest, "created_at": created_at, **fields}
        )
    return rows


def issue_links(
    session: Session,
    secret: bytes,
    links: dict[str, list[str]],
    *,
    person: PersonFacts,
    booking: BookingFacts,
    invitation: InvitationFacts | None,
    starts_at: datetime,
) -> None:
    """Record the hash of each link a message carries, as ``surveys.tokens.issue`` does, but
    with ``INSERT ... ON CONFLICT`` so ticks in two processes can issue the same link at once."""
    rows = link_rows(
        secret,
        links,
        person=person,
        booking=booking,
        invitation=invitation,
        starts_at=starts_at,
        created_at=utcnow(),
    )
    if rows:
        _bulk_insert(session, LINK_TABLE, rows, "token_hash", ["expires_at"])


class FirstQuestions:
    """The first question of each stage's current definition, as a message previews it."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def preview(
        self, stage: Stage, course: SurveyCourseFacts, delegate_name: str
    ) -> dict[str, Any]:
        from surveys.definitions import first_question_preview, load_definition

        name = delegate_name if stage == Stage.MANAGER else ""
        key = (stage, course.id, name)
        found = self._cache.get(key)
        if found is None:
            definition = load_definition(stage, self.directory, course.course_type)
            found = first_question_preview(
                definition.content,
                course.learning_outcomes,
                course_title=course.title,
                delegate_name=delegate_name,
            )
            self._cache[key] = found
        return found


def survey_context(
    invitation: InvitationFacts,
    booking: MarkedBookingFacts,
    course_session: SessionFacts,
    course: SurveyCourseFacts,
    recipient: PersonFacts,
    delegate: PersonFacts,
    questions: FirstQuestions,
    *,
    telegram: bool = True,
) -> dict[str, Any]:
    """The context of a ``survey-invitation`` or ``survey-reminder``."""
    links: dict[str, list[str]] = {
        "survey": [LinkPurpose.SURVEY.value, f"invitation:{invitation.id}"],
    }
    if invitation.stage == Stage.PRE:
        links["cancel"] = [LinkPurpose.CANCEL.value, f"booking:{booking.id}"]
    links.update(person_links(recipient, telegram))
    return {
        **session_context(course_session, course),
        "booking_ref": booking.ref,
        # The register's mark when the message is made ("attended", "partly attended", or
        # "booked" while unmarked): a partly attended delegate earns no certificate.
        "attendance": str(booking.status),
        "stage": str(invitation.stage),
        "opens_at": invitation.opens_at.isoformat(),
        "closes_at": invitation.closes_at.isoformat(),
        "delegate_name": delegate.name,
        "first_question": questions.preview(Stage(invitation.stage), course, delegate.name),
        "links": links,
    }


# --- changes to bookings and sessions -----------------------------------------------------


def request_replan(session: Session, booking: Booking) -> None:
    """Plan this booking afresh on the next tick."""
    booking.planned_version = 0
    session.add(booking)


def cancel_session(
    session: Session, course_session: CourseSession, *, now: datetime, actor: str
) -> None:
    """Cancel a session; the next tick withdraws its messages and tells its people."""
    from surveys.audit import record

    course_session.status = SessionStatus.CANCELLED
    course_session.cancelled_at = now
    course_session.updated_at = now
    session.add(course_session)
    record(
        session,
        at=now,
        actor=actor,
        action="session.cancelled",
        entity="course_session",
        entity_id=course_session.id,
    )


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def planned_messages(session: Session, booking_ids: Sequence[int]) -> list[Row[Any]]:
    """(booking_id, id, idempotency_key, state, template) of the bookings' planned messages.

    Looked up by booking only, so the booking index is the one used however many messages
    are waiting elsewhere; the caller filters.
    """
    found: list[Row[Any]] = []
    table = OUTBOX_TABLE.c
    for part in chunks(booking_ids):
        statement = core_select(
            table.booking_id, table.id, table.idempotency_key, table.state, table.template
        ).where(table.booking_id.in_(part))
        found.extend(session.execute(statement).all())
    return [row for row in found if row.template in PLANNED_TEMPLATES]


def withdraw_messages(session: Session, message_ids: Sequence[int], reason: str) -> int:
    """Withdraw these outbox rows if they are still unsent."""
    withdrawn = 0
    for part in chunks(message_ids):
        result = session.execute(
            update(OUTBOX_TABLE)
            .where(OUTBOX_TABLE.c.id.in_(part), OUTBOX_TABLE.c.state.in_(UNSENT))
            .values(state=OutboxState.WITHDRAWN.value, last_error=reason)
        )
        withdrawn += int(result.rowcount)  # type: ignore[attr-defined]
    return withdrawn


def withdraw_unsent(session: Session, booking_ids: Sequence[int], reason: str) -> int:
    """Withdraw the planned messages (confirmations, invitations, reminders) not yet sent."""
    unsent = [row.id for row in planned_messages(session, booking_ids) if row.state in UNSENT]
    return withdraw_messages(session, unsent, reason)


def withdraw_invitations(session: Session, booking_ids: Sequence[int]) -> int:
    """Withdraw the invitations of these bookings that are still planned or open."""
    withdrawn = 0
    for part in chunks(booking_ids):
        result = session.execute(
            update(INVITATION_TABLE)
            .where(
                INVITATION_TABLE.c.booking_id.in_(part),
                INVITATION_TABLE.c.status.in_(LIVE_INVITATION),
            )
            .values(status=InvitationStatus.WITHDRAWN.value)
        )
        withdrawn += int(result.rowcount)  # type: ignore[attr-defined]
    return withdrawn


def withdraw_booking(session: Session, booking_id: int, *, reason: str) -> tuple[int, int]:
    """A cancelled, replaced or no-show booking: (messages, invitations) withdrawn."""
    messages = withdraw_unsent(session, [booking_id], reason)
    return messages, withdraw_invitations(session, [booking_id])


def outbox_row(
    *,
    key: str,
    person: PersonFacts,
    template: str,
    context: dict[str, Any],
    due_at: datetime,
    kind: MessageKind,
    booking_id: int | None,
    invitation_id: int | None,
    created_at: datetime,
) -> dict[str, Any]:
    """A pending outbox row as ``surveys.outbox.enqueue`` writes it, addressed by the channel
    the person uses now."""
    channel, recipient = outbox.address(person)
    return {
        "idempotency_key": key,
        "person_id": person.id,
        "channel": channel.value,
        "recipient": recipient,
        "template": template,
        "context": context,
        "kind": kind.value,
        "due_at": due_at,
        "available_at": due_at,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "booking_id": booking_id,
        "invitation_id": invitation_id,
        "created_at": created_at,
    }


def queue_message(
    session: Session,
    *,
    key: str,
    person: PersonFacts,
    template: str,
    context: dict[str, Any],
    due_at: datetime,
    kind: MessageKind,
    booking_id: int | None,
    invitation_id: int | None = None,
) -> bool:
    """Queue a message as ``surveys.outbox.enqueue`` does; True if this call queued it.

    With ``INSERT ... ON CONFLICT DO NOTHING``, so of two processes queueing the same key one
    wins and neither fails. A message withdrawn under the same key (planned for these same
    times, then withdrawn) is queued again.
    """
    row = outbox_row(
        key=key,
        person=person,
        template=template,
        context=context,
        due_at=due_at,
        kind=kind,
        booking_id=booking_id,
        invitation_id=invitation_id,
        created_at=utcnow(),
    )
    if _bulk_insert(session, OUTBOX_TABLE, [row], "idempotency_key", []):
        return True
    revived = session.execute(
        update(OUTBOX_TABLE)
        .where(
            OUTBOX_TABLE.c.idempotency_key == key,
            OUTBOX_TABLE.c.state == OutboxState.WITHDRAWN.value,
        )
        .values(
            state=OutboxState.PENDING.value,
            channel=row["channel"],
            recipient=row["recipient"],
            context=context,
            due_at=due_at,
            available_at=due_at,
            last_error=None,
        )
    )
    return int(revived.rowcount) == 1  # type: ignore[attr-defined]


# --- planning -----------------------------------------------------------------------------


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


def _bulk_insert(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    unique: str | list[str],
    refresh: list[str],
) -> int:
    """``INSERT ... ON CONFLICT (unique)``: do nothing, or update the ``refresh`` columns.

    Planning writes hundreds of thousands of rows after a big import, where SQLAlchemy's
    per-value work would cost more than the database's: the rows' values are turned here into
    what their column types would store, and on SQLite the compiled statement goes straight to
    the driver's ``executemany``. ``rows`` are changed in place. Returns the rows written.
    """
    dialect = session.get_bind().dialect
    names = list(rows[0])
    unique = [unique] if isinstance(unique, str) else unique
    plain = sa_table(table.name, *(sa_column(name) for name in names))
    insert_for = pg_insert if dialect.name == "postgresql" else sqlite_insert
    statement = insert_for(plain)
    if refresh:
        statement = statement.on_conflict_do_update(
            index_elements=unique, set_={name: statement.excluded[name] for name in refresh}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=unique)
    converters = [
        (name, convert)
        for name in names
        if (convert := _converter(table.c[name].type, dialect.name)) is not None
    ]
    for row in rows:
        for name, convert in converters:
            value = row[name]
            if value is not None:
                row[name] = convert(value)
    if dialect.name == "sqlite" and len(rows) > 1:
        compiled = statement.compile(dialect=dialect)
        order = compiled.positiontup or []
        params = [tuple(row[name] for name in order) for row in rows]
        return session.connection().exec_driver_sql(str(compiled), params).rowcount
    result = session.execute(statement, rows[0] if len(rows) == 1 else rows)
    return int(result.rowcount)  # type: ignore[attr-defined]


def _converter(column_type: Any, dialect: str) -> Callable[[Any], Any] | None:
    """What a column type does to a value when binding it, for the types planning writes."""
    if isinstance(column_type, UTCDateTime):
        return _sqlite_time if dialect == "sqlite" else _utc
    if isinstance(column_type, JSON):
        return json.dumps
    return None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


@lru_cache(maxsize=8192)
def _sqlite_time(value: datetime) -> str:
    """As SQLAlchemy stores a datetime in SQLite (the bookings of a session share their times)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


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


def queue_invitation_messages(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    secret: bytes,
    definitions_dir: Path | None = None,
    telegram: bool = True,
) -> int:
    """Queue the ``survey-invitation`` of each open survey that has none yet; returns how many.

    An open survey whose message went out (for these times or earlier ones) has one; so does one
    waiting for the sending window. One whose message was withdrawn because its session moved
    gets a new one, for the new times. A survey that would close before the window opens again
    gets none.
    """
    has_message = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.invitation_id == SurveyInvitation.id,
            OutboxMessage.template == INVITATION,
            OutboxMessage.state != OutboxState.WITHDRAWN,
        )
        .exists()
    )
    rows = session.exec(
        select_open_invitations(now).where(~has_message).order_by(col(SurveyInvitation.id))
    ).all()
    questions = FirstQuestions(definitions_dir)
    queued = 0
    for invitation, booking, course_session, course in rows:
        due_at = next_send_time(now, policy.for_course(course.title), zone)
        if due_at >= invitation.closes_at:
            continue
        queued += queue_survey_message(
            session,
            secret,
            questions,
            invitation,
            booking,
            course_session,
            course,
            key=f"inv:{invitation.id}:open:{signature(course_session)}",
            template=INVITATION,
            kind=MessageKind.INVITATION,
            due_at=due_at,
            telegram=telegram,
        )
    return queued


def select_open_invitations(
    now: datetime,
) -> Select[SurveyInvitation, Booking, CourseSession, Course]:
    """Invitations open at ``now`` and unfinished, of active bookings on scheduled sessions,
    each with its booking, session and course: those that may be sent a message."""
    return (
        select(SurveyInvitation, Booking, CourseSession, Course)
        .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .where(
            col(SurveyInvitation.status) == InvitationStatus.OPEN,
            col(SurveyInvitation.finished_at).is_(None),
            col(SurveyInvitation.closes_at) > now,
            col(Booking.status).in_(ACTIVE),
            col(CourseSession.status) == SessionStatus.SCHEDULED,
        )
    )


def queue_survey_message(
    session: Session,
    secret: bytes,
    questions: FirstQuestions,
    invitation: SurveyInvitation,
    booking: Booking,
    course_session: CourseSession,
    course: Course,
    *,
    key: str,
    template: str,
    kind: MessageKind,
    due_at: datetime,
    telegram: bool,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Queue a ``survey-invitation`` or ``survey-reminder`` to the invitation's person, its
    links recorded; ``extra`` adds to the context. True if this call queued it."""
    recipient = session.get(Person, invitation.person_id)
    delegate = session.get(Person, booking.delegate_id)
    assert recipient is not None and delegate is not None
    context = survey_context(
        invitation,
        booking,
        course_session,
        course,
        recipient,
        delegate,
        questions,
        telegram=telegram,
    )
    context.update(extra or {})
    issue_links(
        session,
        secret,
        context["links"],
        person=recipient,
        booking=booking,
        invitation=invitation,
        starts_at=course_session.starts_at,
    )
    return queue_message(
        session,
        key=key,
        person=recipient,
        template=template,
        context=context,
        due_at=due_at,
        kind=kind,
        booking_id=booking.id,
        invitation_id=invitation.id,
    )
