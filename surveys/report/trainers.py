"""The trainers' reports on the period's sessions (``Stage.TRAINER``): per session, how it went,
how many came by the trainer's count beside the register's, the issues, any safeguarding concern
raised and what to change.

The report reads the shipped definition's question ids (``TRAINER_ITEMS``): a partnership that
rewrites ``trainer.yaml`` keeps these ids for the questions it wants in the report. Each
session's answers are pivoted by the database; the free text then has the names in it taken out
(``NameScrubber``), as the delegates' examples do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from surveys.models import BookingStatus, InvitationStatus, Stage
from surveys.report.periods import Period
from surveys.report.query import (
    ANSWER,
    BOOKING,
    COURSE,
    INVITATION,
    PERSON,
    SESSION,
    average,
    count_where,
    ran_in,
)
from surveys.report.scrub import NameScrubber

TRAINER_ITEMS = {
    "went": "trainer_went",
    "counted": "trainer_attended",
    "issues": "trainer_issues",
    "concern": "trainer_concern",
    "concern_details": "trainer_concern_details",
    "changes": "trainer_changes",
}
_CAME = (BookingStatus.ATTENDED.value, BookingStatus.PARTLY_ATTENDED.value)


@dataclass(frozen=True)
class TrainerReportRow:
    """One session's report as the report shows it; free text with names taken out."""

    ref: str
    course: str
    starts_at: datetime
    trainer: str | None
    status: str  # finished, open, closed, or planned (not sent yet)
    went: int | None  # 1-5
    counted: str | None  # how many came, as the trainer counted (their words)
    registered: int  # attended or partly attended, by the register
    issues: str | None
    concern: str | None  # "yes" or "no"
    concern_details: str | None
    changes: str | None


@dataclass
class TrainerReports:
    """The section's figures: a row per session asked for a report, and the totals."""

    rows: list[TrainerReportRow] = field(default_factory=list)
    sent: int = 0  # reports whose invitation opened
    finished: int = 0
    concerns: int = 0  # sessions where the trainer said a concern was raised
    went_mean: float | None = None
    went_n: int = 0

    @property
    def finished_rate(self) -> float | None:
        return self.finished / self.sent if self.sent else None


def _answer(item: str, column: Any) -> Any:
    """One item's answer of the invitation (one row per item and invitation: max picks it)."""
    return func.max(case((ANSWER.c.item == item, column)))


def trainer_reports(
    connection: Connection, period: Period, zone: ZoneInfo, scrub: NameScrubber
) -> TrainerReports:
    """The trainers' reports on the sessions that ran in the period (not cancelled)."""
    status = INVITATION.c.status
    came = (
        select(func.count())
        .where(BOOKING.c.session_id == SESSION.c.id, BOOKING.c.status.in_(_CAME))
        .scalar_subquery()
    )
    text, number = ANSWER.c.value_text, ANSWER.c.value_num
    query = (
        select(
            SESSION.c.ref,
            COURSE.c.title,
            SESSION.c.starts_at,
            PERSON.c.name,
            status,
            came.label("registered"),
            _answer(TRAINER_ITEMS["went"], number).label("went"),
            *(
                _answer(TRAINER_ITEMS[key], text).label(key)
                for key in ("counted", "issues", "concern", "concern_details", "changes")
            ),
        )
        .select_from(
            INVITATION.join(SESSION, SESSION.c.id == INVITATION.c.session_id)
            .join(COURSE, COURSE.c.id == SESSION.c.course_id)
            .join(PERSON, PERSON.c.id == INVITATION.c.person_id)
            .outerjoin(ANSWER, ANSWER.c.invitation_id == INVITATION.c.id)
        )
        .where(
            ran_in(period, zone),
            INVITATION.c.stage == Stage.TRAINER.value,
            status != InvitationStatus.WITHDRAWN.value,
        )
        .group_by(
            INVITATION.c.id,
            SESSION.c.id,
            SESSION.c.ref,
            COURSE.c.title,
            SESSION.c.starts_at,
            PERSON.c.name,
            status,
        )
        .order_by(SESSION.c.starts_at, SESSION.c.ref)
    )
    report = TrainerReports()
    for row in connection.execute(query):
        report.rows.append(
            TrainerReportRow(
                ref=row.ref,
                course=row.title,
                starts_at=row.starts_at,
                trainer=row.name,
                status=row.status,
                went=round(row.went) if row.went is not None else None,
                counted=_clean(row.counted, scrub),
                registered=int(row.registered),
                issues=_clean(row.issues, scrub),
                concern=row.concern,
                concern_details=_clean(row.concern_details, scrub),
                changes=_clean(row.changes, scrub),
            )
        )
    return trainer_totals(connection, period, zone, report)


def trainer_totals(
    connection: Connection,
    period: Period,
    zone: ZoneInfo,
    report: TrainerReports | None = None,
) -> TrainerReports:
    """How many trainers of the period's sessions were asked for a report and sent one, their
    mean rating of how it went, and the sessions where a concern was raised (into ``report``,
    or a report without rows: the annual report counts these per quarter)."""
    report = report if report is not None else TrainerReports()
    status = INVITATION.c.status
    sent = status.in_(
        (
            InvitationStatus.OPEN.value,
            InvitationStatus.FINISHED.value,
            InvitationStatus.CLOSED.value,
        )
    )
    number = ANSWER.c.value_num
    totals = connection.execute(
        select(
            count_where(sent),
            count_where(status == InvitationStatus.FINISHED.value),
        )
        .select_from(INVITATION.join(SESSION, SESSION.c.id == INVITATION.c.session_id))
        .where(ran_in(period, zone), INVITATION.c.stage == Stage.TRAINER.value)
    ).one()
    report.sent, report.finished = int(totals[0]), int(totals[1])
    answers = ANSWER.join(INVITATION, INVITATION.c.id == ANSWER.c.invitation_id).join(
        SESSION, SESSION.c.id == INVITATION.c.session_id
    )
    in_period = and_(
        ran_in(period, zone),
        INVITATION.c.stage == Stage.TRAINER.value,
        INVITATION.c.status != InvitationStatus.WITHDRAWN.value,
    )
    went = ANSWER.c.item == TRAINER_ITEMS["went"]
    concern = and_(ANSWER.c.item == TRAINER_ITEMS["concern"], ANSWER.c.value_text == "yes")
    mean, went_n, concerns = connection.execute(
        select(
            average(case((went, number))),
            count_where(and_(went, number.is_not(None))),
            count_where(concern),
        )
        .select_from(answers)
        .where(in_period)
    ).one()
    report.went_mean = float(mean) if mean is not None else None
    report.went_n, report.concerns = int(went_n), int(concerns)
    return report


def _clean(value: str | None, scrub: NameScrubber) -> str | None:
    """Free text as the report quotes it: trimmed, names taken out; None when empty."""
    if value is None or not value.strip():
        return None
    return scrub(" ".join(value.split()))
