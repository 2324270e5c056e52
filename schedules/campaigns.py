"""Admin campaigns: a push to those with a survey to finish, last-minute places, refreshers.

Three kinds, each choosing its audience from a scope:

- ``remind``: everyone in scope whose survey invitation is open (opened, not closed, before the
  message could go out) and unfinished. Scope: ``stage``, ``session`` (ref), ``course`` (title),
  ``agency`` (the booking's delegate's agency), ``date_from``/``date_to`` (the session's local
  date). One message per person: someone with two open surveys is reminded of the one that
  closes first. The message is the ``survey-reminder`` the tick sends, with the survey link.
- ``places``: the free places of one ``session`` (its maximum places less the bookings that hold a
  place: booked, attended, partly attended, no-show), offered to the people of the partner
  agencies who have no booking on it. Scope: ``session`` (required), ``agency``, ``sector``.
- ``refresher``: people whose last attended session of a course ended longer ago than the
  course's refresher interval (``policy.refresher_years``) and who have not booked it again.
  Scope: ``course``, ``agency``, ``sector``. One message lists every course a person is due for.

A campaign is its kind and scope: running the same one again (same kind, same scope) reaches
only the people it has not reached, because every message's idempotency key is
``campaign:<scope_key>:person:<id>``. Each run is recorded as a ``Campaign`` row (who, when,
the scope, the counts) and in the audit log. Messages are queued in the outbox (kind
``campaign``, due at the next opening of the sending window), which applies the rate limits and
withdraws any message to someone who opts out before it goes. Opt-outs and unusable addresses
are counted here and skipped: a person who opted out of email but has a working Telegram chat is
reached there, and the other way round.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Exists, case, exists, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.planning import (
    FirstQuestions,
    link_fields,
    person_links,
    session_context,
    survey_context,
)
from schedules.policy import Policy, default_policy
from surveys import audit, outbox, tokens
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Campaign,
    Channel,
    Course,
    CourseSession,
    Deliverability,
    InvitationStatus,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    Person,
    SessionStatus,
    Stage,
    SurveyInvitation,
)

CampaignKind = Literal["remind", "places", "refresher"]
KINDS: tuple[CampaignKind, ...] = ("remind", "places", "refresher")
TEMPLATES: dict[str, str] = {
    "remind": "survey-reminder",
    "places": "campaign-places",
    "refresher": "refresher-due",
}
LABELS = {"remind": "Reminder", "places": "Last-minute places", "refresher": "Refresher"}
FIRST_NAMES = 5
RESPONSE_DAYS = 7
UNSENT_OR_CLAIMED = (OutboxState.PENDING, OutboxState.FAILED, OutboxState.CLAIMED)
DEFAULT_ZONE = ZoneInfo("Europe/London")
# Campaign messages go by email or Telegram; text messages carry only what the policy allows.
CAMPAIGN_CHANNELS = (Channel.EMAIL, Channel.TELEGRAM)
# Bookings that hold a place on a session.
HOLDING = (
    BookingStatus.BOOKED,
    BookingStatus.ATTENDED,
    BookingStatus.PARTLY_ATTENDED,
    BookingStatus.NO_SHOW,
)


class CampaignError(ValueError):
    """A campaign that cannot run as asked; the message says why, for the admin."""


# The scope ------------------------------------------------------------------------------------


_SCOPE_KEYS: dict[str, tuple[str, ...]] = {
    "remind": ("stage", "session", "course", "agency", "date_from", "date_to"),
    "places": ("session", "agency", "sector"),
    "refresher": ("course", "agency", "sector"),
}


@dataclass(frozen=True)
class Scope:
    """Who a campaign is for. Text matches ignore case and extra spaces."""

    stage: Stage | None = None
    session: str | None = None  # a session ref
    course: str | None = None  # a course title
    agency: str | None = None  # an agency name
    sector: str | None = None
    date_from: date | None = None  # the session's local date, inclusive
    date_to: date | None = None

    @classmethod
    def parse(cls, kind: str, raw: Mapping[str, Any]) -> Scope:
        """A scope from a mapping (the CLI's options, Telegram's, or a stored one)."""
        if kind not in KINDS:
            raise CampaignError(f"unknown campaign {kind!r}: use one of {', '.join(KINDS)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None or value == "":
                continue
            if name not in _SCOPE_KEYS[kind]:
                allowed = ", ".join(_SCOPE_KEYS[kind])
                raise CampaignError(f"a {kind} campaign has no {name!r} scope; it takes {allowed}")
            if name == "stage":
                try:
                    values[name] = Stage(str(value).strip().lower())
                except ValueError:
                    stages = ", ".join(s.value for s in Stage)
                    raise CampaignError(f"stage {value!r}: use one of {stages}") from None
            elif name in ("date_from", "date_to"):
                values[name] = _date(value, name)
            else:
                text = " ".join(str(value).split())
                if text:
                    values[name] = text
        scope = cls(**values)
        if kind == "places" and scope.session is None:
            raise CampaignError("a places campaign needs the session: give its ref (--session)")
        if scope.date_from and scope.date_to and scope.date_from > scope.date_to:
            raise CampaignError(
                f"the dates are the wrong way round: from {scope.date_from} is after "
                f"to {scope.date_to}"
            )
        return scope

    def as_dict(self) -> dict[str, str]:
        """The set parts only, as text: what is stored and what the scope key is made of."""
        found: dict[str, str] = {}
        for name in ("stage", "session", "course", "agency", "sector", "date_from", "date_to"):
            value = getattr(self, name)
            if value is None:
                continue
            found[name] = value.isoformat() if isinstance(value, date) else str(value)
        return found


def _date(value: Any, name: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CampaignError(f"{name}: expected a date like 2026-03-31, got {value!r}") from None


def scope_key(kind: str, scope: Scope) -> str:
    """The same kind and scope always give the same key (64 hex characters)."""
    canonical = {name: value.casefold() for name, value in scope.as_dict().items()}
    text = json.dumps({"kind": kind, **canonical}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def message_key(key: str, person_id: int) -> str:
    return f"campaign:{key}:person:{person_id}"


# The audience ---------------------------------------------------------------------------------


@dataclass
class Recipient:
    """One person a campaign is for, with the message it would send them."""

    person: Person
    context: dict[str, Any]
    booking: Booking | None = None
    invitation: SurveyInvitation | None = None
    starts_at: datetime | None = None  # the session's start, for a cancel link's expiry


@dataclass
class Audience:
    recipients: list[Recipient]
    free_places: int | None = None


def _same(column: Any, value: str) -> Any:
    """Case- and space-insensitive equality on a text column."""
    return func.lower(func.trim(column)) == value.casefold()


class UnknownScope(CampaignError):
    """A campaign's scope names a course or session that does not exist."""


