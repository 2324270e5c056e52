"""The quarterly report's "Trainers' reports": the table (and its CSV, written like every other
through ``surveys.csv_safe``) of what each session's trainer reported."""

from __future__ import annotations

from bot.report.cells import Column, Table
from surveys.report.trainers import TrainerReports

STATUS_TEXT = {
    "finished": "Received",
    "open": "Awaited",
    "closed": "Not received",
    "planned": "Not asked yet",
}
ANSWER_TEXT = {"yes": "Yes", "no": "No"}


def trainer_table(reports: TrainerReports, *, anonymous: bool) -> Table:
    """One row per session asked for a report. The anonymous edition leaves out the trainer's
    name, as it does in the sessions table; the free text has had names taken out already."""
    columns = [
        Column("session_ref", "Session", nowrap=True),
        Column("course", "Course"),
        Column("starts_at", "Date", "date"),
        Column("trainer", "Trainer", in_html=not anonymous, in_csv=not anonymous),
        Column("report", "Report"),
        Column("went", "How it went (1-5)", "int"),
        Column("counted_by_trainer", "Came, by the trainer's count"),
        Column("attended_by_register", "Came, by the register", "int"),
        Column("issues", "Issues"),
        Column("concern_raised", "Safeguarding concern raised"),
        Column("concern_details", "What was raised and done"),
        Column("changes", "What to change"),
    ]
    rows = [
        [
            row.ref,
            row.course,
            row.starts_at,
            row.trainer,
            STATUS_TEXT.get(row.status, row.status),
            row.went,
            row.counted,
            row.registered,
            row.issues,
            ANSWER_TEXT.get(row.concern or "", row.concern),
            row.concern_details,
            row.changes,
        ]
        for row in reports.rows
    ]
    return Table(
        name="trainer_reports",
        title="Trainers' reports",
        columns=columns,
        rows=rows,
        note="Free text as the trainers wrote it, with the names of people Evalbot knows, email "
        "addresses and phone numbers replaced by [name], [email] and [phone].",
    )


def annual_trainer_table(counted: list[tuple[str, TrainerReports]]) -> Table:
    """The trainers' reports counted quarter by quarter, the year last."""
    columns = [
        Column("period", "Period", nowrap=True),
        Column("asked", "Trainers asked", "int"),
        Column("received", "Reports received", "int"),
        Column("received_rate", "Received, of those asked", "pct"),
        Column("went_mean", "How it went (mean, 1-5)", "mean"),
        Column("went_n", "Ratings", "int"),
        Column("concerns", "Sessions with a concern raised", "int"),
    ]
    rows = [
        [label, t.sent, t.finished, t.finished_rate, t.went_mean, t.went_n, t.concerns]
        for label, t in counted
    ]
    return Table(
        name="annual_trainer_reports",
        title="Trainers' reports",
        columns=columns,
        rows=rows[:-1],
        totals=rows[-1:],
        note="Sessions that ran (not cancelled), by the quarter they started in. The reports "
        "themselves, session by session, are in each quarter's report.",
    )
