"""The parts the answering engine (``surveys.engine``) is built of, the same for every channel.

A question as a channel shows it, the steps a definition's questions become for a course's
outcomes, what is wrong with an answer, whether a survey is open, and the statement that saves
an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session

from surveys.definitions import Definition, Kind, Question, fill
from surveys.models import Answer, InvitationStatus, SurveyInvitation
from surveys.text import clean_text

Value = str | list[str] | None


class AnswerError(ValueError):
    """An answer that cannot be taken; the message is written for the person answering."""

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.message = message
        self.key = key


class SurveyClosed(AnswerError):
    """The survey cannot be answered now: not open yet, closed, withdrawn or finished."""


class UnknownQuestion(AnswerError):
    """The key names no question that applies to this survey (now)."""


@dataclass(frozen=True)
class QuestionView:
    """One question as a channel shows it."""

    key: str  # the answer's question_key: the id, or "<id>.<n>" for the n-th outcome
    item: str  # the question's id
    kind: str  # scale, single, multiple, yesno, text
    text: str
    hint: str | None
    options: list[tuple[str, str]]  # (value, label); scale values are "1".."5"
    optional: bool
    min_label: str | None
    max_label: str | None
    max_length: int | None
    position: int  # 1-based, among the questions that apply now
    total: int
    measure: str | None = None
    outcome_index: int | None = None
    answer: Value = None  # the saved answer, to show it chosen again
    answered: bool = False  # True also for a skipped optional question


@dataclass(frozen=True)
class AnswerRecord:
    """A saved answer, as read for showing and branching (rows are written through the ORM)."""

    key: str
    item: str
    value_num: float | None
    value_text: str | None
    value_json: list[str] | None


@dataclass(frozen=True)
class Step:
    key: str
    question: Question
    outcome_index: int | None
    text: str
    hint: str | None


def stored_value(question: Question, answer: Answer | AnswerRecord) -> Value:
    """An answer row as the value a person gave: "4", "yes", an option key, keys, or text."""
    if question.kind is Kind.MULTIPLE:
        return list(answer.value_json) if answer.value_json is not None else None
    if question.kind is Kind.SCALE:
        return str(round(answer.value_num)) if answer.value_num is not None else None
    return answer.value_text


# --- steps ---------------------------------------------------------------------------------


_EXPANSIONS: dict[tuple[str, tuple[str, ...], str, str], tuple[tuple[Step, ...], ...]] = {}


def expansions(
    definition: Definition, outcomes: tuple[str, ...], names: dict[str, str]
) -> tuple[tuple[Step, ...], ...]:
    """Each question as the steps it becomes for these outcomes and names, before conditions.

    The same course gives the same steps to all its delegates, so they are worked out once.
    """
    delegate = names["delegate"] if definition.uses_delegate else ""
    key = (definition.version, outcomes, names["course"], delegate)
    found = _EXPANSIONS.get(key)
    if found is None:
        found = tuple(_expand(question, outcomes, names) for question in definition.questions)
        if len(_EXPANSIONS) >= 4096:
            _EXPANSIONS.clear()
        _EXPANSIONS[key] = found
    return found


def _expand(
    question: Question, outcomes: tuple[str, ...], names: dict[str, str]
) -> tuple[Step, ...]:
    if not question.per_outcome or not outcomes:
        text = question.text_without_outcomes if question.per_outcome else question.text
        hint = fill(question.hint, names) if question.hint else None
        return (Step(question.id, question, None, fill(text or "", names), hint),)
    steps = []
    for index, outcome in enumerate(outcomes):
        values = {**names, "outcome": outcome}
        hint = fill(question.hint, values) if question.hint else None
        steps.append(
            Step(f"{question.id}.{index}", question, index, fill(question.text, values), hint)
        )
    return tuple(steps)


# --- availability --------------------------------------------------------------------------


def availability(invitation: SurveyInvitation, now: datetime) -> str:
    """``"open"``, ``"finished"``, ``"closed"`` (closed or withdrawn) or ``"not open"`` (yet)."""
    if invitation.status == InvitationStatus.FINISHED:
        return "finished"
    if invitation.status in (InvitationStatus.CLOSED, InvitationStatus.WITHDRAWN):
        return "closed"
    if now >= invitation.closes_at:
        return "closed"
    if now < invitation.opens_at:
        return "not open"
    return "open"


def ensure_open(invitation: SurveyInvitation, now: datetime) -> None:
    state = availability(invitation, now)
    if state == "finished":
        raise SurveyClosed("You have already finished this survey; thank you.")
    if state == "closed":
        raise SurveyClosed("This survey has closed, so it cannot take answers any more.")
    if state == "not open":
        raise SurveyClosed("This survey is not open yet.")


# --- checking and saving answers -----------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    value_num: float | None = None
    value_text: str | None = None
    value_json: list[str] | None = None


_REQUIRED = {
    Kind.SCALE: "Choose a number from {low} to {high}.",
    Kind.YESNO: "Choose yes or no.",
    Kind.SINGLE: "Choose one of the answers.",
    Kind.MULTIPLE: "Choose at least one answer.",
    Kind.TEXT: "Write your answer in the box.",
}
_NOT_AN_OPTION = "That is not one of the answers you can give here; choose one from the list."


def parse_value(question: Question, value: Value) -> Parsed:
    """Check a value against its question; raises ``AnswerError`` saying what to do instead."""
    if question.kind is Kind.MULTIPLE:
        values = [value] if isinstance(value, str) else list(value or [])
        values = [v.strip() for v in values if v and v.strip()]
    else:
        if isinstance(value, list):
            if len(value) > 1:
                raise AnswerError(_NOT_AN_OPTION)
            value = value[0] if value else None
        value = clean_text(value) if value is not None else None
        values = [value] if value else []
    if not values:
        if question.optional:
            return Parsed()
        low, high = question.scale_min, question.scale_max
        raise AnswerError(_REQUIRED[question.kind].format(low=low, high=high))
    allowed = [key for key, _ in question.choices()]
    if question.kind is Kind.MULTIPLE:
        if any(v not in allowed for v in values):
            raise AnswerError(_NOT_AN_OPTION)
        return Parsed(value_json=[key for key in allowed if key in values])
    given = values[0]
    if question.kind is Kind.TEXT:
        limit = question.max_length or 0
        if len(given) > limit:
            raise AnswerError(
                f"Your answer is {len(given):,} characters long; please shorten it to "
                f"{limit:,} characters or fewer."
            )
        return Parsed(value_text=given)
    if question.kind is Kind.YESNO:
        given = given.lower()
    if given not in allowed:
        raise AnswerError(_NOT_AN_OPTION)
    if question.kind is Kind.SCALE:
        return Parsed(value_num=float(int(given)))
    if question.kind is Kind.YESNO:
        return Parsed(value_num=1.0 if given == "yes" else 0.0, value_text=given)
    return Parsed(value_text=given)


_REPLACED = ("value_num", "value_text", "value_json", "channel", "answered_at")


@cache
def upsert(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT (invitation, question key) DO UPDATE, built once per dialect."""
    table = Answer.__table__  # type: ignore[attr-defined]
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=["invitation_id", "question_key"],
        set_={name: statement.excluded[name] for name in _REPLACED},
    )


def expire_loaded(session: Session, invitation: SurveyInvitation, keys: set[str]) -> None:
    """Answers written with SQL: make any already loaded in this session read afresh."""
    for loaded in list(session.identity_map.values()):
        if (
            isinstance(loaded, Answer)
            and loaded.invitation_id == invitation.id
            and loaded.question_key in keys
        ):
            session.expire(loaded)
