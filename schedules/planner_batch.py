"""Which bookings a planning pass takes: the next batch needing a plan, claimed so no other
process plans them too, and the people they concern."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import and_, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from schedules.plan_constants import (
    ACTIVE,
    BOOKING_TABLE,
    COURSE_TABLE,
    PERSON_TABLE,
    SESSION_CANCELLED,
    SESSION_TABLE,
)
from schedules.planner_rows import _Booking, _Course, _Person, _Row, _Session
from schedules.policy import Policy
from schedules.withdrawal import chunks
from surveys.models import SessionStatus


def candidates(session: Session, policy: Policy, *, after: int, limit: int) -> list[_Row]:
    """The next ``limit`` active bookings (by id, after ``after``) not planned for their
    session's current times, or whose session was cancelled and who have not been told."""
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
        .limit(limit)
    )
    sessions: dict[int, _Session] = {}
    courses: dict[int, _Course] = {}
    rows = []
    for r in session.execute(statement):
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
        rows.append(_Row(booking, course_session, course, policy.for_course(course.title), target))
    return rows


def claim(session: Session, rows: list[_Row]) -> list[_Row]:
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
            result = session.execute(
                update(BOOKING_TABLE)
                .where(BOOKING_TABLE.c.id.in_(part), BOOKING_TABLE.c.planned_version == seen)
                .values(planned_version=target)
                .returning(BOOKING_TABLE.c.id)
            )
            claimed.update(result.scalars().all())
    return [row for row in rows if row.booking.id in claimed]


def load_people(session: Session, rows: list[_Row]) -> dict[int, _Person]:
    """The delegates and managers of these bookings, by id."""
    wanted: set[int] = set()
    for row in rows:
        wanted.add(row.booking.delegate_id)
        if row.booking.manager_id is not None:
            wanted.add(row.booking.manager_id)
    p = PERSON_TABLE.c
    people: dict[int, _Person] = {}
    for part in chunks(sorted(wanted)):
        for r in session.execute(
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
            people[r.id] = _Person(*r)
    return people
