"""Sessions, the headline counts, attendance by agency, sector and course, and response rates."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    String,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from surveys.models import BOOKING_STAGES, BookingStatus, InvitationStatus, SessionStatus
from surveys.report.periods import (
    Period,
)
from surveys.report.query import (
    AGENCY,
    BOOKING,
    COURSE,
    EXPECTED,
    INVITATION,
    NO_AGENCY,
    NO_SECTOR,
    PERSON,
    SENT,
    SESSION,
    STATUS_COUNTS,
    as_utc,
    attendance_row,
    bookings_from,
    count_where,
    invitations_from,
    ran_in,
    ratio,
    starts_in,
)
from surveys.report.rows import (
    AttendanceRow,
    Overview,
    ResponseRow,
    SessionRow,
)

# The sections ----------------------------------------------------------------------------------


def sessions(connection: Connection, period: Period, zone: ZoneInfo) -> list[SessionRow]:
    """Every session that starts in the period, cancelled ones included, with its bookings."""
    trainer = PERSON.alias("trainer")
    status = BOOKING.c.status
    active = (BookingStatus.BOOKED.value, *(s.value for s in EXPECTED))
    query = (
        select(
            COURSE.c.title,
            SESSION.c.ref,
            SESSION.c.starts_at,
            SESSION.c.venue,
            SESSION.c.online,
            # A trainer the export gave no name is shown by address.
            func.coalesce(func.nullif(trainer.c.name, ""), trainer.c.email).label("trainer"),
            SESSION.c.status,
            SESSION.c.min_places,
            SESSION.c.max_places,
            func.count(BOOKING.c.id).label("bookings"),
            count_where(status.in_(active)).label("active"),
            count_where(
                status.in_([BookingStatus.CANCELLED.value, BookingStatus.LATE_CANCELLATION.value])
            ).label("cancelled"),
            count_where(status == BookingStatus.REPLACED.value).label("replaced"),
            count_where(status == BookingStatus.ATTENDED.value).label("attended"),
            count_where(status == BookingStatus.PARTLY_ATTENDED.value).label("partly"),
            count_where(status == BookingStatus.NO_SHOW.value).label("no_shows"),
            count_where(status == BookingStatus.BOOKED.value).label("unmarked"),
        )
        .select_from(
            SESSION.join(COURSE, COURSE.c.id == SESSION.c.course_id)
            .outerjoin(trainer, trainer.c.id == SESSION.c.trainer_id)
            .outerjoin(BOOKING, BOOKING.c.session_id == SESSION.c.id)
        )
        .where(starts_in(period, zone))
        .group_by(SESSION.c.id, COURSE.c.title, trainer.c.name, trainer.c.email)
        .order_by(SESSION.c.starts_at, COURSE.c.title, SESSION.c.ref)
    )
    return [
        SessionRow(
            course=row.title,
            ref=row.ref,
            starts_at=as_utc(row.starts_at),
            venue=row.venue,
            online=bool(row.online),
            trainer=row.trainer,
            status=row.status,
            min_places=row.min_places,
            max_places=row.max_places,
            bookings=int(row.bookings),
            active=int(row.active),
            cancelled=int(row.cancelled),
            replaced=int(row.replaced),
            attended=int(row.attended),
            partly=int(row.partly),
            no_shows=int(row.no_shows),
            unmarked=int(row.unmarked),
        )
        for row in connection.execute(query)
    ]


AttendanceLevel = Literal["agency", "sector", "course", "all"]


def overview(connection: Connection, period: Period, zone: ZoneInfo, now: datetime) -> Overview:
    """The headline counts: sessions run, still to come and cancelled, places, people trained.

    A session has run once it has started (``now`` is the moment the figures stand at); one
    that has not is still to come, however it is booked.
    """
    running = SESSION.c.status != SessionStatus.CANCELLED.value
    started = SESSION.c.starts_at <= now
    sessions_row = connection.execute(
        select(
            count_where(and_(running, started)).label("run"),
            count_where(and_(running, ~started)).label("to_come"),
            count_where(~running).label("cancelled"),
            func.coalesce(func.sum(case((running, SESSION.c.max_places))), 0).label("places"),
            func.coalesce(func.sum(case((and_(running, started), SESSION.c.max_places))), 0).label(
                "places_run"
            ),
        ).where(starts_in(period, zone))
    ).one()
    delegates = connection.execute(
        select(func.count(func.distinct(BOOKING.c.delegate_id)))
        .select_from(BOOKING.join(SESSION, SESSION.c.id == BOOKING.c.session_id))
        .where(
            ran_in(period, zone),
            BOOKING.c.status.in_(
                [BookingStatus.ATTENDED.value, BookingStatus.PARTLY_ATTENDED.value]
            ),
        )
    ).scalar_one()
    return Overview(
        sessions_run=int(sessions_row.run),
        sessions_cancelled=int(sessions_row.cancelled),
        places=int(sessions_row.places),
        delegates=int(delegates),
        sessions_to_come=int(sessions_row.to_come),
        places_run=int(sessions_row.places_run),
    )


def attendance(
    connection: Connection, period: Period, zone: ZoneInfo
) -> dict[AttendanceLevel, list[AttendanceRow]]:
    """Bookings on the period's running sessions by status: by agency, sector, course, in all.

    The bookings are counted once, per agency and course, and those counts are summed up to
    each level in the same statement.
    """
    status = BOOKING.c.status
    fine = (
        select(
            AGENCY.c.id.label("agency_id"),
            func.coalesce(AGENCY.c.name, NO_AGENCY).label("agency"),
            func.coalesce(AGENCY.c.sector, NO_SECTOR).label("sector"),
            COURSE.c.id.label("course_id"),
            COURSE.c.title.label("course"),
            func.count(BOOKING.c.id).label("booked"),
            *(
                count_where(status.in_([s.value for s in statuses])).label(name)
                for name, statuses in STATUS_COUNTS.items()
            ),
            func.coalesce(func.sum(BOOKING.c.charge_pence), 0).label("charges_pence"),
        )
        .select_from(bookings_from())
        .where(ran_in(period, zone))
        .group_by(AGENCY.c.id, AGENCY.c.name, AGENCY.c.sector, COURSE.c.id, COURSE.c.title)
        .cte("attendance_fine")
    )
    no_shows = func.sum(fine.c.no_shows)
    expected = func.sum(fine.c.attended) + func.sum(fine.c.partly) + no_shows
    sums = [
        func.sum(fine.c[name]).label(name) for name in ("booked", *STATUS_COUNTS, "charges_pence")
    ]
    rate = ratio(no_shows, expected).label("no_show_rate")

    def level(name: str, group: ColumnElement[Any], sector: ColumnElement[Any]) -> Select[Any]:
        return select(
            literal(name).label("level"), group.label("name"), sector.label("sector"), *sums, rate
        ).select_from(fine)

    no_sector = literal(None, String())
    query = union_all(
        level("agency", fine.c.agency, fine.c.sector).group_by(
            fine.c.agency_id, fine.c.agency, fine.c.sector
        ),
        level("sector", fine.c.sector, no_sector).group_by(fine.c.sector),
        level("course", fine.c.course, no_sector).group_by(fine.c.course_id, fine.c.course),
        level("all", literal("All"), no_sector),
    )
    found: dict[AttendanceLevel, list[AttendanceRow]] = {
        "agency": [],
        "sector": [],
        "course": [],
        "all": [],
    }
    for row in connection.execute(query):
        if row.level == "all" and row.booked is None:
            continue  # no bookings at all: the empty total is added below
        found[row.level].append(
            attendance_row(row.name, row.sector if row.level == "agency" else None, row)
        )
    for rows in found.values():
        rows.sort(key=lambda r: r.group.casefold())
    if not found["all"]:
        found["all"].append(AttendanceRow("All", None, 0, 0, 0, 0, 0, 0, 0, 0, 0, None))
    return found


def response_rates(connection: Connection, period: Period, zone: ZoneInfo) -> list[ResponseRow]:
    """Per stage: invitations planned, sent (opened), started and finished."""
    status = INVITATION.c.status
    sent_condition = status.in_([s.value for s in SENT])
    finished = count_where(status == InvitationStatus.FINISHED.value)
    started = count_where(
        and_(
            sent_condition,
            or_(
                INVITATION.c.started_at.is_not(None),
                status == InvitationStatus.FINISHED.value,
            ),
        )
    )
    sent = count_where(sent_condition)
    query = (
        select(
            INVITATION.c.stage,
            count_where(status == InvitationStatus.PLANNED.value).label("planned"),
            sent.label("sent"),
            started.label("started"),
            finished.label("finished"),
            ratio(started, sent).label("started_rate"),
            ratio(finished, sent).label("finished_rate"),
        )
        .select_from(invitations_from())
        .where(ran_in(period, zone), status != InvitationStatus.WITHDRAWN.value)
        .group_by(INVITATION.c.stage)
    )
    found = {row.stage: row for row in connection.execute(query)}
    rows = []
    for stage in BOOKING_STAGES:  # the trainers' reports have their own section
        row = found.get(stage.value)
        if row is None:
            rows.append(ResponseRow(stage.value, 0, 0, 0, 0, None, None))
            continue
        rows.append(
            ResponseRow(
                stage=stage.value,
                planned=int(row.planned),
                sent=int(row.sent),
                started=int(row.started),
                finished=int(row.finished),
                started_rate=row.started_rate,
                finished_rate=row.finished_rate,
            )
        )
    return rows
