"""The quarterly report's figures, every one computed by the database.

What a quarter covers: the sessions that start in it (by their local date). Courses, attendance
and the evaluation all follow those sessions' bookings, so the impact results of a quarter fill
in as its impact surveys come back: run the report again later and it is more complete. The
report says the date its figures stand at.

Definitions (the report repeats them where it shows each figure):

- attendance counts bookings on sessions that were not cancelled, one column per booking status;
  a booking's agency is its delegate's agency;
- the no-show rate is no-shows / (attended + partly attended + no-shows): of those expected on the
  day after every cancellation, the share who did not come;
- a survey is sent once its invitation has opened (open, finished or closed; withdrawn ones, of
  cancelled bookings, are left out), started once a first answer came, finished when completed;
- a matched pair is two answers of one booking to the same item and learning outcome, one in each
  stage; its change is the later value minus the earlier, and it improved when the change is
  above zero. Answers count whether or not the survey was finished.

Every function here runs aggregate queries (GROUP BY, CASE) and returns their rows; Python only
arranges them. Two things are done to the results in Python, neither a figure: the free-text
examples have the names in them taken out (``NameScrubber``), and the anonymous edition leaves
out the figures that rest on too few people (``suppress_small_groups``).
"""

from __future__ import annotations

import calendar
import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, FromClause, Select
from sqlmodel import SQLModel

from surveys.models import BookingStatus, InvitationStatus, SessionStatus, Stage

QuarterScheme = Literal["calendar", "financial"]

_TABLES = SQLModel.metadata.tables
SESSION: Table = _TABLES["course_session"]
COURSE: Table = _TABLES["course"]
BOOKING: Table = _TABLES["booking"]
PERSON: Table = _TABLES["person"]
AGENCY: Table = _TABLES["agency"]
INVITATION: Table = _TABLES["survey_invitation"]
ANSWER: Table = _TABLES["answer"]
DEFINITION: Table = _TABLES["survey_definition_version"]

NO_AGENCY = "No agency recorded"
NO_SECTOR = "not recorded"
MEASURES = ("knowledge", "confidence")
TRANSITIONS: tuple[tuple[Stage, Stage], ...] = ((Stage.PRE, Stage.END), (Stage.END, Stage.IMPACT))
SENT = (InvitationStatus.OPEN, InvitationStatus.FINISHED, InvitationStatus.CLOSED)
EXPECTED = (BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED, BookingStatus.NO_SHOW)
MONTHS = list(calendar.month_name)[1:]


class QuarterError(ValueError):
    """A quarter that cannot be read; the message shows what is expected."""


