"""The evaluation's figures: satisfaction, matched-pair change, applying the learning, barriers
and the managers' view."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    String,
    and_,
    func,
    literal,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, FromClause, Select

from surveys.models import InvitationStatus, Stage
from surveys.report.periods import (
    Period,
)
from surveys.report.query import (
    ANSWER,
    BOOKING,
    COURSE,
    INVITATION,
    MEASURES,
    SESSION,
    TRANSITIONS,
    answers_from,
    average,
    count_where,
    humanise,
    outcome_text,
    ran_in,
    ratio,
)
from surveys.report.rows import (
    AppliedRow,
    BarrierRow,
    ChangeRow,
    ManagerRow,
    SatisfactionRow,
)


def satisfaction(connection: Connection, period: Period, zone: ZoneInfo) -> list[SatisfactionRow]:
    """Mean rating per course and item (``satisfaction_*`` of the end-of-course survey).

    Each course's rows come first, then an "All courses" row per item.
    """
    joined, condition = answers_from(Stage.END)
    value = ANSWER.c.value_num
    fine = (
        select(
            COURSE.c.id.label("course_id"),
            COURSE.c.title.label("course"),
            COURSE.c.course_type,
            ANSWER.c.item,
            func.count(value).label("answers"),
            func.sum(value).label("total"),
            count_where(value >= 4).label("satisfied"),
        )
        .select_from(joined)
        .where(
            condition,
            ran_in(period, zone),
            ANSWER.c.item.like("satisfaction%"),
            value.is_not(None),
        )
        .group_by(COURSE.c.id, COURSE.c.title, COURSE.c.course_type, ANSWER.c.item)
        .cte("satisfaction_fine")
    )
    answers, satisfied = func.sum(fine.c.answers), func.sum(fine.c.satisfied)
    figures = [
        fine.c.item,
        answers.label("answers"),
        ratio(func.sum(fine.c.total), answers).label("mean"),
        satisfied.label("satisfied"),
        ratio(satisfied, answers).label("satisfied_share"),
    ]
    query = union_all(
        select(literal(0).label("last"), fine.c.course, fine.c.course_type, *figures).group_by(
            fine.c.course_id, fine.c.course, fine.c.course_type, fine.c.item
        ),
        select(
            literal(1).label("last"),
            literal("All courses").label("course"),
            literal(None, String()).label("course_type"),
            *figures,
        )
        .select_from(fine)
        .group_by(fine.c.item),
    ).order_by(text("last"), text("course"), text("item"))
    return [
        SatisfactionRow(
            course=row.course,
            course_type=row.course_type,
            item=row.item,
            answers=int(row.answers),
            mean=row.mean,
            satisfied=int(row.satisfied),
            satisfied_share=row.satisfied_share,
        )
        for row in connection.execute(query)
    ]


def pair_join(before: Stage, after: Stage) -> tuple[FromClause, FromClause, FromClause]:
    """Sessions joined to their bookings' matched pairs between two stages: each answer of
    ``after`` joined to the same booking's answer to the same item and outcome in ``before``.

    Returns the join and the two answer aliases (before, after).
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
    return joined, ans_before, ans_after


def _pairs(before: Stage, after: Stage, period: Period, zone: ZoneInfo) -> Select[Any]:
    """Matched pairs between two stages, summed per course, learning outcome and measure."""
    joined, ans_before, ans_after = pair_join(before, after)
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
            count_where(delta > 0).label("improved"),
        )
        .select_from(joined)
        .where(ran_in(period, zone))
        .group_by(SESSION.c.course_id, ans_after.c.measure, ans_after.c.outcome_index)
    )


