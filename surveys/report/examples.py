"""The impact survey's free-text examples, with the names in them taken out."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import (
    and_,
    func,
    literal,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, FromClause

from surveys.models import Stage
from surveys.report.periods import (
    Period,
)
from surveys.report.query import (
    ANSWER,
    COURSE,
    answers_from,
    ran_in,
)
from surveys.report.rows import (
    ExampleRow,
)
from surveys.report.scrub import (
    NameScrubber,
    name_scrubber,
)


def example_condition(period: Period, zone: ZoneInfo) -> tuple[FromClause, ColumnElement[bool]]:
    joined, condition = answers_from(Stage.IMPACT)
    text = func.trim(ANSWER.c.value_text)
    return joined, and_(
        condition,
        ran_in(period, zone),
        ANSWER.c.item == "example",
        ANSWER.c.value_text.is_not(None),
        text != "",
    )


def examples(
    connection: Connection,
    period: Period,
    zone: ZoneInfo,
    *,
    per_course: int,
    scrub: NameScrubber | None = None,
) -> tuple[list[ExampleRow], int]:
    """The fullest ``per_course`` examples of each course, and how many there are in all.

    Only the course and the text, with the names in it taken out (by ``scrub``, else by a
    scrubber of everyone in the database): never who wrote it.
    """
    joined, where = example_condition(period, zone)
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
    scrub = scrub or name_scrubber(connection)
    found = [ExampleRow(row.title, scrub(row.text), row.course_examples) for row in rows]
    return found, int(rows[0].total)


def all_examples(
    connection: Connection, period: Period, zone: ZoneInfo, *, smallest: int | None = None
) -> Iterator[ExampleRow]:
    """Every example of the period, by course, streamed, with the names in it taken out.

    With ``smallest`` (the anonymous edition), the examples of a course that has fewer than
    that many come last, under ``OTHER_COURSES`` rather than their course's title.
    """
    scrub = name_scrubber(connection)
    joined, where = example_condition(period, zone)
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
        yield example if smallest is None else other_course(example, smallest)


OTHER_COURSES = "Other courses"


def other_course(example: ExampleRow, smallest: int) -> ExampleRow:
    """An example under ``OTHER_COURSES`` when its course has too few to name it."""
    if example.course_examples >= smallest:
        return example
    return dataclasses.replace(example, course=OTHER_COURSES)
