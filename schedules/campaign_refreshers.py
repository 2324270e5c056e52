"""Who is due to refresh a course: their last attended session of it ended longer ago than the
course's refresher interval, and they have not booked it again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Exists, exists, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from schedules.campaign_scope import _same
from schedules.policy import Policy
from surveys.models import (
    Agency,
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    Person,
    SessionStatus,
)


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