def change(
    connection: Connection, period: Period, zone: ZoneInfo
) -> tuple[list[ChangeRow], list[ChangeRow]]:
    """Mean change in knowledge and confidence over matched pairs, pre to end and end to impact.

    Returns the rows per course and measure (then "All courses" per measure), and the rows per
    course, learning outcome and measure. The pairs are found once; every level is a sum of
    the same per-outcome counts, in one statement.
    """
    fine = union_all(*(_pairs(b, a, period, zone) for b, a in TRANSITIONS)).cte("pairs_fine")
    pairs = func.sum(fine.c.pairs)
    improved = func.sum(fine.c.improved)
    figures = [
        fine.c.measure,
        pairs.label("pairs"),
        ratio(func.sum(fine.c.sum_before), pairs).label("mean_before"),
        ratio(func.sum(fine.c.sum_after), pairs).label("mean_after"),
        ratio(func.sum(fine.c.sum_change), pairs).label("mean_change"),
        improved.label("improved"),
        ratio(improved, pairs).label("improved_share"),
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
            outcome=outcome_text(outcomes.get(row.course_id), index),
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


def applied(connection: Connection, period: Period, zone: ZoneInfo) -> list[AppliedRow]:
    """Per course, then for all courses: impact answers to ``applied`` and how many said yes."""
    joined, condition = answers_from(Stage.IMPACT)
    value = ANSWER.c.value_num
    fine = (
        select(
            COURSE.c.id.label("course_id"),
            COURSE.c.title.label("course"),
            func.count(value).label("answers"),
            count_where(value == 1).label("applied"),
        )
        .select_from(joined)
        .where(condition, ran_in(period, zone), ANSWER.c.item == "applied", value.is_not(None))
        .group_by(COURSE.c.id, COURSE.c.title)
        .cte("applied_fine")
    )
    answers, yes = func.sum(fine.c.answers), func.sum(fine.c.applied)
    figures = [answers.label("answers"), yes.label("applied"), ratio(yes, answers).label("share")]
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
    connection: Connection, period: Period, zone: ZoneInfo, labels: dict[str, str]
) -> tuple[list[BarrierRow], int]:
    """How often each barrier was chosen, and how many people answered the question."""
    joined, condition = answers_from(Stage.IMPACT)
    value = ANSWER.c.value_json
    # Only lists count: an unanswered value may be stored as JSON null.
    if connection.dialect.name == "postgresql":
        is_list = func.json_typeof(value) == "array"
        elements = func.json_array_elements_text(value)
    else:
        is_list = func.json_type(value) == "array"
        elements = func.json_each(value)
    where = and_(condition, ran_in(period, zone), ANSWER.c.item == "barriers", is_list)
    answered = select(func.count()).select_from(joined).where(where).scalar_subquery()
    respondents = connection.execute(select(answered)).scalar_one()
    chosen = elements.table_valued("value").alias("chosen")
    if connection.dialect.name == "postgresql":
        chosen = elements.table_valued("value").render_derived(name="chosen")
    times = func.count().label("times")
    query = (
        select(chosen.c.value, times, ratio(func.count(), answered).label("share"))
        .select_from(joined.join(chosen, true()))
        .where(where)
        .group_by(chosen.c.value)
        .order_by(times.desc(), chosen.c.value)
    )
    rows = [
        BarrierRow(
            key=str(row.value),
            label=labels.get(str(row.value), humanise(str(row.value))),
            count=int(row.times),
            share=row.share,
        )
        for row in connection.execute(query)
    ]
    return rows, int(respondents)


def manager(
    connection: Connection, period: Period, zone: ZoneInfo, labels: dict[str, str]
) -> list[ManagerRow]:
    """The managers' impact survey: for each scored or yes/no item, answers and mean."""
    joined, condition = answers_from(Stage.MANAGER)
    value = ANSWER.c.value_num
    yes_no = count_where(ANSWER.c.value_text.in_(["yes", "no"]))
    query = (
        select(
            ANSWER.c.item,
            func.count(value).label("answers"),
            (yes_no == func.count(value)).label("yes_no"),
            average(value).label("mean"),
        )
        .select_from(joined)
        .where(condition, ran_in(period, zone), value.is_not(None))
        .group_by(ANSWER.c.item)
        .order_by(ANSWER.c.item)
    )
    return [
        ManagerRow(
            item=row.item,
            label=labels.get(row.item, humanise(row.item)),
            answers=int(row.answers),
            yes_no=bool(row.yes_no),
            mean=row.mean,
        )
        for row in connection.execute(query)
    ]
