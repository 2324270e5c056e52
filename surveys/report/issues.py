"""What a board should notice."""

from __future__ import annotations

from datetime import datetime

from surveys.models import SessionStatus
from surveys.report.query import (
    plural,
)
from surveys.report.rows import (
    IssueRow,
    QuarterlyReport,
)


def issues(report: QuarterlyReport, *, now: datetime) -> list[IssueRow]:
    """What a board should notice: no-show rates above the alert rate, thin and cancelled runs,
    registers left open, and sessions where the trainer reported a safeguarding concern."""
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
                            f"{plural(row.no_shows, 'no-show', 'no-shows')} "
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
                    plural(session_row.bookings, "booking had", "bookings had") + " been made",
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
                    plural(session_row.unmarked, "booking is", "bookings are") + " not yet marked",
                )
            )
    for trainer_row in report.trainers.rows if report.trainers is not None else []:
        if trainer_row.concern == "yes":
            found.append(
                IssueRow(
                    "Safeguarding concern raised",
                    f"{trainer_row.course} ({trainer_row.ref})",
                    "the trainer reported a concern raised or disclosed during the session "
                    "(the trainers' reports give the details)",
                )
            )
    return found
