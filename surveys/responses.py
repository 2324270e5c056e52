"""What a session's or a course's delegates answered: the staff console's Responses page and its
CSV.

- For each scale question (per learning outcome where it is asked per outcome), per stage: how many
  gave each value, and the mean.
- The matched pre-course to end-of-course change per measure and learning outcome: the same
  delegate's two answers to the same item, as the quarterly report pairs them
  (``surveys.report``): its n is the number of pairs.
- Every free-text answer (the accessibility comments included), with its question.
- How many were sent each survey, started it and finished it.

``surveys.responses_csv`` writes the same as one CSV.

The figures are counted by the database (GROUP BY); question texts come from the definitions the
invitations were sent with, else from the current definition files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlmodel import col

from surveys.definitions import (
    Definition,
    DefinitionError,
    Kind,
    Question,
    fill,
    load_definition,
    stored_definition,
)
from surveys.models import (
    Answer,
    Booking,
    Course,
    CourseSession,
    InvitationStatus,
    Stage,
    SurveyDefinitionVersion,
    SurveyInvitation,
)

INVITATION = SurveyInvitation.__table__  # type: ignore[attr-defined]
ANSWER = Answer.__table__  # type: ignore[attr-defined]
BOOKING = Booking.__table__  # type: ignore[attr-defined]
SESSION = CourseSession.__table__  # type: ignore[attr-defined]
STAGE_ORDER = [stage.value for stage in Stage]
SENT = (InvitationStatus.OPEN, InvitationStatus.FINISHED, InvitationStatus.CLOSED)


@dataclass(frozen=True)
class Scope:
    """One session (``session_id``) or every session of one course (``course_id``)."""

    title: str
    course_id: int
    session_id: int | None = None
    outcomes: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return f"session-{self.session_id}" if self.session_id else f"course-{self.course_id}"


@dataclass(frozen=True)
class StageCounts:
    stage: str
    sent: int
    started: int
    finished: int


@dataclass(frozen=True)
class ScaleRow:
    stage: str
    question: str
    outcome: str | None
    answers: int
    mean: float | None
    counts: tuple[tuple[int, int], ...]  # (value, how many), every value of the scale


@dataclass(frozen=True)
class ChangeRow:
    measure: str
    outcome: str | None  # None: every learning outcome together
    pairs: int
    mean_before: float | None
    mean_after: float | None
    mean_change: float | None


@dataclass(frozen=True)
class TextAnswer:
    stage: str
    question: str
    outcome: str | None
    session_ref: str
    text: str
    answered_at: datetime


@dataclass
class Responses:
    scope: Scope
    stages: list[StageCounts] = field(default_factory=list)
    scales: list[ScaleRow] = field(default_factory=list)
    change: list[ChangeRow] = field(default_factory=list)
    texts: list[TextAnswer] = field(default_factory=list)


def session_scope(session: Session, course_session: CourseSession) -> Scope:
    course = session.get(Course, course_session.course_id)
    title = f"{course.title if course else ''}, session {course_session.ref}"
    outcomes = tuple(course.learning_outcomes) if course else ()
    return Scope(title, course_session.course_id, course_session.id, outcomes)


def course_scope(course: Course) -> Scope:
    assert course.id is not None
    return Scope(course.title, course.id, None, tuple(course.learning_outcomes))


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    if scope.session_id is not None:
        return col(Booking.session_id) == scope.session_id
    return col(CourseSession.course_id) == scope.course_id


def _questions(
    session: Session, scope: Scope, directory: Path | None
) -> dict[tuple[str, str], Question]:
    """The questions by (stage, id): from the definitions sent in this scope, else the files."""
    rows = session.execute(
        select(SurveyDefinitionVersion)
        .where(
            col(SurveyDefinitionVersion.id).in_(
                select(col(SurveyInvitation.definition_id))
                .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
                .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
                .where(_in_scope(scope))
                .distinct()
            )
        )
        .order_by(col(SurveyDefinitionVersion.created_at))
    ).scalars()
    definitions: list[Definition] = [stored_definition(row) for row in rows]
    found: dict[tuple[str, str], Question] = {}
    for stage in Stage:
        try:
            definitions.insert(0, load_definition(stage, directory))
        except (DefinitionError, OSError):
            continue
    for definition in definitions:  # the newest snapshot wins
        for question in definition.questions:
            found[(str(definition.stage), question.id)] = question
    return found


def _outcome(scope: Scope, index: int | None) -> str | None:
    if index is None:
        return None
    if 0 <= index < len(scope.outcomes):
        return scope.outcomes[index]
    return f"learning outcome {index + 1}"


def _text(question: Question | None, item: str, scope: Scope) -> str:
    if question is None:
        return item.replace("_", " ").capitalize()
    template = question.text
    if question.per_outcome and question.text_without_outcomes and not scope.outcomes:
        template = question.text_without_outcomes
    return fill(
        template,
        {"outcome": "…", "course": scope.title, "delegate": "the delegate"},
    )


def _joined() -> Any:
    return (
        select()
        .select_from(Answer)
        .join(SurveyInvitation, col(SurveyInvitation.id) == col(Answer.invitation_id))
        .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
    )


def responses(session: Session, scope: Scope, *, directory: Path | None = None) -> Responses:
    """Every figure and free-text answer of the scope."""
    questions = _questions(session, scope, directory)
    result = Responses(scope)
    result.stages = _stage_counts(session, scope)
    result.scales = _scales(session, scope, questions)
    result.change = _change(session, scope)
    result.texts = _texts(session, scope, questions)
    return result


def _stage_counts(session: Session, scope: Scope) -> list[StageCounts]:
    status = col(SurveyInvitation.status)
    rows = session.execute(
        select(
            col(SurveyInvitation.stage),
            func.sum(case((status.in_(SENT), 1), else_=0)),
            func.sum(
                case(
                    (
                        and_(
                            status.in_(SENT),
                            col(SurveyInvitation.started_at).is_not(None),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ),
            func.sum(case((status == InvitationStatus.FINISHED, 1), else_=0)),
        )
        .join(Booking, col(Booking.id) == col(SurveyInvitation.booking_id))
        .join(CourseSession, col(CourseSession.id) == col(Booking.session_id))
        .where(_in_scope(scope))
        .group_by(SurveyInvitation.stage)
    ).all()
    counts = [
        StageCounts(str(stage), int(sent or 0), int(started or 0), int(finished or 0))
        for stage, sent, started, finished in rows
    ]
    return sorted(counts, key=lambda row: STAGE_ORDER.index(row.stage))


def _scales(
    session: Session, scope: Scope, questions: dict[tuple[str, str], Question]
) -> list[ScaleRow]:
    rows = session.execute(
        _joined()
        .add_columns(
            col(SurveyInvitation.stage),
            col(Answer.item),
            col(Answer.outcome_index),
            col(Answer.value_num),
            func.count(),
        )
        .where(_in_scope(scope), col(Answer.value_num).is_not(None))
        .group_by(
            col(SurveyInvitation.stage),
            col(Answer.item),
            col(Answer.outcome_index),
            col(Answer.value_num),
        )
    ).all()
    grouped: dict[tuple[str, str, int | None], dict[int, int]] = defaultdict(dict)
    for stage, item, index, value, count in rows:
        question = questions.get((str(stage), item))
        if question is None or question.kind is not Kind.SCALE:
            continue
        grouped[(str(stage), item, index)][int(value)] = int(count)
    out: list[ScaleRow] = []
    for (stage, item, index), counts in grouped.items():
        question = questions[(stage, item)]
        values = range(question.scale_min, question.scale_max + 1)
        answers = sum(counts.values())
        total = sum(value * count for value, count in counts.items())
        out.append(
            ScaleRow(
                stage=stage,
                question=_text(question, item, scope),
                outcome=_outcome(scope, index),
                answers=answers,
                mean=total / answers if answers else None,
                counts=tuple((value, counts.get(value, 0)) for value in values),
            )
        )
    return _ordered(out, questions, scope)


def _ordered(
    rows: list[ScaleRow], questions: dict[tuple[str, str], Question], scope: Scope
) -> list[ScaleRow]:
    """Stage by stage, in the order the survey asks, then by learning outcome."""
    position = {
        (stage, _text(question, question.id, scope)): n
        for n, ((stage, _), question) in enumerate(questions.items())
    }
    outcomes = {text: n for n, text in enumerate(scope.outcomes)}
    return sorted(
        rows,
        key=lambda row: (
            STAGE_ORDER.index(row.stage),
            position.get((row.stage, row.question), 10_000),
            outcomes.get(row.outcome or "", -1),
        ),
    )


def _change(session: Session, scope: Scope) -> list[ChangeRow]:
    """Matched pre to end pairs, per measure and learning outcome, and per measure overall."""
    pre_inv = INVITATION.alias("pre_inv")
    end_inv = INVITATION.alias("end_inv")
    pre_ans = ANSWER.alias("pre_ans")
    end_ans = ANSWER.alias("end_ans")
    joined = (
        BOOKING.join(
            SESSION,
            col(CourseSession.id) == col(Booking.session_id),
        )
        .join(
            pre_inv,
            and_(
                pre_inv.c.booking_id == col(Booking.id),
                pre_inv.c.stage == Stage.PRE.value,
                pre_inv.c.status != InvitationStatus.WITHDRAWN.value,
            ),
        )
        .join(
            end_inv,
            and_(
                end_inv.c.booking_id == col(Booking.id),
                end_inv.c.stage == Stage.END.value,
                end_inv.c.status != InvitationStatus.WITHDRAWN.value,
            ),
        )
        .join(
            pre_ans,
            and_(
                pre_ans.c.invitation_id == pre_inv.c.id,
                pre_ans.c.measure.is_not(None),
                pre_ans.c.value_num.is_not(None),
            ),
        )
        .join(
            end_ans,
            and_(
                end_ans.c.invitation_id == end_inv.c.id,
                end_ans.c.measure == pre_ans.c.measure,
                end_ans.c.item == pre_ans.c.item,
                end_ans.c.outcome_index.is_not_distinct_from(pre_ans.c.outcome_index),
                end_ans.c.value_num.is_not(None),
            ),
        )
    )
    rows = session.execute(
        select(
            end_ans.c.measure,
            end_ans.c.outcome_index,
            func.count(),
            func.avg(pre_ans.c.value_num),
            func.avg(end_ans.c.value_num),
            func.avg(end_ans.c.value_num - pre_ans.c.value_num),
        )
        .select_from(joined)
        .where(_in_scope(scope))
        .group_by(end_ans.c.measure, end_ans.c.outcome_index)
    ).all()
    per_outcome = [
        ChangeRow(str(measure), _outcome(scope, index), int(pairs), before, after, delta)
        for measure, index, pairs, before, after, delta in rows
    ]
    overall: list[ChangeRow] = []
    for measure in sorted({row.measure for row in per_outcome}):
        own = [row for row in per_outcome if row.measure == measure]
        pairs = sum(row.pairs for row in own)

        def weighted(values: Iterable[tuple[float | None, int]], pairs: int = pairs) -> float:
            return sum((value or 0.0) * n for value, n in values) / pairs

        overall.append(
            ChangeRow(
                measure,
                None,
                pairs,
                weighted((row.mean_before, row.pairs) for row in own),
                weighted((row.mean_after, row.pairs) for row in own),
                weighted((row.mean_change, row.pairs) for row in own),
            )
        )
    outcomes = {text: n for n, text in enumerate(scope.outcomes)}
    per_outcome.sort(key=lambda row: (row.measure, outcomes.get(row.outcome or "", 10_000)))
    return overall + [row for row in per_outcome if row.outcome is not None]


def _texts(
    session: Session, scope: Scope, questions: dict[tuple[str, str], Question]
) -> list[TextAnswer]:
    text_items = {(stage, qid) for (stage, qid), q in questions.items() if q.kind is Kind.TEXT}
    rows = session.execute(
        _joined()
        .add_columns(
            col(SurveyInvitation.stage),
            col(Answer.item),
            col(Answer.outcome_index),
            col(Answer.value_text),
            col(Answer.answered_at),
            col(CourseSession.ref),
        )
        .where(
            _in_scope(scope),
            col(Answer.value_text).is_not(None),
            col(Answer.value_text) != "",
            col(Answer.item).in_(sorted({qid for _, qid in text_items})),
        )
        .order_by(col(SurveyInvitation.stage), col(Answer.item), col(Answer.answered_at))
    ).all()
    return [
        TextAnswer(
            stage=str(stage),
            question=_text(questions.get((str(stage), item)), item, scope),
            outcome=_outcome(scope, index),
            session_ref=ref,
            text=text,
            answered_at=answered_at,
        )
        for stage, item, index, text, answered_at, ref in rows
        if (str(stage), item) in text_items
    ]