def _check_names(session: Session, scope: Scope) -> None:
    """A course or session named in the scope must exist: a typo must not look like "nobody"."""
    if scope.course is not None and (
        session.exec(select(Course.id).where(_same(Course.title, scope.course))).first() is None
    ):
        raise UnknownScope(f"no course is called {scope.course!r}")
    if scope.session is not None and (
        session.exec(
            select(CourseSession.id).where(_same(CourseSession.ref, scope.session))
        ).first()
        is None
    ):
        raise UnknownScope(f"no session has the ref {scope.session!r}")


def _local_day_bounds(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _remind(
    session: Session,
    scope: Scope,
    *,
    send_at: datetime,
    zone: ZoneInfo,
    questions: FirstQuestions,
    telegram: bool,
) -> Audience:
    delegate = aliased(Person, name="delegate")
    recipient = aliased(Person, name="recipient")
    query = (
        select(SurveyInvitation, Booking, CourseSession, Course)
        .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .join(recipient, col(recipient.id) == col(SurveyInvitation.person_id))
        .join(delegate, col(delegate.id) == col(Booking.delegate_id))
        .where(
            col(SurveyInvitation.status) == InvitationStatus.OPEN,
            col(SurveyInvitation.finished_at).is_(None),
            col(SurveyInvitation.opens_at) <= send_at,
            # Nobody is pushed towards a survey that will have closed when the message goes.
            col(SurveyInvitation.closes_at) > send_at,
            col(recipient.erased_at).is_(None),
        )
        .order_by(col(SurveyInvitation.closes_at), col(SurveyInvitation.id))
    )
    if scope.stage is not None:
        query = query.where(col(SurveyInvitation.stage) == scope.stage)
    if scope.session is not None:
        query = query.where(_same(CourseSession.ref, scope.session))
    if scope.course is not None:
        query = query.where(_same(Course.title, scope.course))
    if scope.agency is not None:
        query = query.join(Agency, col(Agency.id) == col(delegate.agency_id)).where(
            _same(Agency.name, scope.agency)
        )
    if scope.date_from is not None:
        query = query.where(
            col(CourseSession.starts_at) >= _local_day_bounds(scope.date_from, zone)
        )
    if scope.date_to is not None:
        end = _local_day_bounds(scope.date_to + timedelta(days=1), zone)
        query = query.where(col(CourseSession.starts_at) < end)
    first: dict[int, tuple[SurveyInvitation, Booking, CourseSession, Course]] = {}
    for invitation, booking, course_session, course in session.exec(query):
        # One message each: the survey that closes first.
        first.setdefault(invitation.person_id, (invitation, booking, course_session, course))
    people = people_by_id(
        session, {*first, *(booking.delegate_id for _, booking, _, _ in first.values())}
    )
    chosen: dict[int, Recipient] = {}
    for person_id, (invitation, booking, course_session, course) in first.items():
        person = people[person_id]
        context = survey_context(
            invitation,
            booking,
            course_session,
            course,
            person,
            people[booking.delegate_id],
            questions,
            telegram=telegram,
        )
        context["campaign"] = True
        chosen[person_id] = Recipient(
            person, context, booking, invitation, course_session.starts_at
        )
    return Audience(sorted(chosen.values(), key=_by_name))


def _places(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    contact: str | None,
    links: bool,
    telegram: bool,
) -> Audience:
    assert scope.session is not None
    found = session.exec(
        select(CourseSession, Course)
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .where(_same(CourseSession.ref, scope.session))
    ).first()
    if found is None:
        raise CampaignError(f"no session has the ref {scope.session!r}")
    course_session, course = found
    if course_session.status == SessionStatus.CANCELLED:
        raise CampaignError(f"session {course_session.ref} is cancelled")
    if course_session.starts_at <= now:
        raise CampaignError(f"session {course_session.ref} has already started")
    if course_session.max_places is None:
        raise CampaignError(
            f"session {course_session.ref} has no maximum number of places, so none are free"
        )
    taken = session.exec(
        select(func.count())
        .select_from(Booking)
        .where(
            col(Booking.session_id) == course_session.id,
            col(Booking.status).in_([s.value for s in HOLDING]),
        )
    ).one()
    free = course_session.max_places - int(taken)
    if free <= 0:
        raise CampaignError(
            f"session {course_session.ref} is full: {taken} bookings for "
            f"{course_session.max_places} places"
        )
    booked = exists().where(
        col(Booking.session_id) == course_session.id, col(Booking.delegate_id) == col(Person.id)
    )
    query = (
        select(Person)
        .join(Agency, col(Agency.id) == col(Person.agency_id))
        .where(~booked, col(Person.erased_at).is_(None))
        .order_by(col(Person.name), col(Person.id))
    )
    if course_session.trainer_id is not None:
        query = query.where(col(Person.id) != course_session.trainer_id)
    if scope.agency is not None:
        query = query.where(_same(Agency.name, scope.agency))
    if scope.sector is not None:
        query = query.where(_same(Agency.sector, scope.sector))
    base = {
        **session_context(course_session, course),
        "free_places": free,
        "max_places": course_session.max_places,
        "contact": contact or "",
    }
    recipients = []
    for person in session.exec(query):
        context = dict(base)
        if links:
            context["links"] = person_links(person, telegram)
        recipients.append(Recipient(person, context))
    return Audience(recipients, free_places=free)


def add_years(day: date, years: int) -> date:
    """The same day ``years`` later; 29 February becomes 28 February."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class DueRefresher:
    person_id: int
    course_id: int
    course_title: str
    last_attended: datetime  # the end of the last session attended
    due_on: date  # local date


def _same_course_booking(
    booking: type[Booking],
    course_session: type[CourseSession],
    status: BookingStatus,
    *conditions: ColumnElement[bool],
) -> Exists:
    """Whether the outer ``Booking``'s person also has ``booking``, in ``status``, on
    ``course_session``: a session of the outer ``CourseSession``'s course that meets
    ``conditions``."""
    return (
        exists()
        .where(
            col(booking.delegate_id) == col(Booking.delegate_id),
            col(booking.status) == status,
            col(course_session.id) == col(booking.session_id),
            col(course_session.course_id) == col(CourseSession.course_id),
            *conditions,
        )
        .correlate(Booking, CourseSession)
    )


def due_refreshers(
    session: Session,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    course: str | None = None,
    agency: str | None = None,
    sector: str | None = None,
) -> list[DueRefresher]:
    """People due to refresh a course: their last attended session of it ended longer ago than
    the course's ``refresher_years``, and they have no booking on a later session of it.

    Attended means fully attended: a partly attended session does not count as done.
    """
    today = now.astimezone(zone).date()
    shortest = min([policy.refresher_years, *(p.refresher_years for p in policy.courses.values())])
    # Nobody whose last session ended after this can be due under any course's interval.
    latest = datetime.combine(add_years(today, -shortest) + timedelta(days=2), time(0), tzinfo=zone)
    last = func.max(col(CourseSession.ends_at)).label("last")
    later = aliased(Booking, name="later")
    later_session = aliased(CourseSession, name="later_session")
    booked_again = _same_course_booking(
        later,
        later_session,
        BookingStatus.BOOKED,
        col(later_session.status) != SessionStatus.CANCELLED,
        col(later_session.starts_at) > now,
    )
    query = (
        select(col(Booking.delegate_id), col(Course.id), col(Course.title), last)
        .select_from(Booking)
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .join(Course, col(Course.id) == col(CourseSession.course_id))
        .join(Person, col(Person.id) == col(Booking.delegate_id))
        .where(
            col(Booking.status) == BookingStatus.ATTENDED,
            col(CourseSession.status) != SessionStatus.CANCELLED,
            col(Person.erased_at).is_(None),
            ~booked_again,
        )
        .group_by(col(Booking.delegate_id), col(Course.id), col(Course.title))
        .having(last < latest)
        .order_by(col(Booking.delegate_id), col(Course.title))
    )
    if course is not None:
        query = query.where(_same(Course.title, course))
    if agency is not None or sector is not None:
        query = query.join(Agency, col(Agency.id) == col(Person.agency_id))
        if agency is not None:
            query = query.where(_same(Agency.name, agency))
        if sector is not None:
            query = query.where(_same(Agency.sector, sector))
    found = []
    for person_id, course_id, title, ended in session.exec(query):
        ended = ended.replace(tzinfo=UTC) if ended.tzinfo is None else ended.astimezone(UTC)
        due = add_years(ended.astimezone(zone).date(), policy.for_course(title).refresher_years)
        if due <= today:
            found.append(DueRefresher(person_id, course_id or 0, title, ended, due))
    return found


def refresher_context(items: Iterable[DueRefresher], contact: str | None) -> dict[str, Any]:
    return {
        "courses": [
            {
                "title": item.course_title,
                "last_attended": item.last_attended.isoformat(),
                "due_on": item.due_on.isoformat(),
            }
            for item in items
        ],
        "contact": contact or "",
    }


def _refresher(
    session: Session,
    scope: Scope,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    contact: str | None,
    links: bool,
    telegram: bool,
) -> Audience:
    due = due_refreshers(
        session,
        now=now,
        policy=policy,
        zone=zone,
        course=scope.course,
        agency=scope.agency,
        sector=scope.sector,
    )
    by_person: dict[int, list[DueRefresher]] = {}
    for item in due:
        by_person.setdefault(item.person_id, []).append(item)
    people = people_by_id(session, by_person)
    recipients = []
    for person_id, items in by_person.items():
        person = people[person_id]
        context = refresher_context(items, contact)
        if links:
            context["links"] = person_links(person, telegram)
        recipients.append(Recipient(person, context))
    return Audience(sorted(recipients, key=_by_name))


def people_by_id(session: Session, ids: Iterable[int]) -> dict[int, Person]:
    wanted = list(ids)
    found: dict[int, Person] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for person in session.exec(select(Person).where(col(Person.id).in_(chunk))):
            assert person.id is not None
            found[person.id] = person
    return found


def _by_name(recipient: Recipient) -> tuple[str, int]:
    return recipient.person.name.casefold(), recipient.person.id or 0


# Reaching people ------------------------------------------------------------------------------


def reach(person: Person) -> tuple[Channel | None, str | None]:
    """The channel a campaign message to ``person`` goes by, or None and why not.

    The preferred channel first, then the other; a channel counts when it works and the person
    has not opted out of it. The reason is ``"opted out"`` when a working channel was refused.
    """
    email_works = person.email_status == Deliverability.OK
    telegram_works = (
        person.telegram_chat_id is not None and person.telegram_status == Deliverability.OK
    )
    usable = {
        Channel.EMAIL: email_works and not person.email_opt_out,
        Channel.TELEGRAM: telegram_works and not person.telegram_opt_out,
    }
    preferred = outbox.choose_channel(person)
    for channel in (preferred, Channel.TELEGRAM if preferred is Channel.EMAIL else Channel.EMAIL):
        if usable[channel]:
            return channel, None
    refused = (email_works and person.email_opt_out) or (telegram_works and person.telegram_opt_out)
    return None, "opted out" if refused else "unreachable"


@dataclass(frozen=True)
class CampaignPreview:
    """What a campaign would do now: nothing is written to find it out."""

    kind: str
    scope: dict[str, str]
    scope_key: str
    channels: dict[str, int]  # people to message, by channel
    opted_out: int
    unreachable: int
    already_messaged: int  # reached by an earlier run of the same campaign
    names: list[str]  # the first few to be messaged
    send_at: datetime
    free_places: int | None = None

    @property
    def to_send(self) -> int:
        return sum(self.channels.values())

    def __str__(self) -> str:
        return describe_counts(
            self.kind,
            self.scope,
            {
                "queued": self.to_send,
                **self.channels,
                "opted_out": self.opted_out,
                "unreachable": self.unreachable,
                "already_messaged": self.already_messaged,
                "free_places": self.free_places,
            },
            names=self.names,
            verb="to message",
        )


def describe_counts(
    kind: str,
    scope: Mapping[str, Any],
    counts: Mapping[str, Any],
    *,
    names: list[str] | None = None,
    verb: str = "queued",
) -> str:
    """A campaign's preview or result in one or two sentences."""
    scope_text = ", ".join(f"{name} {value}" for name, value in scope.items()) or "everyone"
    channels = ", ".join(
        f"{counts.get(c.value, 0)} by {c.value}" for c in Channel if counts.get(c.value)
    )
    parts = [f"{LABELS.get(kind, kind)} campaign ({scope_text}): {counts.get('queued', 0)} {verb}"]
    if channels:
        parts[0] += f" ({channels})"
    for key, label in (
        ("opted_out", "opted out"),
        ("unreachable", "with no usable address"),
        ("already_messaged", "already messaged by this campaign"),
    ):
        if counts.get(key):
            parts.append(f"{counts[key]} {label}")
    if counts.get("free_places") is not None:
        parts.append(f"{counts['free_places']} free places")
    text = "; ".join(parts) + "."
    if names:
        more = counts.get("queued", 0) - len(names)
        text += " First: " + ", ".join(names) + (f" and {more} more." if more > 0 else ".")
    return text


def describe(campaign: Campaign) -> str:
    """A recorded campaign in words (for Telegram and the CLI)."""
    return describe_counts(campaign.kind, campaign.scope, campaign.counts)


@dataclass
class _Plan:
    kind: CampaignKind
    scope: Scope
    key: str
    send_at: datetime
    audience: Audience
    to_send: list[tuple[Recipient, Channel]] = field(default_factory=list)
    opted_out: int = 0
    unreachable: int = 0
    already: int = 0


def _plan(
    session: Session,
    kind: str,
    scope: Mapping[str, Any] | Scope,
    *,
    now: datetime,
    policy: Policy,
    zone: ZoneInfo,
    contact: str | None,
    definitions_dir: Path | None,
    links: bool,
    telegram: bool,
) -> _Plan:
    parsed = scope if isinstance(scope, Scope) else Scope.parse(kind, scope)
    if kind not in KINDS:
        raise CampaignError(f"unknown campaign {kind!r}: use one of {', '.join(KINDS)}")
    _check_names(session, parsed)
    send_at = next_send_time(now, policy, zone)
    if kind == "remind":
        audience = _remind(
            session,
            parsed,
            send_at=send_at,
            zone=zone,
            questions=FirstQuestions(definitions_dir),
            telegram=telegram,
        )
    elif kind == "places":
        audience = _places(
            session, parsed, now=now, contact=contact, links=links, telegram=telegram
        )
    else:
        audience = _refresher(
            session,
            parsed,
            now=now,
            policy=policy,
            zone=zone,
            contact=contact,
            links=links,
            telegram=telegram,
        )
    key = scope_key(kind, parsed)
    plan = _Plan(kind, parsed, key, send_at, audience)
    sent_before = _existing_keys(
        session, [message_key(key, r.person.id or 0) for r in audience.recipients]
    )
    for recipient in audience.recipients:
        if message_key(key, recipient.person.id or 0) in sent_before:
            plan.already += 1
            continue
        channel, reason = reach(recipient.person)
        if channel is None:
            if reason == "opted out":
                plan.opted_out += 1
            else:
                plan.unreachable += 1
            continue
        plan.to_send.append((recipient, channel))
    return plan


def _existing_keys(session: Session, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        found.update(
            session.exec(
                select(col(OutboxMessage.idempotency_key)).where(
                    col(OutboxMessage.idempotency_key).in_(chunk)
                )
            ).all()
        )
    return found


def _counts(plan: _Plan) -> dict[str, Any]:
    channels = {c.value: 0 for c in CAMPAIGN_CHANNELS}
    for _, channel in plan.to_send:
        channels[channel.value] += 1
    counts: dict[str, Any] = {
        "audience": len(plan.audience.recipients),
        "queued": len(plan.to_send),
        **channels,
        "opted_out": plan.opted_out,
        "unreachable": plan.unreachable,
        "already_messaged": plan.already,
    }
    if plan.audience.free_places is not None:
        counts["free_places"] = plan.audience.free_places
    return counts


def preview(
    session: Session,
    kind: str,
    scope: Mapping[str, Any] | Scope,
    *,
    now: datetime,
    policy: Policy | None = None,
    zone: ZoneInfo | None = None,
    contact: str | None = None,
    definitions_dir: Path | None = None,
    first: int = FIRST_NAMES,
    telegram: bool = True,
) -> CampaignPreview:
    """Who a campaign would message now, by channel, and who it would skip; writes nothing.

    ``telegram`` says whether Evalbot has a Telegram bot, as for ``schedules.planning``: without
    one, messages carry no link to connect Telegram.
    """
    plan = _plan(
        session,
        kind,
        scope,
        now=now,
        policy=policy or default_policy(),
        zone=zone or DEFAULT_ZONE,
        contact=contact,
        definitions_dir=definitions_dir,
        links=False,
        telegram=telegram,
    )
    counts = _counts(plan)
    return CampaignPreview(
        kind=plan.kind,
        scope=plan.scope.as_dict(),
        scope_key=plan.key,
        channels={c.value: counts[c.value] for c in CAMPAIGN_CHANNELS},
        opted_out=plan.opted_out,
        unreachable=plan.unreachable,
        already_messaged=plan.already,
        names=[recipient.person.name for recipient, _ in plan.to_send[:first]],
        send_at=plan.send_at,
        free_places=plan.audience.free_places,
    )


def run(
    session: Session,
    kind: str,
    scope: Mapping[str, Any] | Scope,
    *,
    now: datetime,
    actor: str,
    policy: Policy | None = None,
    zone: ZoneInfo | None = None,
    secret: bytes | None = None,
    contact: str | None = None,
    definitions_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    telegram: bool = True,
) -> Campaign:
    """Queue the campaign's messages and record it; the caller commits.

    ``secret`` records the hashes of the personal links the messages carry (survey links are
    usually recorded already, when the invitation was queued). ``progress`` is called with 1
    after each message is queued. ``telegram``: whether there is a Telegram bot to link to.
    """
    plan = _plan(
        session,
        kind,
        scope,
        now=now,
        policy=policy or default_policy(),
        zone=zone or DEFAULT_ZONE,
        contact=contact,
        definitions_dir=definitions_dir,
        links=secret is not None,
        telegram=telegram,
    )
    campaign = Campaign(
        kind=plan.kind,
        scope=plan.scope.as_dict(),
        scope_key=plan.key,
        created_by=actor,
        created_at=now,
        counts=_counts(plan),
    )
    session.add(campaign)
    session.flush()
    template = TEMPLATES[plan.kind]
    for recipient, channel in plan.to_send:
        person = recipient.person
        assert person.id is not None
        if secret is not None:
            _issue_links(session, secret, recipient)
        outbox.enqueue(
            session,
            key=message_key(plan.key, person.id),
            person=person,
            template=template,
            context=recipient.context,
            due_at=plan.send_at,
            kind=MessageKind.CAMPAIGN,
            channel=channel,
            booking_id=recipient.booking.id if recipient.booking else None,
            invitation_id=recipient.invitation.id if recipient.invitation else None,
            campaign_id=campaign.id,
        )
        if progress is not None:
            progress(1)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="campaign.run",
        entity="campaign",
        entity_id=campaign.id,
        kind=plan.kind,
        scope=campaign.scope,
        counts=campaign.counts,
        send_at=plan.send_at.isoformat(),
    )
    session.flush()
    return campaign


def _issue_links(session: Session, secret: bytes, recipient: Recipient) -> None:
    for purpose_text, subject in recipient.context.get("links", {}).values():
        purpose = LinkPurpose(purpose_text)
        if recipient.booking is not None and recipient.starts_at is not None:
            fields = link_fields(
                purpose,
                person=recipient.person,
                booking=recipient.booking,
                invitation=recipient.invitation,
                starts_at=recipient.starts_at,
            )
        else:
            fields = {"person_id": recipient.person.id}
        tokens.issue(session, secret, purpose, subject=subject, **fields)


# Results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignResult:
    campaign: Campaign
    queued: int  # outbox rows
    delivered: int  # sent
    pending: int  # waiting, or failed and to be tried again
    responded: int  # within RESPONSE_DAYS days: see ``results``


def results(session: Session, *, limit: int = 50) -> list[CampaignResult]:
    """The latest campaigns with what was delivered and how many responded within 7 days.

    Responded means, for a reminder, a survey it reminded about finished within 7 days of the
    campaign; for last-minute places, a booking on the session made within 7 days by someone it
    reached; for a refresher, a booking made within 7 days by someone it reached, on a course
    they had attended before.
    """
    campaigns = session.exec(
        select(Campaign)
        .order_by(col(Campaign.created_at).desc(), col(Campaign.id).desc())
        .limit(limit)
    ).all()
    if not campaigns:
        return []
    ids = [c.id for c in campaigns]
    state = col(OutboxMessage.state)
    delivery = {
        row[0]: row[1:]
        for row in session.exec(
            select(
                col(OutboxMessage.campaign_id),
                func.count(),
                func.sum(case((state == OutboxState.SENT, 1), else_=0)),
                func.sum(case((state.in_(UNSENT_OR_CLAIMED), 1), else_=0)),
            )
            .where(col(OutboxMessage.campaign_id).in_(ids))
            .group_by(col(OutboxMessage.campaign_id))
        ).all()
    }
    found = []
    for campaign in campaigns:
        queued, delivered, pending = delivery.get(campaign.id, (0, 0, 0))
        found.append(
            CampaignResult(
                campaign,
                int(queued or 0),
                int(delivered or 0),
                int(pending or 0),
                _responded(session, campaign),
            )
        )
    return found


def _responded(session: Session, campaign: Campaign) -> int:
    start = campaign.created_at
    end = start + timedelta(days=RESPONSE_DAYS)
    if campaign.kind == "remind":
        query = (
            select(func.count(func.distinct(col(SurveyInvitation.id))))
            .select_from(OutboxMessage)
            .join(SurveyInvitation, col(SurveyInvitation.id) == col(OutboxMessage.invitation_id))
            .where(
                col(OutboxMessage.campaign_id) == campaign.id,
                col(SurveyInvitation.finished_at) >= start,
                col(SurveyInvitation.finished_at) < end,
            )
        )
        return int(session.exec(query).one())
    made = func.coalesce(col(Booking.booked_at), col(Booking.created_at))
    query = (
        select(func.count(func.distinct(col(Booking.id))))
        .select_from(OutboxMessage)
        .join(Booking, col(Booking.delegate_id) == col(OutboxMessage.person_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .where(col(OutboxMessage.campaign_id) == campaign.id, made >= start, made < end)
    )
    if campaign.kind == "places":
        ref = str(campaign.scope.get("session", ""))
        return int(session.exec(query.where(_same(CourseSession.ref, ref))).one())
    earlier = aliased(Booking, name="earlier")
    earlier_session = aliased(CourseSession, name="earlier_session")
    attended_before = _same_course_booking(
        earlier,
        earlier_session,
        BookingStatus.ATTENDED,
        col(earlier_session.starts_at) < col(CourseSession.starts_at),
    )
    return int(session.exec(query.where(attended_before)).one())


__all__ = [
    "KINDS",
    "CampaignError",
    "CampaignPreview",
    "CampaignResult",
    "DueRefresher",
    "Scope",
    "add_years",
    "describe",
    "due_refreshers",
    "preview",
    "reach",
    "results",
    "run",
    "scope_key",
]
