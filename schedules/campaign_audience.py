"""A campaign's audience: the people its scope chooses, each with the message they would get.

One query per kind: ``remind`` (open, unfinished surveys), ``places`` (the free places of one
session) and ``refresher`` (people due to refresh a course).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from schedules.campaign_refreshers import DueRefresher, due_refreshers, refresher_context
from schedules.campaign_scope import CampaignError, Scope, UnknownScope, _same
from schedules.planning import FirstQuestions, person_links, session_context, survey_context
from schedules.policy import Policy
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    InvitationStatus,
    Person,
    SessionStatus,
    SurveyInvitation,
)

# Bookings that hold a place on a session.
HOLDING = (
    BookingStatus.BOOKED,
    BookingStatus.ATTENDED,
    BookingStatus.PARTLY_ATTENDED,
    BookingStatus.NO_SHOW,
)


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
