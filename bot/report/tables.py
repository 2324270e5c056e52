"""Every table of the quarterly report, from its figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.report.cells import (
    STAGE_NAMES,
    Column,
    Fewer,
    Table,
    plural,
    readable,
)
from surveys.report import (
    AppliedRow,
    AttendanceRow,
    ChangeRow,
    QuarterlyReport,
    SessionRow,
)
from surveys.report.offers import ALL_COURSES, OfferRow

# Tables ----------------------------------------------------------------------------------------


ATTENDANCE_COLUMNS = [
    Column("booked", "Booked", "int"),
    Column("attended", "Attended", "int"),
    Column("partly_attended", "Partly", "int"),
    Column("no_shows", "No-shows", "int"),
    Column("late_cancellations", "Late canc.", "int"),
    Column("cancellations", "Cancelled", "int"),
    Column("replaced", "Replaced", "int"),
    Column("not_marked", "Not marked", "int"),
    Column("charges_gbp", "Charges", "money"),
    Column("no_show_rate", "No-show rate", "pct"),
]


def attendance_values(row: AttendanceRow) -> list[Any]:
    return [
        row.booked,
        row.attended,
        row.partly,
        row.no_shows,
        row.late_cancellations,
        row.cancellations,
        row.replaced,
        row.unmarked,
        row.charges_pence,
        row.no_show_rate,
    ]


# The figures of a change table, after the columns that say which change it is.
CHANGE_COLUMNS = [
    Column("pairs", "Pairs", "int"),
    Column("mean_before", "Before", "mean"),
    Column("mean_after", "After", "mean"),
    Column("mean_change", "Change", "change"),
    Column("improved", "Improved", "int"),
    Column("share_improved", "Share improved", "pct"),
]


# Sessions listed on the page; a quarter with more has them all in sessions.csv.
SESSIONS_SHOWN = 60


def _session_state(row: SessionRow, now: datetime) -> str:
    """What the course column adds for a session that did not run: cancelled, or to come."""
    if row.status == "cancelled":
        return " (cancelled)"
    return " (to come)" if row.starts_at > now else ""


def build_tables(report: QuarterlyReport, *, anonymous: bool) -> dict[str, Table]:
    """Every table of the report, by CSV name, in the order the report shows them."""
    tables: dict[str, Table] = {}
    smallest = report.smallest_group or 0
    # A suppressed row shows "<5" for its count and nothing for its other figures.
    few_note = (
        f" Figures from fewer than {smallest} people are left out of this anonymous edition "
        f"(shown as <{smallest})."
        if smallest
        else ""
    )

    def count(row: Any, value: Any) -> Any:
        return Fewer(smallest) if row.suppressed else value

    def figure(row: Any, value: Any) -> Any:
        return None if row.suppressed else value

    def change_figures(row: ChangeRow) -> list[Any]:
        """The row's values under ``CHANGE_COLUMNS``: "<5" and blanks when suppressed."""
        return [
            count(row, row.pairs),
            *(
                figure(row, value)
                for value in (
                    row.mean_before,
                    row.mean_after,
                    row.mean_change,
                    row.improved,
                    row.improved_share,
                )
            ),
        ]

    session_columns = [
        Column("starts_at", "Date", "date"),
        Column("course", "Course"),
        Column("session", "Session", nowrap=True),
        *([] if anonymous else [Column("trainer", "Trainer")]),
        Column("venue", "Venue", in_html=False),
        Column("status", "Status", in_html=False),
        Column("min_places", "Min", "int", in_html=False),
        Column("max_places", "Places", "int"),
        Column("bookings", "Booked", "int"),
        Column("holding_a_place", "Holding", "int", in_html=False),
        Column("cancelled", "Cancelled", "int"),
        Column("replaced", "Replaced", "int", in_html=False),
        Column("attended", "Attended", "int"),
        Column("partly_attended", "Partly", "int"),
        Column("no_shows", "No-shows", "int"),
        Column("not_marked", "Not marked", "int"),
    ]
    tables["sessions"] = Table(
        "sessions",
        "Sessions in the quarter",
        session_columns,
        [
            [
                row.starts_at,
                row.course + _session_state(row, report.generated_at),
                row.ref,
                *([] if anonymous else [row.trainer]),
                "online" if row.online else row.venue,
                row.status,
                row.min_places,
                row.max_places,
                row.bookings,
                row.active,
                row.cancelled,
                row.replaced,
                row.attended,
                row.partly,
                row.no_shows,
                row.unmarked,
            ]
            for row in report.sessions
        ],
        html_limit=SESSIONS_SHOWN,
        note=(
            "Every session that starts in the quarter. Booked counts every booking made, "
            "cancelled ones included; cancelled counts cancellations in time and late. The "
            "CSV adds the venue, the minimum, replacements and the bookings holding a place."
        ),
    )
    tables["attendance_by_agency"] = Table(
        "attendance_by_agency",
        "Attendance by agency",
        [Column("agency", "Agency"), Column("sector", "Sector"), *ATTENDANCE_COLUMNS],
        [[row.group, row.sector or "", *attendance_values(row)] for row in report.by_agency],
        totals=[["All agencies", "", *attendance_values(report.totals)]],
        note=(
            "Bookings on the quarter's sessions that ran, by the delegate's agency. "
            "The no-show rate is no-shows / (attended + partly attended + no-shows)."
        ),
    )
    tables["attendance_by_sector"] = Table(
        "attendance_by_sector",
        "Attendance by sector",
        [Column("sector", "Sector"), *ATTENDANCE_COLUMNS],
        [[readable(row.group), *attendance_values(row)] for row in report.by_sector],
        totals=[["All sectors", *attendance_values(report.totals)]],
    )
    tables["attendance_by_course"] = Table(
        "attendance_by_course",
        "Attendance by course",
        [Column("course", "Course"), *ATTENDANCE_COLUMNS],
        [[row.group, *attendance_values(row)] for row in report.by_course],
        totals=[["All courses", *attendance_values(report.totals)]],
    )
    tables["response_rates"] = Table(
        "response_rates",
        "Response rates by stage",
        [
            Column("stage", "Survey"),
            Column("not_yet_sent", "Not yet sent", "int"),
            Column("sent", "Sent", "int"),
            Column("started", "Started", "int"),
            Column("finished", "Finished", "int"),
            Column("started_rate", "Started %", "pct"),
            Column("finished_rate", "Finished %", "pct"),
        ],
        [
            [
                STAGE_NAMES.get(row.stage, row.stage),
                row.planned,
                row.sent,
                row.started,
                row.finished,
                row.started_rate,
                row.finished_rate,
            ]
            for row in report.responses
        ],
        note=(
            "Surveys of the bookings on the quarter's sessions. Sent: the survey has opened "
            "(and its invitation was sent); started: at least one answer; finished: completed. "
            "Rates are of those sent. Withdrawn surveys (cancelled bookings) are left out."
        ),
    )
    tables["satisfaction"] = Table(
        "satisfaction",
        "Satisfaction per course",
        [
            Column("course", "Course"),
            Column("course_type", "Type"),
            Column("item", "Item"),
            Column("answers", "Answers", "int"),
            Column("mean", "Mean (1-5)", "mean"),
            Column("rated_4_or_5", "Rated 4-5", "int"),
            Column("share_rated_4_or_5", "Share 4-5", "pct"),
        ],
        [
            [
                row.course,
                row.course_type or "",
                readable(row.item, "satisfaction_"),
                count(row, row.answers),
                figure(row, row.mean),
                figure(row, row.satisfied),
                figure(row, row.satisfied_share),
            ]
            for row in report.satisfaction
        ],
        in_html=False,  # shown as the pivot below
    )
    change_columns = [
        Column("course", "Course"),
        Column("measure", "Measure"),
        Column("stages", "Stages", in_html=False),
        *CHANGE_COLUMNS,
    ]

    def change_values(row: ChangeRow) -> list[Any]:
        return [row.course, readable(row.measure), row.transition, *change_figures(row)]

    for transition, title in (("pre to end", "Pre-course to end of course"),
                              ("end to impact", "End of course to impact")):  # fmt: skip
        name = "change_" + transition.replace(" to ", "_to_")
        rows = [r for r in report.change if r.transition == transition]
        tables[name] = Table(
            name,
            f"Change in knowledge and confidence: {title.lower()}",
            change_columns,
            [change_values(r) for r in rows if r.course != "All courses"],
            totals=[change_values(r) for r in rows if r.course == "All courses"],
            note=few_note.strip(),
        )
    tables["change_by_outcome"] = Table(
        "change_by_outcome",
        "Change by learning outcome",
        [
            Column("course", "Course"),
            Column("outcome_number", "Outcome", "int"),
            Column("outcome", "Learning outcome"),
            Column("measure", "Measure"),
            Column("stages", "Stages"),
            *CHANGE_COLUMNS,
        ],
        [
            [
                row.course,
                None if row.outcome_index is None else row.outcome_index + 1,
                row.outcome or "",
                readable(row.measure),
                row.transition,
                *change_figures(row),
            ]
            for row in report.change_by_outcome
        ],
        in_html=False,
    )

    def applied_values(row: AppliedRow) -> list[Any]:
        return [
            row.course,
            count(row, row.answers),
            figure(row, row.applied),
            figure(row, row.share),
        ]

    tables["impact_applied"] = Table(
        "impact_applied",
        "Applying the learning",
        [
            Column("course", "Course"),
            Column("answers", "Answered", "int"),
            Column("applied", "Applied", "int"),
            Column("share_applied", "Share applied", "pct"),
        ],
        [applied_values(r) for r in report.applied if r.course != "All courses"],
        totals=[applied_values(r) for r in report.applied if r.course == "All courses"],
        note="Impact surveys' answers to whether the learning has been used in practice."
        + few_note,
    )  # fmt: skip
    tables["impact_barriers"] = Table(
        "impact_barriers",
        "What got in the way",
        [
            Column("barrier", "Barrier"),
            Column("key", "Key", in_html=False),
            Column("times_chosen", "Times chosen", "int"),
            Column("share_of_those_answering", "Share of those answering", "pct"),
        ],
        [[r.label, r.key, count(r, r.count), figure(r, r.share)] for r in report.barriers],
        note=(
            f"Fewer than {smallest} people who had not applied their learning said what got in "
            "the way, too few to show in this anonymous edition."
            if any(r.suppressed for r in report.barriers)
            else f"{plural(report.barrier_respondents, 'person', 'people')} who had not applied "
            "their learning said what got in the way; each could choose several."
        ),
    )
    tables["manager_view"] = Table(
        "manager_view",
        "Managers' view",
        [
            Column("item", "Question"),
            Column("key", "Key", in_html=False),
            Column("answers", "Answers", "int"),
            Column("kind", "Kind", in_html=False),
            Column("share_yes_or_mean", "Share yes / mean", "mean"),
        ],
        [
            [r.label, r.item, count(r, r.answers), "yes/no" if r.yes_no else "rating",
             figure(r, r.mean)]
            for r in report.manager
        ],
        note="For a yes/no question the figure is the share answering yes (1.00 = all)."
        + few_note,
    )  # fmt: skip
    tables["place_offers"] = Table(
        "place_offers",
        "Places offered to the waiting list",
        [
            Column("course", "Course"),
            Column("places_freed", "Places freed", "int"),
            Column("places_offered", "Offered", "int"),
            Column("places_taken", "Taken", "int"),
            Column("fill_rate", "Fill rate", "pct"),
            Column("offers_made", "Offers made", "int"),
            Column("offers_accepted", "Accepted", "int"),
            Column("offers_lapsed", "Lapsed", "int"),
        ],
        [offer_values(r) for r in report.offers if r.course != ALL_COURSES],
        totals=[offer_values(r) for r in report.offers if r.course == ALL_COURSES],
        note="A place freed by a cancellation while someone was waiting, offered to the list one "
        "person at a time; the fill rate is the places taken over the places offered. An offer "
        "lapses when it is not accepted in time, and the place goes to the next person.",
    )
    tables["notable_issues"] = Table(
        "notable_issues",
        "Notable issues",
        [Column("kind", "Issue"), Column("subject", "Where"), Column("detail", "Detail")],
        [[r.kind, r.subject, r.detail] for r in report.issues],
    )
    return tables


def offer_values(row: OfferRow) -> list[Any]:
    return [
        row.course, row.places_freed, row.places_offered, row.places_taken, row.fill_rate,
        row.offers, row.accepted, row.lapsed,
    ]  # fmt: skip


def satisfaction_pivot(report: QuarterlyReport) -> tuple[list[str], list[list[str]]]:
    """Satisfaction as a course-by-item grid of "mean (answers)" for the HTML."""
    items = sorted({row.item for row in report.satisfaction})
    grid: dict[str, dict[str, str]] = {}
    for row in report.satisfaction:
        mean = "–" if row.mean is None else f"{row.mean:.2f}"
        answers = f"<{report.smallest_group}" if row.suppressed else str(row.answers)
        # A course of another type than face to face says so: its survey may be that type's.
        shown = row.course_type not in (None, "face to face")
        course = f"{row.course} ({row.course_type})" if shown else row.course
        grid.setdefault(course, {})[row.item] = f"{mean} ({answers})"
    headers = [readable(item, "satisfaction_") for item in items]
    rows = [[course, *(cells.get(item, "–") for item in items)] for course, cells in grid.items()]
    return headers, rows