@dataclass(frozen=True)
class Quarter:
    """A calendar quarter, or a quarter of the financial year that starts on 1 April.

    For financial quarters ``year`` is the year the financial year starts: 2026Q1 is April to
    June 2026 and 2026Q4 is January to March 2027.
    """

    year: int
    number: int
    scheme: QuarterScheme = "calendar"

    @property
    def first_day(self) -> date:
        month = 3 * (self.number - 1) + (4 if self.scheme == "financial" else 1)
        year = self.year + (month - 1) // 12
        return date(year, (month - 1) % 12 + 1, 1)

    @property
    def next_day(self) -> date:
        """The first day after the quarter."""
        first = self.first_day
        month = first.month + 3
        return date(first.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)

    @property
    def last_day(self) -> date:
        return date.fromordinal(self.next_day.toordinal() - 1)

    @property
    def label(self) -> str:
        if self.scheme == "financial":
            return f"{self.year}/{(self.year + 1) % 100:02d} Q{self.number}"
        return f"{self.year} Q{self.number}"

    @property
    def months(self) -> str:
        first, last = self.first_day, self.last_day
        return f"{MONTHS[first.month - 1]} to {MONTHS[last.month - 1]} {last.year}"

    @property
    def slug(self) -> str:
        return f"{self.year}Q{self.number}"

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The quarter as a half-open UTC interval, from local midnight to local midnight."""
        start = datetime.combine(self.first_day, time(0), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(self.next_day, time(0), tzinfo=zone).astimezone(UTC)
        return start, end


_QUARTER = re.compile(r"^\s*(\d{4})(?:\s*/\s*(\d{2}))?\s*[- ]?\s*Q([1-4])\s*$", re.IGNORECASE)


def parse_quarter(text: str, scheme: QuarterScheme = "calendar") -> Quarter:
    """``2026Q1`` (also ``2026-Q1``, ``2026 Q1``; ``2026/27 Q1`` for financial quarters)."""
    match = _QUARTER.match(text)
    if match is None:
        raise QuarterError(f"{text!r} is not a quarter: write the year and quarter, like 2026Q1")
    year, number = int(match[1]), int(match[3])
    if match[2] is not None and (scheme != "financial" or int(match[2]) != (year + 1) % 100):
        raise QuarterError(
            f"{text!r}: a year like 2026/27 names a financial year; "
            f"quarters here are {scheme} quarters (write {year}Q{number})"
        )
    return Quarter(year, number, scheme)


@dataclass(frozen=True)
class SessionRow:
    course: str
    ref: str
    starts_at: datetime
    venue: str | None
    online: bool
    trainer: str | None
    status: str
    min_places: int | None
    max_places: int | None
    bookings: int  # every booking made, whatever became of it
    active: int  # holding a place: booked, attended, partly attended, no-show
    cancelled: int  # in time or late
    replaced: int
    attended: int
    partly: int
    no_shows: int
    unmarked: int  # still "booked": the register has not been closed


@dataclass(frozen=True)
class AttendanceRow:
    group: str  # an agency, a sector, a course, or "All"
    sector: str | None  # for agency rows
    booked: int
    attended: int
    partly: int
    no_shows: int
    late_cancellations: int
    cancellations: int
    replaced: int
    unmarked: int
    charges_pence: int
    no_show_rate: float | None


@dataclass(frozen=True)
class ResponseRow:
    stage: str
    planned: int  # not opened yet
    sent: int
    started: int
    finished: int
    started_rate: float | None
    finished_rate: float | None


@dataclass(frozen=True)
class SatisfactionRow:
    course: str
    item: str
    answers: int
    mean: float | None
    satisfied: int  # 4 or 5 on a 1-5 scale
    satisfied_share: float | None
    suppressed: bool = False  # from too few people for the anonymous edition: no figures


@dataclass(frozen=True)
class ChangeRow:
    course: str
    measure: str
    transition: str  # "pre to end" / "end to impact"
    outcome_index: int | None  # None: all outcomes together
    outcome: str | None
    pairs: int
    mean_before: float | None
    mean_after: float | None
    mean_change: float | None
    improved: int
    improved_share: float | None
    suppressed: bool = False


@dataclass(frozen=True)
class AppliedRow:
    course: str
    answers: int
    applied: int
    share: float | None
    suppressed: bool = False


@dataclass(frozen=True)
class BarrierRow:
    key: str
    label: str
    count: int
    share: float | None  # of the people who answered the question
    suppressed: bool = False


@dataclass(frozen=True)
class Overview:
    sessions_run: int
    sessions_cancelled: int
    places: int  # the maximum places of the sessions that ran, where set
    delegates: int  # distinct people who attended all or part of a session


@dataclass(frozen=True)
class ExampleRow:
    course: str
    text: str
    course_examples: int = 0  # how many examples its course has in the quarter


@dataclass(frozen=True)
class ManagerRow:
    item: str
    label: str
    answers: int
    yes_no: bool
    mean: float | None  # for a yes/no item: the share answering yes
    suppressed: bool = False


@dataclass(frozen=True)
class IssueRow:
    kind: str
    subject: str
    detail: str


@dataclass
class QuarterlyReport:
    quarter: Quarter
    zone: ZoneInfo
    generated_at: datetime
    no_show_alert_rate: float
    overview: Overview
    sessions: list[SessionRow]
    totals: AttendanceRow
    by_agency: list[AttendanceRow]
    by_sector: list[AttendanceRow]
    by_course: list[AttendanceRow]
    responses: list[ResponseRow]
    satisfaction: list[SatisfactionRow]
    change: list[ChangeRow]
    change_by_outcome: list[ChangeRow]
    applied: list[AppliedRow]
    barriers: list[BarrierRow]
    barrier_respondents: int
    examples: list[ExampleRow]
    example_count: int
    manager: list[ManagerRow]
    issues: list[IssueRow] = field(default_factory=list)
    # Set by ``suppress_small_groups``: figures from fewer people than this are left out.
    smallest_group: int | None = None


# Building blocks -------------------------------------------------------------------------------


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _ratio(numerator: ColumnElement[Any], denominator: ColumnElement[Any]) -> ColumnElement[Any]:
    """numerator / denominator as a float, NULL when the denominator is 0."""
    return cast(numerator, Float) / func.nullif(cast(denominator, Float), 0.0)


def _avg(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return cast(func.avg(value), Float)


def _in_quarter(quarter: Quarter, zone: ZoneInfo) -> ColumnElement[bool]:
    start, end = quarter.bounds(zone)
    return and_(SESSION.c.starts_at >= start, SESSION.c.starts_at < end)


def _running(quarter: Quarter, zone: ZoneInfo) -> ColumnElement[bool]:
    """Sessions of the quarter that were not cancelled."""
    return and_(_in_quarter(quarter, zone), SESSION.c.status != SessionStatus.CANCELLED.value)


def _bookings_from() -> FromClause:
    return (
        BOOKING.join(SESSION, SESSION.c.id == BOOKING.c.session_id)
        .join(COURSE, COURSE.c.id == SESSION.c.course_id)
        .join(PERSON, PERSON.c.id == BOOKING.c.delegate_id)
        .outerjoin(AGENCY, AGENCY.c.id == PERSON.c.agency_id)
    )


def _invitations_from() -> FromClause:
    return INVITATION.join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id).join(
        SESSION, SESSION.c.id == BOOKING.c.session_id
    )


def _answers_joined() -> FromClause:
    """Answers joined to their invitation, booking, session and course."""
    return (
        ANSWER.join(INVITATION, INVITATION.c.id == ANSWER.c.invitation_id)
        .join(BOOKING, BOOKING.c.id == INVITATION.c.booking_id)
        .join(SESSION, SESSION.c.id == BOOKING.c.session_id)
        .join(COURSE, COURSE.c.id == SESSION.c.course_id)
    )


def _answers_from(stage: Stage) -> tuple[FromClause, ColumnElement[bool]]:
    """Answers of one stage on the quarter's bookings, joined to their course."""
    joined = _answers_joined()
    condition = and_(
        INVITATION.c.stage == stage.value,
        INVITATION.c.status != InvitationStatus.WITHDRAWN.value,
    )
    return joined, condition


_STATUS_COUNTS = {
    "attended": (BookingStatus.ATTENDED,),
    "partly": (BookingStatus.PARTLY_ATTENDED,),
    "no_shows": (BookingStatus.NO_SHOW,),
    "late_cancellations": (BookingStatus.LATE_CANCELLATION,),
    "cancellations": (BookingStatus.CANCELLED,),
    "replaced": (BookingStatus.REPLACED,),
    "unmarked": (BookingStatus.BOOKED,),
}


def _attendance_row(group: str, sector: str | None, row: Any) -> AttendanceRow:
    return AttendanceRow(
        group=group,
        sector=sector,
        booked=int(row.booked),
        attended=int(row.attended),
        partly=int(row.partly),
        no_shows=int(row.no_shows),
        late_cancellations=int(row.late_cancellations),
        cancellations=int(row.cancellations),
        replaced=int(row.replaced),
        unmarked=int(row.unmarked),
        charges_pence=int(row.charges_pence),
        no_show_rate=row.no_show_rate,
    )


# The sections ----------------------------------------------------------------------------------


