"""Evalbot's tables.

Every timestamp is stored in UTC and read back as an aware datetime (see ``UTCDateTime``).
Vocabularies are ``StrEnum``s stored as plain strings, so a new value needs no migration of a
database type, only of the code that reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database.

    SQLite keeps no zone, so values are written there as naive UTC; PostgreSQL gets
    ``timestamp with time zone``. Naive datetimes are refused: they are always a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, for defaults of bookkeeping columns only; policy always takes ``now``."""
    return datetime.now(UTC)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _stamp() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _json(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


class Sector(StrEnum):
    HEALTH = "health"
    POLICE = "police"
    EDUCATION = "education"
    CHILDRENS_SOCIAL_CARE = "children's social care"
    LOCAL_AUTHORITY = "local authority"
    EARLY_YEARS = "early years"
    VOLUNTARY = "voluntary and community"
    OTHER = "other"


class Channel(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"
    SMS = "sms"  # text messages, by GOV.UK Notify, to ``Person.mobile``


class Deliverability(StrEnum):
    OK = "ok"
    UNUSABLE = "unusable"


class Duration(StrEnum):
    FULL = "full"
    HALF = "half"


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    LATE_CANCELLATION = "late cancellation"
    REPLACED = "replaced"
    ATTENDED = "attended"
    PARTLY_ATTENDED = "partly attended"
    NO_SHOW = "no-show"
    WAITING = "waiting"  # on the session's waiting list: no place yet, no surveys


class Stage(StrEnum):
    PRE = "pre"
    END = "end"
    IMPACT = "impact"
    MANAGER = "manager"
    TRAINER = "trainer"  # the trainer's own report: one per session, not per booking


# The stages asked of delegates and their managers, one invitation per booking each: response
# rates, reminders campaigns and the delegates' figures count these and never the trainer's.
BOOKING_STAGES = (Stage.PRE, Stage.END, Stage.IMPACT, Stage.MANAGER)


class InvitationStatus(StrEnum):
    PLANNED = "planned"  # known, not open yet
    OPEN = "open"  # may be answered
    FINISHED = "finished"
    CLOSED = "closed"  # closed unfinished
    WITHDRAWN = "withdrawn"  # its booking was cancelled or replaced


class MessageKind(StrEnum):
    """What a message is, which decides whether an opt-out applies to it."""

    INVITATION = "invitation"
    REMINDER = "reminder"
    CAMPAIGN = "campaign"
    NOTICE = "notice"  # about the person's own booking: never subject to opt-out


class OutboxState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"  # will be tried again at ``available_at``
    DEAD = "dead"
    WITHDRAWN = "withdrawn"


class LinkPurpose(StrEnum):
    SURVEY = "survey"
    CANCEL = "cancel"
    NOMINATE = "nominate"
    REASON = "reason"
    CERTIFICATE = "certificate"
    UNSUBSCRIBE = "unsubscribe"
    TELEGRAM = "telegram"
    REGISTER = "register"  # the trainer's register page, no account needed
    OFFER = "offer"  # a waiting-list place offer's accept link
    STAFF_SIGN_IN = "staff-sign-in"  # the console's emailed one-time link (surveys/staff.py)


class Agency(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(200), unique=True, index=True)
    sector: Sector = Field(sa_type=String(40))
    created_at: datetime = _stamp()


class Person(SQLModel, table=True):
    # A chat belongs to one person at most; most people have none, and are not in the index.
    # PostgreSQL's index leaves them out too (migration 0006), and refuses a chat given twice
    # with or without its WHERE: naming PostgreSQL's options here would load its dialect at
    # every start, SQLite or not.
    __table_args__ = (
        Index(
            "ix_person_telegram_chat_id",
            "telegram_chat_id",
            unique=True,
            sqlite_where=text("telegram_chat_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_type=String(200))
    email: str = Field(sa_type=String(254), unique=True, index=True)  # stored lower-case
    agency_id: int | None = Field(default=None, foreign_key="agency.id", index=True)
    role: str | None = Field(default=None, sa_type=String(200))
    competency_group: int | None = None  # 1-8
    telegram_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    telegram_link_generation: int = 0  # bumped when a deep link is used, so each is single use
    preferred_channel: Channel = Field(default=Channel.EMAIL, sa_type=String(20))
    email_status: Deliverability = Field(default=Deliverability.OK, sa_type=String(20))
    email_status_reason: str | None = Field(default=None, sa_type=Text)
    telegram_status: Deliverability = Field(default=Deliverability.OK, sa_type=String(20))
    telegram_status_reason: str | None = Field(default=None, sa_type=Text)
    email_opt_out: bool = False
    telegram_opt_out: bool = False
    created_at: datetime = _stamp()
    updated_at: datetime = _stamp()
    erased_at: datetime | None = _when()
    mobile: str | None = Field(default=None, sa_type=String(20))  # E.164, from the export
    # Text messages (bot/channels/notify.py): a number that Notify refused, and the person's
    # choice of email only (from the survey page), which applies to every text.
    sms_status: Deliverability = Field(default=Deliverability.OK, sa_type=String(20))
    sms_status_reason: str | None = Field(default=None, sa_type=Text)
    sms_opt_out: bool = False


class Course(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_type=String(300), unique=True, index=True)
    level: str | None = Field(default=None, sa_type=String(50))
    learning_outcomes: list[str] = _json(list)
    duration: Duration = Field(default=Duration.FULL, sa_type=String(10))
    created_at: datetime = _stamp()
    # face to face, e-learning, conference or briefing: picks the survey variants.
    course_type: str = Field(default="face to face", sa_type=String(20))


class CourseSession(SQLModel, table=True):
    """One run of a course on a date (a "session" to the partnerships)."""

    __tablename__ = "course_session"

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(sa_type=String(100), unique=True, index=True)
    course_id: int = Field(foreign_key="course.id", index=True)
    starts_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    ends_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    venue: str | None = Field(default=None, sa_type=String(300))
    online: bool = False
    min_places: int | None = None
    max_places: int | None = None
    trainer_id: int | None = Field(default=None, foreign_key="person.id")
    status: SessionStatus = Field(default=SessionStatus.SCHEDULED, sa_type=String(20))
    # Bumped whenever the time changes, so planning can tell its messages are out of date.
    schedule_version: int = 1
    previous_starts_at: datetime | None = _when()
    time_changed_at: datetime | None = _when()
    cancelled_at: datetime | None = _when()
    register_closed_at: datetime | None = _when()
    register_closed_by: str | None = Field(default=None, sa_type=String(200))
    register_reminded_at: datetime | None = _when()
    created_at: datetime = _stamp()
    updated_at: datetime = _stamp()
    joining_link: str | None = Field(default=None, sa_type=String(500))  # online sessions
    # When the tick compared the bookings with ``min_places`` (policy ``min_places_check``).
    places_checked_at: datetime | None = _when()


class Booking(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(sa_type=String(100), unique=True, index=True)
    # Looked up by session through ix_booking_session_status (below), whose first column it is.
    session_id: int = Field(foreign_key="course_session.id")
    delegate_id: int = Field(foreign_key="person.id", index=True)
    manager_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    booked_at: datetime | None = _when()
    status: BookingStatus = Field(default=BookingStatus.BOOKED, sa_type=String(30), index=True)
    status_changed_at: datetime | None = _when()
    cancelled_at: datetime | None = _when()
    cancel_reason: str | None = Field(default=None, sa_type=Text)
    # The booking this one replaces (set on a replacement), and the one that replaced it.
    replaces_id: int | None = Field(default=None, foreign_key="booking.id")
    replaced_by_id: int | None = Field(default=None, foreign_key="booking.id")
    charge_pence: int | None = None
    charge_note: str | None = Field(default=None, sa_type=Text)
    no_show_reason: str | None = Field(default=None, sa_type=Text)
    no_show_reason_at: datetime | None = _when()
    no_show_notified_at: datetime | None = _when()
    # The session's schedule_version this booking's messages were planned for; 0 = not planned.
    # Only ever compared with "!=", which no index serves: it has none.
    planned_version: int = Field(default=0)
    source: str = Field(default="import", sa_type=String(20))
    created_at: datetime = _stamp()
    updated_at: datetime = _stamp()


class SurveyDefinitionVersion(SQLModel, table=True):
    """A survey definition exactly as it was when an invitation was sent with it."""

    __tablename__ = "survey_definition_version"
    __table_args__ = (UniqueConstraint("stage", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    stage: Stage = Field(sa_type=String(20))
    version: str = Field(sa_type=String(64))  # content hash
    title: str = Field(sa_type=String(300))
    content: dict[str, Any] = _json()
    created_at: datetime = _stamp()
    # The kind of course a variant definition is for (e-learning, ...); None: the general one.
    course_type: str | None = Field(default=None, sa_type=String(20))


class SurveyInvitation(SQLModel, table=True):
    """One person's survey of one stage: of a booking (the delegate's stages and the manager's),
    or of a session (the trainer's report, ``Stage.TRAINER``); exactly one of the two is set."""

    __tablename__ = "survey_invitation"
    __table_args__ = (
        UniqueConstraint("booking_id", "stage"),
        UniqueConstraint("session_id", "stage"),
        CheckConstraint(
            "(booking_id IS NULL) <> (session_id IS NULL)", name="ck_invitation_booking_or_session"
        ),
        Index("ix_invitation_status_closes", "status", "closes_at"),
        Index("ix_invitation_status_opens", "status", "opens_at"),  # the tick opens by this
    )

    id: int | None = Field(default=None, primary_key=True)
    booking_id: int | None = Field(default=None, foreign_key="booking.id", index=True)
    # The delegate, the manager, or (for the trainer's report) the session's trainer.
    person_id: int = Field(foreign_key="person.id", index=True)
    stage: Stage = Field(sa_type=String(20))
    definition_id: int | None = Field(default=None, foreign_key="survey_definition_version.id")
    opens_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    closes_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    status: InvitationStatus = Field(default=InvitationStatus.PLANNED, sa_type=String(20))
    started_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    reminders_sent: int = 0
    last_reminder_at: datetime | None = _when()
    created_at: datetime = _stamp()
    # The session of a per-session stage (the trainer's report); None for a booking's stages.
    session_id: int | None = Field(default=None, foreign_key="course_session.id", index=True)


class Answer(SQLModel, table=True):
    """One answer to one question of one invitation; answering again replaces it."""

    __table_args__ = (
        UniqueConstraint("invitation_id", "question_key"),
        Index("ix_answer_measure", "measure", "invitation_id"),
        # Covers the report's reads of an invitation's answers (matched pairs, ratings).
        Index("ix_answer_item", "invitation_id", "item", "measure", "outcome_index", "value_num"),
    )

    id: int | None = Field(default=None, primary_key=True)
    invitation_id: int = Field(foreign_key="survey_invitation.id", index=True)
    # The question's id in its definition, with ".N" for the Nth learning outcome.
    question_key: str = Field(sa_type=String(120))
    item: str = Field(sa_type=String(100))
    measure: str | None = Field(default=None, sa_type=String(20))  # knowledge / confidence
    outcome_index: int | None = None
    value_num: float | None = None
    value_text: str | None = Field(default=None, sa_type=Text)
    value_json: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    channel: str = Field(default="web", sa_type=String(20))
    answered_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class Campaign(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(20))  # remind / places / refresher
    scope: dict[str, Any] = _json()
    # The same kind and scope is the same campaign: running it again reaches only the new people.
    scope_key: str = Field(sa_type=String(64), index=True)
    created_by: str = Field(sa_type=String(200))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    counts: dict[str, Any] = _json()


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "available_at"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(sa_type=String(200), unique=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    channel: Channel = Field(sa_type=String(20))
    recipient: str = Field(sa_type=String(254))  # an address, or a Telegram chat id
    template: str = Field(sa_type=String(100))
    context: dict[str, Any] = _json()
    kind: MessageKind = Field(default=MessageKind.NOTICE, sa_type=String(20))
    due_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # as planned
    available_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # next try
    state: OutboxState = Field(default=OutboxState.PENDING, sa_type=String(20))
    attempts: int = 0
    lease_until: datetime | None = _when()
    claimed_by: str | None = Field(default=None, sa_type=String(100))
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = _when(index=True)
    server_reply: str | None = Field(default=None, sa_type=Text)
    message_id: str | None = Field(default=None, sa_type=String(250))
    booking_id: int | None = Field(default=None, foreign_key="booking.id", index=True)
    invitation_id: int | None = Field(default=None, foreign_key="survey_invitation.id", index=True)
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", index=True)
    created_at: datetime = _stamp()
    # The provider's own id for the message once sent (a GOV.UK Notify notification id).
    provider_id: str | None = Field(default=None, sa_type=String(100))


class Link(SQLModel, table=True):
    """A personal link's token, by hash only: survey, cancel, nominate, unsubscribe and so on."""

    id: int | None = Field(default=None, primary_key=True)
    purpose: LinkPurpose = Field(sa_type=String(20))
    token_hash: str = Field(sa_type=String(64), unique=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    booking_id: int | None = Field(default=None, foreign_key="booking.id", index=True)
    invitation_id: int | None = Field(default=None, foreign_key="survey_invitation.id", index=True)
    expires_at: datetime | None = _when()
    used_at: datetime | None = _when()
    created_at: datetime = _stamp()


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)
    actor: str = Field(sa_type=String(200))  # "cli:<user>", "telegram:<chat id>", "web", "system"
    action: str = Field(sa_type=String(100), index=True)
    entity: str = Field(sa_type=String(50))
    entity_id: int | None = None
    detail: dict[str, Any] = _json()


class TelegramChat(SQLModel, table=True):
    """What a Telegram chat shows now: the survey question that a typed reply answers.

    Kept in the database, not in the bot's memory, so a restart or another worker carries on
    where the chat was. A row is only a pointer: it is checked against the invitation on use.
    """

    __tablename__ = "telegram_chat"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    invitation_id: int | None = None
    question_key: str | None = Field(default=None, sa_type=String(120))
    message_id: int | None = None
    updated_at: datetime = _stamp()


class ChannelPause(SQLModel, table=True):
    """A delivery channel that stopped because the fault was its own (a relay refusing our
    sender, a refused token), not a recipient's. Kept here so that every worker sees it; a row
    with no ``resumed_at`` is a pause in force. Its history is in the audit log."""

    __tablename__ = "channel_pause"

    channel: str = Field(sa_type=String(20), primary_key=True)
    paused_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reason: str = Field(sa_type=Text)
    outbox_id: int | None = None  # the message whose failure paused it
    resumed_at: datetime | None = _when()
    resumed_by: str | None = Field(default=None, sa_type=String(200))


# The staff console's tables live in their own module.
from surveys.staff import StaffMember as StaffMember  # noqa: E402
from surveys.staff import StaffSession as StaffSession  # noqa: E402
from surveys.staff import StaffSignIn as StaffSignIn  # noqa: E402

# The console counts each session's bookings by status (surveys/console.py): this index answers
# that without reading the bookings themselves, and every lookup of a session's bookings.
Index(
    "ix_booking_session_status",
    Booking.__table__.c.session_id,  # type: ignore[attr-defined]
    Booking.__table__.c.status,  # type: ignore[attr-defined]
)
# The waiting list's places and offers (``schedules.waitlist``) live in a module of their own;
# imported here so that every table is known wherever the models are.
from surveys.waitlist_models import OfferState as OfferState  # noqa: E402
from surveys.waitlist_models import PlaceOffer as PlaceOffer  # noqa: E402
from surveys.waitlist_models import Vacancy as Vacancy  # noqa: E402
from surveys.waitlist_models import VacancyState as VacancyState  # noqa: E402
