"""The anonymous edition: figures that rest on too few people are left out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from surveys.report.breakdowns import hide_measures, hide_small_breakdowns
from surveys.report.examples import (
    OTHER_COURSES,
    other_course,
)
from surveys.report.rows import (
    AttendanceRow,
    ChangeRow,
    QuarterlyReport,
)
from surveys.report.trend import MeasureKey, measures, suppress_small

OTHER_AGENCIES = "Other agencies"
OTHER_SECTORS = "Other sectors"


def suppress_small_groups(report: QuarterlyReport, smallest: int) -> QuarterlyReport:
    """The report with every survey figure that rests on fewer than ``smallest`` people left out.

    Someone who knows who was on a course (its trainer, a manager, a colleague) could read one
    person's own answers off a rating, a change or a yes given by one or two people. So in the
    anonymous edition a row of satisfaction, change, applying the learning or the managers' view
    from fewer people keeps its name but loses every figure (counts become 0, means None) and is
    marked ``suppressed``; the barriers go when fewer than ``smallest`` answered the question.
    The examples of a course with fewer than ``smallest`` of them are shown under "Other
    courses", so that a quotation cannot be traced through its course to the few who wrote.
    Response rates count surveys, not opinions, and stay. Attendance stays too, but not for an
    agency or sector with fewer than ``smallest`` bookings: one booking and one no-show (100%)
    names the person to whoever knows who was booked. Those rows are merged into "Other
    agencies" ("Other sectors"), and the notable issues no longer name them (``merge_small``).
    An "All courses" row goes too when the courses left out of it rest on between 1 and
    ``smallest - 1`` people: otherwise subtracting the courses shown from it would give their
    figures back.

    The people behind a change row are not counted by the query (that would take a second
    pass over every pair): each person gives at most one pair per learning outcome, so the
    largest per-outcome number of pairs is a floor on how many people a row rests on.
    """
    copy = dataclasses.replace(report, smallest_group=smallest)
    copy.previous = report.previous and suppress_small(report.previous, smallest)
    copy.breakdowns = hide_small_breakdowns(report.breakdowns, smallest)
    if report.voices is not None and 0 < report.voices.accessibility_answers < smallest:
        copy.voices = dataclasses.replace(
            report.voices, accessibility={}, accessibility_answers=0, suppressed={"accessibility"}
        )
    copy.by_agency, merged = merge_small(report.by_agency, smallest, OTHER_AGENCIES)
    copy.by_sector, _ = merge_small(report.by_sector, smallest, OTHER_SECTORS)
    copy.issues = [
        issue
        for issue in report.issues
        if not (issue.kind.startswith("Agency") and issue.subject in merged)
    ]

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
    if report.summary is not None:
        # The quarter's headline survey figures are its "All courses" rows: hidden where those are.
        totals_hidden: list[MeasureKey] = [
            (row.transition, row.measure)
            for row in copy.change
            if row.course == "All courses" and row.suppressed
        ]
        if any(row.suppressed for row in copy.satisfaction if row.course == "All courses"):
            totals_hidden += ["satisfaction", "satisfied"]
        if any(row.suppressed for row in copy.applied if row.course == "All courses"):
            totals_hidden.append("applied")
        copy.summary = suppress_small(report.summary, smallest, hide=totals_hidden)
        copy.breakdowns = hide_measures(
            copy.breakdowns, (key for key, m in measures(copy.summary).items() if m.suppressed)
        )
    # Other courses last, after the courses named (a stable sort keeps each one's order).
    copy.examples = sorted(
        (other_course(example, smallest) for example in report.examples),
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


def merge_small(
    rows: Sequence[AttendanceRow], smallest: int, other: str
) -> tuple[list[AttendanceRow], set[str]]:
    """The rows with fewer than ``smallest`` bookings merged into one row named ``other``,
    and the names merged.

    When the merged row would itself hold fewer than ``smallest`` bookings, the smallest rows
    still shown join it until it holds enough (or every row is in it): the total row, less the
    rows shown, would otherwise give the small ones back.
    """
    ordered = sorted(rows, key=lambda row: (row.booked, row.group.casefold()))
    small = [row for row in ordered if 0 < row.booked < smallest]
    shown = [row for row in ordered if row.booked >= smallest or row.booked == 0]
    if not small:
        return list(rows), set()
    while sum(row.booked for row in small) < smallest and any(row.booked for row in shown):
        small.append(shown.pop(next(i for i, row in enumerate(shown) if row.booked)))
    merged = _sum_rows(other, small)
    kept = [row for row in rows if row in shown]
    return [*kept, merged], {row.group for row in small}


def _sum_rows(group: str, rows: Sequence[AttendanceRow]) -> AttendanceRow:
    """One row adding up ``rows``; the no-show rate worked out again from the sums."""
    total = AttendanceRow(group, None, *(0,) * 9, None)
    for row in rows:
        total = dataclasses.replace(
            total,
            **{name: getattr(total, name) + getattr(row, name) for name in COUNTED},
        )
    expected = total.attended + total.partly + total.no_shows
    return dataclasses.replace(total, no_show_rate=total.no_shows / expected if expected else None)


COUNTED = (
    "booked",
    "attended",
    "partly",
    "no_shows",
    "late_cancellations",
    "cancellations",
    "replaced",
    "unmarked",
    "charges_pence",
)