def sessions(connection: Connection, quarter: Quarter, zone: ZoneInfo) -> list[SessionRow]:
    """Every session that starts in the quarter, cancelled ones included, with its bookings."""
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
            _count(status.in_(active)).label("active"),
            _count(
                status.in_([BookingStatus.CANCELLED.value, BookingStatus.LATE_CANCELLATION.value])
            ).label("cancelled"),
            _count(status == BookingStatus.REPLACED.value).label("replaced"),
            _count(status == BookingStatus.ATTENDED.value).label("attended"),
            _count(status == BookingStatus.PARTLY_ATTENDED.value).label("partly"),
            _count(status == BookingStatus.NO_SHOW.value).label("no_shows"),
            _count(status == BookingStatus.BOOKED.value).label("unmarked"),
        )
        .select_from(
            SESSION.join(COURSE, COURSE.c.id == SESSION.c.course_id)
            .outerjoin(trainer, trainer.c.id == SESSION.c.trainer_id)
            .outerjoin(BOOKING, BOOKING.c.session_id == SESSION.c.id)
        )
        .where(_in_quarter(quarter, zone))
        .group_by(SESSION.c.id, COURSE.c.title, trainer.c.name, trainer.c.email)
        .order_by(SESSION.c.starts_at, COURSE.c.title, SESSION.c.ref)
    )
    return [
        SessionRow(
            course=row.title,
            ref=row.ref,
            starts_at=_utc(row.starts_at),
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


def overview(connection: Connection, quarter: Quarter, zone: ZoneInfo) -> Overview:
    """The headline counts: sessions run and cancelled, places offered, people trained."""
    running = SESSION.c.status != SessionStatus.CANCELLED.value
    sessions_row = connection.execute(
        select(
            _count(running).label("run"),
            _count(~running).label("cancelled"),
            func.coalesce(func.sum(case((running, SESSION.c.max_places))), 0).label("places"),
        ).where(_in_quarter(quarter, zone))
    ).one()
    delegates = connection.execute(
        select(func.count(func.distinct(BOOKING.c.delegate_id)))
        .select_from(BOOKING.join(SESSION, SESSION.c.id == BOOKING.c.session_id))
        .where(
            _running(quarter, zone),
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
    )


def attendance(
    connection: Connection, quarter: Quarter, zone: ZoneInfo
) -> dict[AttendanceLevel, list[AttendanceRow]]:
    """Bookings on the quarter's running sessions by status: by agency, sector, course, in all.

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
                _count(status.in_([s.value for s in statuses])).label(name)
                for name, statuses in _STATUS_COUNTS.items()
            ),
            func.coalesce(func.sum(BOOKING.c.charge_pence), 0).label("charges_pence"),
        )
        .select_from(_bookings_from())
        .where(_running(quarter, zone))
        .group_by(AGENCY.c.id, AGENCY.c.name, AGENCY.c.sector, COURSE.c.id, COURSE.c.title)
        .cte("attendance_fine")
    )
    no_shows = func.sum(fine.c.no_shows)
    expected = func.sum(fine.c.attended) + func.sum(fine.c.partly) + no_shows
    sums = [
        func.sum(fine.c[name]).label(name) for name in ("booked", *_STATUS_COUNTS, "charges_pence")
    ]
    rate = _ratio(no_shows, expected).label("no_show_rate")

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
            _attendance_row(row.name, row.sector if row.level == "agency" else None, row)
        )
    for rows in found.values():
        rows.sort(key=lambda r: r.group.casefold())
    if not found["all"]:
        found["all"].append(AttendanceRow("All", None, 0, 0, 0, 0, 0, 0, 0, 0, 0, None))
    return found


def response_rates(connection: Connection, quarter: Quarter, zone: ZoneInfo) -> list[ResponseRow]:
    """Per stage: invitations planned, sent (opened), started and finished."""
    status = INVITATION.c.status
    sent_condition = status.in_([s.value for s in SENT])
    finished = _count(status == InvitationStatus.FINISHED.value)
    started = _count(
        and_(
            sent_condition,
            or_(
                INVITATION.c.started_at.is_not(None),
                status == InvitationStatus.FINISHED.value,
            ),
        )
    )
    sent = _count(sent_condition)
    query = (
        select(
            INVITATION.c.stage,
            _count(status == InvitationStatus.PLANNED.value).label("planned"),
            sent.label("sent"),
            started.label("started"),
            finished.label("finished"),
            _ratio(started, sent).label("started_rate"),
            _ratio(finished, sent).label("finished_rate"),
        )
        .select_from(_invitations_from())
        .where(_running(quarter, zone), status != InvitationStatus.WITHDRAWN.value)
        .group_by(INVITATION.c.stage)
    )
    found = {row.stage: row for row in connection.execute(query)}
    rows = []
    for stage in Stage:
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


def satisfaction(connection: Connection, quarter: Quarter, zone: ZoneInfo) -> list[SatisfactionRow]:
    """Mean rating per course and item (``satisfaction_*`` of the end-of-course survey).

    Each course's rows come first, then an "All courses" row per item.
    """
    joined, condition = _answers_from(Stage.END)
    value = ANSWER.c.value_num
    fine = (
        select(
            COURSE.c.id.label("course_id"),
            COURSE.c.title.label("course"),
            ANSWER.c.item,
            func.count(value).label("answers"),
            func.sum(value).label("total"),
            _count(value >= 4).label("satisfied"),
        )
        .select_from(joined)
        .where(
            condition,
            _running(quarter, zone),
            ANSWER.c.item.like("satisfaction%"),
            value.is_not(None),
        )
        .group_by(COURSE.c.id, COURSE.c.title, ANSWER.c.item)
        .cte("satisfaction_fine")
    )
    answers, satisfied = func.sum(fine.c.answers), func.sum(fine.c.satisfied)
    figures = [
        fine.c.item,
        answers.label("answers"),
        _ratio(func.sum(fine.c.total), answers).label("mean"),
        satisfied.label("satisfied"),
        _ratio(satisfied, answers).label("satisfied_share"),
    ]
    query = union_all(
        select(literal(0).label("last"), fine.c.course, *figures).group_by(
            fine.c.course_id, fine.c.course, fine.c.item
        ),
        select(literal(1).label("last"), literal("All courses").label("course"), *figures)
        .select_from(fine)
        .group_by(fine.c.item),
    ).order_by(text("last"), text("course"), text("item"))
    return [
        SatisfactionRow(
            course=row.course,
            item=row.item,
            answers=int(row.answers),
            mean=row.mean,
            satisfied=int(row.satisfied),
            satisfied_share=row.satisfied_share,
        )
        for row in connection.execute(query)
    ]


def _pairs(before: Stage, after: Stage, quarter: Quarter, zone: ZoneInfo) -> Select[Any]:
    """Matched pairs between two stages, summed per course, learning outcome and measure.

    Each answer of ``after`` is joined to the same booking's answer to the same item and
    outcome in ``before``.
    """
    inv_before, inv_after = INVITATION.alias("inv_before"), INVITATION.alias("inv_after")
    ans_before, ans_after = ANSWER.alias("ans_before"), ANSWER.alias("ans_after")

    def invitation_of(invitation: FromClause, stage: Stage) -> ColumnElement[bool]:
        """Joins the booking's invitation of ``stage``, unless it was withdrawn."""
        return and_(
            invitation.c.booking_id == BOOKING.c.id,
            invitation.c.stage == stage.value,
            invitation.c.status != InvitationStatus.WITHDRAWN.value,
        )

    joined = (
        SESSION.join(BOOKING, BOOKING.c.session_id == SESSION.c.id)
        .join(inv_before, invitation_of(inv_before, before))
        .join(inv_after, invitation_of(inv_after, after))
        .join(
            ans_before,
            and_(
                ans_before.c.invitation_id == inv_before.c.id,
                ans_before.c.measure.in_(MEASURES),
                ans_before.c.value_num.is_not(None),
            ),
        )
        .join(
            ans_after,
            and_(
                ans_after.c.invitation_id == inv_after.c.id,
                ans_after.c.measure == ans_before.c.measure,
                ans_after.c.item == ans_before.c.item,
                # "IS" on SQLite, which its index can look up (NULL matches NULL).
                ans_after.c.outcome_index.is_not_distinct_from(ans_before.c.outcome_index),
                ans_after.c.value_num.is_not(None),
            ),
        )
    )
    delta = ans_after.c.value_num - ans_before.c.value_num
    return (
        select(
            literal(f"{before.value} to {after.value}").label("transition"),
            SESSION.c.course_id.label("course_id"),
            ans_after.c.measure.label("measure"),
            ans_after.c.outcome_index.label("outcome_index"),
            func.count().label("pairs"),
            func.sum(ans_before.c.value_num).label("sum_before"),
            func.sum(ans_after.c.value_num).label("sum_after"),
            func.sum(delta).label("sum_change"),
            _count(delta > 0).label("improved"),
        )
        .select_from(joined)
        .where(_running(quarter, zone))
        .group_by(SESSION.c.course_id, ans_after.c.measure, ans_after.c.outcome_index)
    )


def change(
    connection: Connection, quarter: Quarter, zone: ZoneInfo
) -> tuple[list[ChangeRow], list[ChangeRow]]:
    """Mean change in knowledge and confidence over matched pairs, pre to end and end to impact.

    Returns the rows per course and measure (then "All courses" per measure), and the rows per
    course, learning outcome and measure. The pairs are found once; every level is a sum of
    the same per-outcome counts, in one statement.
    """
    fine = union_all(*(_pairs(b, a, quarter, zone) for b, a in TRANSITIONS)).cte("pairs_fine")
    pairs = func.sum(fine.c.pairs)
    improved = func.sum(fine.c.improved)
    figures = [
        fine.c.measure,
        pairs.label("pairs"),
        _ratio(func.sum(fine.c.sum_before), pairs).label("mean_before"),
        _ratio(func.sum(fine.c.sum_after), pairs).label("mean_after"),
        _ratio(func.sum(fine.c.sum_change), pairs).label("mean_change"),
        improved.label("improved"),
        _ratio(improved, pairs).label("improved_share"),
    ]

    def level(name: str, title: Any, course_id: Any, outcome_index: Any) -> Select[Any]:
        """The figures summed to one level, with the course and outcome they are of."""
        return select(
            literal(name).label("level"), fine.c.transition, title, course_id, outcome_index,
            *figures,
        )  # fmt: skip

    with_course = fine.join(COURSE, COURSE.c.id == fine.c.course_id)
    course_id = COURSE.c.id.label("course_id")
    no_index = literal(None, Integer()).label("outcome_index")
    query = union_all(
        level("outcome", COURSE.c.title, course_id, fine.c.outcome_index)
        .select_from(with_course)
        .group_by(
            fine.c.transition, COURSE.c.id, COURSE.c.title, fine.c.outcome_index, fine.c.measure
        ),
        level("course", COURSE.c.title, course_id, no_index)
        .select_from(with_course)
        .group_by(fine.c.transition, COURSE.c.id, COURSE.c.title, fine.c.measure),
        level(
            "all",
            literal("All courses").label("title"),
            literal(None, Integer()).label("course_id"),
            no_index,
        )
        .select_from(fine)
        .group_by(fine.c.transition, fine.c.measure),
    )
    outcomes = dict(connection.execute(select(COURSE.c.id, COURSE.c.learning_outcomes)).all())
    per_course: list[ChangeRow] = []
    per_outcome: list[ChangeRow] = []
    for row in connection.execute(query):
        index = row.outcome_index if row.level == "outcome" else None
        item = ChangeRow(
            course=row.title,
            measure=row.measure,
            transition=row.transition,
            outcome_index=index,
            outcome=_outcome_text(outcomes.get(row.course_id), index),
            pairs=int(row.pairs),
            mean_before=row.mean_before,
            mean_after=row.mean_after,
            mean_change=row.mean_change,
            improved=int(row.improved),
            improved_share=row.improved_share,
        )
        (per_outcome if row.level == "outcome" else per_course).append(item)
    order = {f"{b.value} to {a.value}": n for n, (b, a) in enumerate(TRANSITIONS)}

    def key(row: ChangeRow) -> tuple[Any, ...]:
        last = row.course == "All courses"
        return (
            order[row.transition],
            last,
            row.course.casefold(),
            row.outcome_index or 0,
            MEASURES.index(row.measure) if row.measure in MEASURES else 9,
        )

    return sorted(per_course, key=key), sorted(per_outcome, key=key)


def _outcome_text(outcomes: Any, index: int | None) -> str | None:
    if index is None or not isinstance(outcomes, list) or not 0 <= index < len(outcomes):
        return None
    return str(outcomes[index])


def applied(connection: Connection, quarter: Quarter, zone: ZoneInfo) -> list[AppliedRow]:
    """Per course, then for all courses: impact answers to ``applied`` and how many said yes."""
    joined, condition = _answers_from(Stage.IMPACT)
    value = ANSWER.c.value_num
    fine = (
        select(
            COURSE.c.id.label("course_id"),
            COURSE.c.title.label("course"),
            func.count(value).label("answers"),
            _count(value == 1).label("applied"),
        )
        .select_from(joined)
        .where(condition, _running(quarter, zone), ANSWER.c.item == "applied", value.is_not(None))
        .group_by(COURSE.c.id, COURSE.c.title)
        .cte("applied_fine")
    )
    answers, yes = func.sum(fine.c.answers), func.sum(fine.c.applied)
    figures = [answers.label("answers"), yes.label("applied"), _ratio(yes, answers).label("share")]
    parts: list[Select[*tuple[Any, ...]]] = [
        select(literal(0).label("last"), fine.c.course, *figures).group_by(
            fine.c.course_id, fine.c.course
        ),
        select(literal(1).label("last"), literal("All courses").label("course"), *figures)
        .select_from(fine)
        .having(func.count() > 0),
    ]
    query = union_all(*parts).order_by(text("last"), text("course"))
    return [
        AppliedRow(row.course, int(row.answers), int(row.applied), row.share)
        for row in connection.execute(query)
    ]


def barriers(
    connection: Connection, quarter: Quarter, zone: ZoneInfo, labels: dict[str, str]
) -> tuple[list[BarrierRow], int]:
    """How often each barrier was chosen, and how many people answered the question."""
    joined, condition = _answers_from(Stage.IMPACT)
    value = ANSWER.c.value_json
    # Only lists count: an unanswered value may be stored as JSON null.
    if connection.dialect.name == "postgresql":
        is_list = func.json_typeof(value) == "array"
        elements = func.json_array_elements_text(value)
    else:
        is_list = func.json_type(value) == "array"
        elements = func.json_each(value)
    where = and_(condition, _running(quarter, zone), ANSWER.c.item == "barriers", is_list)
    answered = select(func.count()).select_from(joined).where(where).scalar_subquery()
    respondents = connection.execute(select(answered)).scalar_one()
    chosen = elements.table_valued("value").alias("chosen")
    if connection.dialect.name == "postgresql":
        chosen = elements.table_valued("value").render_derived(name="chosen")
    times = func.count().label("times")
    query = (
        select(chosen.c.value, times, _ratio(func.count(), answered).label("share"))
        .select_from(joined.join(chosen, true()))
        .where(where)
        .group_by(chosen.c.value)
        .order_by(times.desc(), chosen.c.value)
    )
    rows = [
        BarrierRow(
            key=str(row.value),
            label=labels.get(str(row.value), _humanise(str(row.value))),
            count=int(row.times),
            share=row.share,
        )
        for row in connection.execute(query)
    ]
    return rows, int(respondents)


def _example_condition(quarter: Quarter, zone: ZoneInfo) -> tuple[FromClause, ColumnElement[bool]]:
    joined, condition = _answers_from(Stage.IMPACT)
    text = func.trim(ANSWER.c.value_text)
    return joined, and_(
        condition,
        _running(quarter, zone),
        ANSWER.c.item == "example",
        ANSWER.c.value_text.is_not(None),
        text != "",
    )


# Names in free text --------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# UK numbers as people write them: 020 7946 0000, 07700 900123, +44 7700 900123.
_PHONE = re.compile(r"(?<![\w+])(?:\+44\s?\(?0?\)?\s?|0)\d(?:[\s-]?\d){8,9}(?!\w)")
NAME_MARK = "[name]"
# Capitalised words that are names as often as not, kept because an example uses them for time.
_TIME_WORDS = {
    *(m.casefold() for m in MONTHS),
    *(d.casefold() for d in calendar.day_name),
}


def _words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def _possessive(word: str) -> str | None:
    """``alice's`` to ``alice``; None when the word is not possessive."""
    return word[:-2] if len(word) > 3 and word[-2:] in ("'s", "’s") else None


class NameScrubber:
    """Takes the names of the people Evalbot knows, email addresses and phone numbers out of
    free text, each replaced by a mark such as ``[name]``.

    A person's name matches whole, or as first and last name, in any case; a single word
    matches when it is capitalised and is the first or last name of anyone known (so "Alice"
    alone goes too), unless it is a word of a course title, an agency's name or a month or
    day. Names Evalbot cannot know, such as a child's, are left: whoever shares an example
    further still reads it first.
    """

    def __init__(self, names: Iterable[str], keep: Iterable[str] = ()):
        self.phrases: set[tuple[str, ...]] = set()
        self.single: set[str] = set()
        for name in names:
            words = _words(name)
            if not words:
                continue
            self.phrases.add(tuple(words))
            if len(words) > 1:
                self.phrases.update({(words[0], words[1]), (words[0], words[-1])})
            self.single.update(word for word in words if len(word) > 1)
        kept = {word for text in keep for word in _words(text)} | _TIME_WORDS
        self.single -= kept
        self.longest = max((len(phrase) for phrase in self.phrases), default=0)

    def __call__(self, text: str) -> str:
        text = _EMAIL.sub("[email]", text)
        text = _PHONE.sub("[phone]", text)
        if not self.phrases:
            return text
        found = list(_WORD.finditer(text))
        out: list[str] = []
        copied = 0  # how much of the text is in out
        i = 0
        while i < len(found):
            span, possessive = self._match(text, found, i)
            if span:
                first, last = found[i], found[i + span - 1]
                out.append(text[copied : first.start()] + NAME_MARK)
                out.append(last[0][-2:] if possessive else "")
                copied = last.end()
                i += span
            else:
                i += 1
        out.append(text[copied:])
        return "".join(out)

    def _match(self, text: str, found: list[re.Match[str]], start: int) -> tuple[int, bool]:
        """How many words from ``start`` make a name (0: none), and whether it ends in 's."""
        for span in range(min(self.longest, len(found) - start), 1, -1):
            window = found[start : start + span]
            if any(text[a.end() : b.start()].strip() for a, b in pairwise(window)):
                continue  # only spaces may come between the words of a name
            words = tuple(m[0].casefold() for m in window)
            if words in self.phrases:
                return span, False
            ending = _possessive(words[-1])
            if ending and (*words[:-1], ending) in self.phrases:
                return span, True
        word = found[start][0]
        if not word[:1].isupper():
            return 0, False
        folded = word.casefold()
        if (folded,) in self.phrases or folded in self.single:
            return 1, False
        ending = _possessive(folded)
        if ending and ((ending,) in self.phrases or ending in self.single):
            return 1, True
        return 0, False


def name_scrubber(connection: Connection) -> NameScrubber:
    """A scrubber for the names of everyone in the database."""
    names = connection.execute(
        select(PERSON.c.name).where(PERSON.c.erased_at.is_(None)).distinct()
    ).scalars()
    keep = [
        *connection.execute(select(COURSE.c.title)).scalars(),
        *connection.execute(select(AGENCY.c.name)).scalars(),
        *(sector or "" for sector in connection.execute(select(AGENCY.c.sector)).scalars()),
    ]
    return NameScrubber((name for name in names if name), keep)


def examples(
    connection: Connection, quarter: Quarter, zone: ZoneInfo, *, per_course: int
) -> tuple[list[ExampleRow], int]:
    """The fullest ``per_course`` examples of each course, and how many there are in all.

    Only the course and the text, with the names in it taken out: never who wrote it.
    """
    joined, where = _example_condition(quarter, zone)
    rank = (
        func.row_number()
        .over(
            partition_by=COURSE.c.id,
            order_by=(func.length(ANSWER.c.value_text).desc(), ANSWER.c.id),
        )
        .label("rank")
    )
    ranked = (
        select(
            COURSE.c.title,
            func.trim(ANSWER.c.value_text).label("text"),
            rank,
            func.count().over().label("total"),
            func.count().over(partition_by=COURSE.c.id).label("course_examples"),
        )
        .select_from(joined)
        .where(where)
        .subquery()
    )
    query = (
        select(ranked.c.title, ranked.c.text, ranked.c.total, ranked.c.course_examples)
        .where(ranked.c.rank <= per_course)
        .order_by(ranked.c.title, ranked.c.rank)
    )
    rows = connection.execute(query).all()
    if not rows:
        return [], 0
    scrub = name_scrubber(connection)
    found = [ExampleRow(row.title, scrub(row.text), row.course_examples) for row in rows]
    return found, int(rows[0].total)


def all_examples(
    connection: Connection, quarter: Quarter, zone: ZoneInfo, *, smallest: int | None = None
) -> Iterator[ExampleRow]:
    """Every example of the quarter, by course, streamed, with the names in it taken out.

    With ``smallest`` (the anonymous edition), the examples of a course that has fewer than
    that many come last, under ``OTHER_COURSES`` rather than their course's title.
    """
    scrub = name_scrubber(connection)
    joined, where = _example_condition(quarter, zone)
    per_course = func.count().over(partition_by=COURSE.c.id)
    hidden = literal(False) if smallest is None else per_course < smallest
    query = (
        select(
            COURSE.c.title,
            func.trim(ANSWER.c.value_text).label("text"),
            per_course.label("course_examples"),
        )
        .select_from(joined)
        .where(where)
        .order_by(hidden, COURSE.c.title, ANSWER.c.answered_at, ANSWER.c.id)
    )
    for row in connection.execution_options(yield_per=2000).execute(query):
        example = ExampleRow(row.title, scrub(row.text), row.course_examples)
        yield example if smallest is None else _other_course(example, smallest)


OTHER_COURSES = "Other courses"


def _other_course(example: ExampleRow, smallest: int) -> ExampleRow:
    """An example under ``OTHER_COURSES`` when its course has too few to name it."""
    if example.course_examples >= smallest:
        return example
    return dataclasses.replace(example, course=OTHER_COURSES)


def manager(
    connection: Connection, quarter: Quarter, zone: ZoneInfo, labels: dict[str, str]
) -> list[ManagerRow]:
    """The managers' impact survey: for each scored or yes/no item, answers and mean."""
    joined, condition = _answers_from(Stage.MANAGER)
    value = ANSWER.c.value_num
    yes_no = _count(ANSWER.c.value_text.in_(["yes", "no"]))
    query = (
        select(
            ANSWER.c.item,
            func.count(value).label("answers"),
            (yes_no == func.count(value)).label("yes_no"),
            _avg(value).label("mean"),
        )
        .select_from(joined)
        .where(condition, _running(quarter, zone), value.is_not(None))
        .group_by(ANSWER.c.item)
        .order_by(ANSWER.c.item)
    )
    return [
        ManagerRow(
            item=row.item,
            label=labels.get(row.item, _humanise(row.item)),
            answers=int(row.answers),
            yes_no=bool(row.yes_no),
            mean=row.mean,
        )
        for row in connection.execute(query)
    ]


def issues(report: QuarterlyReport, *, now: datetime) -> list[IssueRow]:
    """What a board should notice: no-show rates above the alert rate, thin and cancelled runs."""
    threshold = report.no_show_alert_rate
    found: list[IssueRow] = []
    for kind, rows in (("Agency", report.by_agency), ("Course", report.by_course)):
        for row in rows:
            if row.no_show_rate is not None and row.no_show_rate > threshold:
                expected = row.attended + row.partly + row.no_shows
                found.append(
                    IssueRow(
                        kind=f"{kind} no-show rate",
                        subject=row.group,
                        detail=(
                            f"{_plural(row.no_shows, 'no-show', 'no-shows')} "
                            f"of {expected} expected "
                            f"({row.no_show_rate:.0%}, above the alert rate of {threshold:.0%})"
                        ),
                    )
                )
    for session_row in report.sessions:
        if session_row.status == SessionStatus.CANCELLED:
            found.append(
                IssueRow(
                    "Session cancelled",
                    f"{session_row.course} ({session_row.ref})",
                    _plural(session_row.bookings, "booking had", "bookings had") + " been made",
                )
            )
            continue
        came = session_row.attended + session_row.partly
        if (
            session_row.min_places is not None
            and session_row.starts_at < now
            and session_row.unmarked == 0
            and came < session_row.min_places
        ):
            found.append(
                IssueRow(
                    "Below the minimum",
                    f"{session_row.course} ({session_row.ref})",
                    f"{came} attended; the minimum is {session_row.min_places}",
                )
            )
        if session_row.starts_at < now and session_row.unmarked:
            found.append(
                IssueRow(
                    "Register not closed",
                    f"{session_row.course} ({session_row.ref})",
                    _plural(session_row.unmarked, "booking is", "bookings are") + " not yet marked",
                )
            )
    return found


# Labels from the survey definitions ------------------------------------------------------------


def item_labels(
    connection: Connection, stage: Stage, directory: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Question texts by item id, and option labels by option key, for one stage.

    From the definitions the invitations were sent with (the newest snapshot wins where
    versions disagree), else from the current definition file. Placeholders such as
    ``{delegate}`` read as words ("the delegate").
    """
    query = (
        select(DEFINITION.c.content)
        .where(DEFINITION.c.stage == stage.value)
        .order_by(DEFINITION.c.created_at, DEFINITION.c.id)
    )
    contents = [content for (content,) in connection.execute(query)]
    if not contents:
        from surveys.definitions import DefinitionError, load_definition

        try:
            contents = [load_definition(stage, directory).content]
        except (DefinitionError, OSError):
            contents = []
    questions: dict[str, str] = {}
    options: dict[str, str] = {}
    for content in contents:
        for question in _questions(content):
            key = question.get("id") or question.get("key")
            if isinstance(key, str) and isinstance(question.get("text"), str):
                questions[key] = _PLACEHOLDER.sub(_placeholder, question["text"])
            for value, label in _options(question.get("options")):
                options[value] = label
    return questions, options


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _placeholder(match: re.Match[str]) -> str:
    return {"delegate": "the delegate", "course": "the course", "outcome": "..."}.get(
        match[1], match[0]
    )


def _questions(content: Any) -> Iterator[dict[str, Any]]:
    if isinstance(content, dict):
        found = content.get("questions")
        if isinstance(found, list):
            for question in found:
                if isinstance(question, dict):
                    yield question
        for value in content.values():
            if isinstance(value, dict | list) and value is not found:
                yield from _questions(value)
    elif isinstance(content, list):
        for value in content:
            yield from _questions(value)


def _options(raw: Any) -> Iterator[tuple[str, str]]:
    if isinstance(raw, dict):
        for value, label in raw.items():
            yield str(value), str(label)
    elif isinstance(raw, list):
        for option in raw:
            if isinstance(option, dict):
                value = option.get("key", option.get("value", option.get("id")))
                label = option.get("label", option.get("text", value))
                if value is not None:
                    yield str(value), str(label)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _humanise(key: str) -> str:
    text = key.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The whole report ------------------------------------------------------------------------------


def quarterly_report(
    session: Session,
    quarter: Quarter,
    *,
    zone: ZoneInfo,
    now: datetime,
    no_show_alert_rate: float,
    examples_per_course: int = 3,
    definitions_dir: Path | None = None,
) -> QuarterlyReport:
    """Every figure of the quarterly report.

    When the session is bound to an engine, the longest queries (the matched pairs and the
    barriers) run on a connection of their own alongside the others: the
    database works on both at once, as SQLite lets go of Python while it runs a query. Both
    read committed data; a write landing between the two reads could show in one and not the
    other, as in any report run while the service works.
    """
    bind = session.get_bind()

    def answers_part(connection: Connection) -> dict[str, Any]:
        _, barrier_labels = item_labels(connection, Stage.IMPACT, definitions_dir)
        barrier_rows, respondents = barriers(connection, quarter, zone, barrier_labels)
        change_rows, outcome_rows = change(connection, quarter, zone)
        return {
            "barriers": barrier_rows,
            "barrier_respondents": respondents,
            "change": change_rows,
            "change_by_outcome": outcome_rows,
        }

    def own_connection() -> dict[str, Any]:
        assert isinstance(bind, Engine)
        with bind.connect() as connection:
            return answers_part(connection)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
        alongside = pool.submit(own_connection) if isinstance(bind, Engine) else None
        connection = session.connection()
        manager_labels, _ = item_labels(connection, Stage.MANAGER, definitions_dir)
        levels = attendance(connection, quarter, zone)
        parts: dict[str, Any] = {
            "overview": overview(connection, quarter, zone),
            "sessions": sessions(connection, quarter, zone),
            "responses": response_rates(connection, quarter, zone),
            "satisfaction": satisfaction(connection, quarter, zone),
            "applied": applied(connection, quarter, zone),
            "manager": manager(connection, quarter, zone, manager_labels),
        }
        parts["examples"], parts["example_count"] = examples(
            connection, quarter, zone, per_course=examples_per_course
        )
        parts.update(answers_part(connection) if alongside is None else alongside.result())
    report = QuarterlyReport(
        quarter=quarter,
        zone=zone,
        generated_at=now,
        no_show_alert_rate=no_show_alert_rate,
        totals=levels["all"][0],
        by_agency=levels["agency"],
        by_sector=levels["sector"],
        by_course=levels["course"],
        **parts,
    )
    report.issues = issues(report, now=now)
    return report


# The anonymous edition -------------------------------------------------------------------------

SMALLEST_GROUP = 5


def suppress_small_groups(
    report: QuarterlyReport, smallest: int = SMALLEST_GROUP
) -> QuarterlyReport:
    """The report with every survey figure that rests on fewer than ``smallest`` people left out.

    Someone who knows who was on a course (its trainer, a manager, a colleague) could read one
    person's own answers off a rating, a change or a yes given by one or two people. So in the
    anonymous edition a row of satisfaction, change, applying the learning or the managers' view
    from fewer people keeps its name but loses every figure (counts become 0, means None) and is
    marked ``suppressed``; the barriers go when fewer than ``smallest`` answered the question.
    The examples of a course with fewer than ``smallest`` of them are shown under "Other
    courses", so that a quotation cannot be traced through its course to the few who wrote.
    Attendance and response rates count bookings and surveys, not opinions, and stay. An "All
    courses" row goes too when the courses left out of it rest on between 1 and ``smallest - 1``
    people: otherwise subtracting the courses shown from it would give their figures back.

    The people behind a change row are not counted by the query (that would take a second
    pass over every pair): each person gives at most one pair per learning outcome, so the
    largest per-outcome number of pairs is a floor on how many people a row rests on.
    """
    copy = dataclasses.replace(report, smallest_group=smallest)

    def too_few(people: int, total: bool, hidden: int) -> bool:
        """Whether a row from ``people`` goes; a total also when what it hides is small."""
        return people < smallest or (total and 0 < hidden < smallest)

    hidden = _hidden(report.satisfaction, lambda r: (r.item,), lambda r: r.answers, smallest)
    copy.satisfaction = [
        dataclasses.replace(
            row, answers=0, mean=None, satisfied=0, satisfied_share=None, suppressed=True
        )
        if too_few(row.answers, row.course == "All courses", hidden.get((row.item,), 0))
        else row
        for row in report.satisfaction
    ]
    floor: dict[tuple[str, str, str], int] = {}
    for row in report.change_by_outcome:
        key = (row.course, row.transition, row.measure)
        floor[key] = max(floor.get(key, 0), row.pairs)
    for row in report.change:
        if row.course == "All courses":  # every course's people, from distinct bookings
            floor[(row.course, row.transition, row.measure)] = sum(
                people
                for (course, transition, measure), people in floor.items()
                if course != "All courses"
                and (transition, measure) == (row.transition, row.measure)
            )
    hidden_pairs = _hidden(
        report.change,
        lambda r: (r.transition, r.measure),
        lambda r: floor.get((r.course, r.transition, r.measure), 0),
        smallest,
    )

    def hide(row: ChangeRow) -> ChangeRow:
        return dataclasses.replace(
            row,
            pairs=0,
            mean_before=None,
            mean_after=None,
            mean_change=None,
            improved=0,
            improved_share=None,
            suppressed=True,
        )

    copy.change = [
        hide(row)
        if too_few(
            floor.get((row.course, row.transition, row.measure), 0),
            row.course == "All courses",
            hidden_pairs.get((row.transition, row.measure), 0),
        )
        else row
        for row in report.change
    ]
    # A course's figure sums its outcomes: with one outcome hidden, that figure less the others
    # would give it back, so a course hides all its outcomes or none.
    with_a_small_outcome = {
        (row.course, row.transition, row.measure)
        for row in report.change_by_outcome
        if 0 < row.pairs < smallest
    }
    copy.change_by_outcome = [
        hide(row)
        if row.pairs < smallest or (row.course, row.transition, row.measure) in with_a_small_outcome
        else row
        for row in report.change_by_outcome
    ]
    hidden = _hidden(report.applied, lambda r: (), lambda r: r.answers, smallest)
    copy.applied = [
        dataclasses.replace(row, answers=0, applied=0, share=None, suppressed=True)
        if too_few(row.answers, row.course == "All courses", hidden.get((), 0))
        else row
        for row in report.applied
    ]
    if report.barrier_respondents < smallest:
        copy.barriers = [
            dataclasses.replace(row, count=0, share=None, suppressed=True)
            for row in report.barriers
        ]
        copy.barrier_respondents = 0
    copy.manager = [
        dataclasses.replace(row, answers=0, mean=None, suppressed=True)
        if row.answers < smallest
        else row
        for row in report.manager
    ]
    # Other courses last, after the courses named (a stable sort keeps each one's order).
    copy.examples = sorted(
        (_other_course(example, smallest) for example in report.examples),
        key=lambda example: example.course == OTHER_COURSES,
    )
    return copy


def _hidden(
    rows: Sequence[Any],
    group: Callable[[Any], tuple[str, ...]],
    people: Callable[[Any], int],
    smallest: int,
) -> dict[tuple[str, ...], int]:
    """For each group of rows (an item, a transition and measure), how many people the course
    rows left out rest on: what an "All courses" row would give away."""
    found: dict[tuple[str, ...], int] = {}
    for row in rows:
        if row.course != "All courses" and people(row) < smallest:
            found[group(row)] = found.get(group(row), 0) + people(row)
    return found


# The answers export ----------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "booking_ref",
    "course",
    "session_ref",
    "session_date",
    "agency",
    "sector",
    "stage",
    "survey_status",
    "question_key",
    "item",
    "measure",
    "outcome_index",
    "outcome",
    "value",
    "answered_at",
    "channel",
)


def export_answers(
    connection: Connection,
    *,
    zone: ZoneInfo,
    stages: Sequence[Stage] = (),
    date_from: date | None = None,
    date_to: date | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Every answer, one row each in ``EXPORT_COLUMNS`` order, streamed.

    ``date_from`` and ``date_to`` (inclusive) are local dates of the session the answer's
    booking is on. No names: the booking ref links a row to the booking system's records.
    """
    query = (
        select(
            BOOKING.c.ref,
            COURSE.c.title,
            COURSE.c.learning_outcomes,
            SESSION.c.ref.label("session_ref"),
            SESSION.c.starts_at,
            AGENCY.c.name,
            AGENCY.c.sector,
            INVITATION.c.stage,
            INVITATION.c.status,
            ANSWER.c.question_key,
            ANSWER.c.item,
            ANSWER.c.measure,
            ANSWER.c.outcome_index,
            ANSWER.c.value_num,
            ANSWER.c.value_text,
            ANSWER.c.value_json,
            ANSWER.c.answered_at,
            ANSWER.c.channel,
        )
        .select_from(
            _answers_joined()
            .join(PERSON, PERSON.c.id == BOOKING.c.delegate_id)
            .outerjoin(AGENCY, AGENCY.c.id == PERSON.c.agency_id)
        )
        .order_by(SESSION.c.starts_at, BOOKING.c.ref, INVITATION.c.stage, ANSWER.c.question_key)
    )
    if stages:
        query = query.where(INVITATION.c.stage.in_([stage.value for stage in stages]))
    if date_from is not None:
        start = datetime.combine(date_from, time(0), tzinfo=zone)
        query = query.where(SESSION.c.starts_at >= start)
    if date_to is not None:
        end = datetime.combine(date_to, time(0), tzinfo=zone) + timedelta(days=1)
        query = query.where(SESSION.c.starts_at < end)
    for row in connection.execution_options(yield_per=5000).execute(query):
        yield (
            row.ref,
            row.title,
            row.session_ref,
            _utc(row.starts_at).astimezone(zone).date().isoformat(),
            row.name or "",
            row.sector or "",
            row.stage,
            row.status,
            row.question_key,
            row.item,
            row.measure or "",
            "" if row.outcome_index is None else row.outcome_index,
            _outcome_text(row.learning_outcomes, row.outcome_index) or "",
            _value(row.value_num, row.value_text, row.value_json),
            _utc(row.answered_at).astimezone(zone).isoformat(timespec="seconds"),
            row.channel,
        )


def _value(number: float | None, text: str | None, listed: Any) -> str:
    """One answer as text: the chosen keys joined by "; ", the text, or the number."""
    if isinstance(listed, list):
        return "; ".join(str(item) for item in listed)
    if text is not None:
        return text
    if number is None:
        return ""
    return str(int(number)) if float(number).is_integer() else str(number)
