"""The answering engine: one survey, one question at a time, the same for every channel.

For an invitation the engine works out which questions apply (a per-outcome question becomes one
question per learning outcome; a conditional one applies only when the earlier answer says so),
which is next, and how far the person has got. Every answer is saved as it is given, one row per
invitation and question key, so answering again replaces the earlier answer, and a person can stop
and carry on later, on another channel. A skipped optional question is saved as an answer with no
value, so that it is not asked again.

Reading never writes: the web form's GET (which mail scanners follow) only reads. The definition
is snapshotted on the first write (an answer), unless planning did it already. The parts it is
built of (question views, steps, checking an answer, availability) are in ``surveys.answering``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy import update as sa_update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from surveys.answering import (
    AnswerError,
    AnswerRecord,
    Parsed,
    QuestionView,
    Step,
    SurveyClosed,
    UnknownQuestion,
    Value,
    availability,
    ensure_open,
    expansions,
    expire_loaded,
    parse_value,
    stored_value,
    upsert,
)
from surveys.definitions import (
    Definition,
    cached_definition,
    fill,
    load_definition,
    snapshot,
    stored_definition,
)
from surveys.models import (
    Answer,
    Booking,
    Course,
    CourseSession,
    InvitationStatus,
    Person,
    SurveyDefinitionVersion,
    SurveyInvitation,
)

__all__ = [
    "AnswerError",
    "AnswerRecord",
    "Parsed",
    "QuestionView",
    "Survey",
    "SurveyClosed",
    "UnknownQuestion",
    "Value",
    "availability",
    "ensure_open",
    "finish",
    "load_survey",
    "next_question",
    "parse_value",
    "previous_question",
    "progress",
    "question",
    "stored_value",
    "submit_answer",
]


@dataclass
class Survey:
    """An invitation's survey, loaded once per request: definition, course and answers."""

    invitation: SurveyInvitation
    definition: Definition
    course_title: str
    session_starts_at: datetime
    session_ends_at: datetime
    delegate_name: str
    outcomes: list[str]
    answers: dict[str, AnswerRecord] = field(default_factory=dict)

    @property
    def names(self) -> dict[str, str]:
        return {"course": self.course_title, "delegate": self.delegate_name}

    @property
    def title(self) -> str:
        return fill(self.definition.title, self.names)

    @property
    def intro(self) -> str | None:
        return fill(self.definition.intro, self.names) if self.definition.intro else None

    @property
    def thanks(self) -> str | None:
        return fill(self.definition.thanks, self.names) if self.definition.thanks else None

    def steps(self) -> list[Step]:
        """The questions that apply, given the answers so far, in order."""
        found: list[Step] = []
        applicable: set[str] = set()
        expanded_questions = expansions(self.definition, tuple(self.outcomes), self.names)
        for question, expanded in zip(self.definition.questions, expanded_questions, strict=True):
            if not all(self._met(ref, accepted, applicable) for ref, accepted in question.when):
                continue
            applicable.add(question.id)
            found.extend(expanded)
        return found

    def _met(self, ref: str, accepted: tuple[str, ...], applicable: set[str]) -> bool:
        if ref not in applicable:
            return False
        answer = self.answers.get(ref)
        question = self.definition.question(ref)
        if answer is None or question is None:
            return False
        given = stored_value(question, answer)
        if isinstance(given, list):
            return any(value in accepted for value in given)
        return given in accepted

    def view(self, steps: list[Step], index: int) -> QuestionView:
        step = steps[index]
        question = step.question
        answer = self.answers.get(step.key)
        return QuestionView(
            key=step.key,
            item=question.id,
            kind=question.kind.value,
            text=step.text,
            hint=step.hint,
            options=question.choices(),
            optional=question.optional,
            min_label=question.min_label,
            max_label=question.max_label,
            max_length=question.max_length,
            position=index + 1,
            total=len(steps),
            measure=question.measure,
            outcome_index=step.outcome_index,
            answer=stored_value(question, answer) if answer is not None else None,
            answered=answer is not None,
        )

    def next_question(self) -> QuestionView | None:
        """The first question that applies and has no answer yet; None when all are answered."""
        steps = self.steps()
        for index, step in enumerate(steps):
            if step.key not in self.answers:
                return self.view(steps, index)
        return None

    def question(self, key: str) -> QuestionView:
        steps = self.steps()
        return self.view(steps, self.index_of(steps, key))

    def previous_question(self, key: str) -> QuestionView | None:
        steps = self.steps()
        index = self.index_of(steps, key)
        return self.view(steps, index - 1) if index > 0 else None

    def answered_questions(self) -> list[QuestionView]:
        """Every question that applies, with its answer: for a last look before finishing."""
        steps = self.steps()
        return [self.view(steps, index) for index in range(len(steps))]

    def progress(self) -> tuple[int, int]:
        """(questions answered, questions that apply)."""
        steps = self.steps()
        return sum(1 for step in steps if step.key in self.answers), len(steps)

    def index_of(self, steps: list[Step], key: str) -> int:
        for index, step in enumerate(steps):
            if step.key == key:
                return index
        raise UnknownQuestion("That question is not part of this survey.", key=key)


# --- loading -------------------------------------------------------------------------------


# Built once: the form runs them on every page, and building a statement costs more than SQLite
# takes to run it. What a page shows of the course and the person answering:
_SHOWN = (
    col(Course.title),
    col(Course.learning_outcomes),
    col(Course.course_type),
    col(CourseSession.starts_at),
    col(CourseSession.ends_at),
    col(Person.name),
    col(SurveyDefinitionVersion.version),
)
_CONTEXT = (
    sa_select(*_SHOWN)
    .select_from(Booking)
    .join(CourseSession, col(CourseSession.id) == Booking.session_id)
    .join(Course, col(Course.id) == CourseSession.course_id)
    .join(Person, col(Person.id) == Booking.delegate_id)
    .outerjoin(
        SurveyDefinitionVersion,
        col(SurveyDefinitionVersion.id) == bindparam("definition_id"),
    )
    .where(col(Booking.id) == bindparam("booking_id"))
)
# A session's own survey (the trainer's report): the session's course, and the trainer's name
# where a delegate's would be.
_SESSION_CONTEXT = (
    sa_select(*_SHOWN)
    .select_from(CourseSession)
    .join(Course, col(Course.id) == CourseSession.course_id)
    .join(Person, col(Person.id) == bindparam("person_id"))
    .outerjoin(
        SurveyDefinitionVersion,
        col(SurveyDefinitionVersion.id) == bindparam("definition_id"),
    )
    .where(col(CourseSession.id) == bindparam("session_id"))
)
_STARTED = (
    sa_update(SurveyInvitation)
    .where(
        col(SurveyInvitation.id) == bindparam("invitation_id"),
        col(SurveyInvitation.started_at).is_(None),
    )
    .values(started_at=bindparam("now"))
)
_ANSWERS = sa_select(
    col(Answer.question_key),
    col(Answer.item),
    col(Answer.value_num),
    col(Answer.value_text),
    col(Answer.value_json),
).where(col(Answer.invitation_id) == bindparam("invitation_id"))


def load_survey(
    session: Session,
    invitation: SurveyInvitation,
    *,
    directory: Path | None = None,
    write: bool = False,
) -> Survey:
    """The invitation's survey. With ``write``, snapshot its definition if nobody has yet.

    Two queries (the course and delegate, or for a session's own survey the course and trainer;
    and the answers), reading columns rather than whole rows.
    """
    connection = session.connection()
    if invitation.booking_id is None:
        row = connection.execute(
            _SESSION_CONTEXT,
            {
                "session_id": invitation.session_id,
                "person_id": invitation.person_id,
                "definition_id": invitation.definition_id,
            },
        ).one()
    else:
        row = connection.execute(
            _CONTEXT,
            {"booking_id": invitation.booking_id, "definition_id": invitation.definition_id},
        ).one()
    title, outcomes, course_type, starts_at, ends_at, delegate_name, version = row
    definition = _definition(session, invitation, directory, version, course_type, write=write)
    answers = connection.execute(_ANSWERS, {"invitation_id": invitation.id}).all()
    return Survey(
        invitation=invitation,
        definition=definition,
        course_title=title,
        session_starts_at=starts_at,
        session_ends_at=ends_at,
        delegate_name=delegate_name,
        outcomes=[str(outcome) for outcome in outcomes or []],
        answers={answer[0]: AnswerRecord(*answer) for answer in answers},
    )


def _definition(
    session: Session,
    invitation: SurveyInvitation,
    directory: Path | None,
    version: str | None,
    course_type: str | None,
    *,
    write: bool,
) -> Definition:
    """The snapshot the invitation was sent with, else the current definition for its kind of
    course (its variant, or the general one)."""
    if invitation.definition_id is not None:
        cached = cached_definition(version) if version is not None else None
        if cached is not None:
            return cached
        stored = session.get(SurveyDefinitionVersion, invitation.definition_id)
        assert stored is not None
        return stored_definition(stored)
    if not write:
        # Not sent with a snapshot yet: read the current file, store nothing.
        return load_definition(invitation.stage, directory, course_type)
    stored = snapshot(session, invitation.stage, directory, course_type)
    invitation.definition_id = stored.id
    session.add(invitation)
    return stored_definition(stored)


# --- the contract's functions --------------------------------------------------------------


def next_question(
    session: Session, invitation: SurveyInvitation, *, directory: Path | None = None
) -> QuestionView | None:
    """The next question to ask, or None when every question that applies has an answer."""
    return load_survey(session, invitation, directory=directory).next_question()


def question(
    session: Session, invitation: SurveyInvitation, key: str, *, directory: Path | None = None
) -> QuestionView:
    """The question with this key (raises ``UnknownQuestion`` if it does not apply)."""
    return load_survey(session, invitation, directory=directory).question(key)


def previous_question(
    session: Session, invitation: SurveyInvitation, key: str, *, directory: Path | None = None
) -> QuestionView | None:
    """The question before ``key``, to go back to; None before the first."""
    return load_survey(session, invitation, directory=directory).previous_question(key)


def progress(
    session: Session, invitation: SurveyInvitation, *, directory: Path | None = None
) -> tuple[int, int]:
    """(questions answered, questions that apply)."""
    return load_survey(session, invitation, directory=directory).progress()


def submit_answer(
    session: Session,
    invitation: SurveyInvitation,
    key: str,
    value: Value,
    *,
    now: datetime,
    channel: str,
    directory: Path | None = None,
) -> Survey:
    """Save one answer, replacing any earlier answer to the same question.

    ``value`` is the option's value (``"4"``, ``"yes"``, an option key), a list of keys for a
    multiple-choice question, or the text; None or empty skips an optional question. Raises
    ``AnswerError`` (or ``SurveyClosed``, ``UnknownQuestion``) with a message for the person.

    Returns the survey as it stands after the answer (with it, and without any answers it made
    no longer apply), so a channel can show the next question without loading it again.
    """
    ensure_open(invitation, now)
    survey = load_survey(session, invitation, directory=directory, write=True)
    steps = survey.steps()
    step = steps[survey.index_of(steps, key)]
    fields = parse_value(step.question, value)
    _save(session, invitation, step, fields, now=now, channel=channel, survey=survey)
    if invitation.started_at is None:
        session.connection().execute(_STARTED, {"invitation_id": invitation.id, "now": now})
        set_committed_value(invitation, "started_at", now)
    if step.question.id in survey.definition.deciders:
        _forget_unasked(session, survey)
    session.flush()
    return survey


def finish(
    session: Session,
    invitation: SurveyInvitation,
    *,
    now: datetime,
    directory: Path | None = None,
) -> Survey | None:
    """Mark the survey finished; raises ``AnswerError`` naming the first unanswered question.

    Returns the finished survey, for a channel's thanks, or None if it was finished already.
    """
    if invitation.status == InvitationStatus.FINISHED:
        return None
    ensure_open(invitation, now)
    survey = load_survey(session, invitation, directory=directory, write=True)
    missing = [
        step
        for step in survey.steps()
        if step.key not in survey.answers and not step.question.optional
    ]
    if missing:
        count = len(missing)
        raise AnswerError(
            f"{count} question{'s' if count > 1 else ''} still need{'' if count > 1 else 's'} "
            "an answer before you can finish.",
            key=missing[0].key,
        )
    invitation.status = InvitationStatus.FINISHED
    invitation.finished_at = now
    if invitation.started_at is None:
        invitation.started_at = now
    session.add(invitation)
    session.flush()
    return survey


# --- saving answers ------------------------------------------------------------------------


def _save(
    session: Session,
    invitation: SurveyInvitation,
    step: Step,
    parsed: Parsed,
    *,
    now: datetime,
    channel: str,
    survey: Survey,
) -> None:
    """Insert the answer, or replace the one already there, in one statement.

    An upsert on (invitation, question key) keeps answering idempotent even when the same
    question is submitted twice at once, from two tabs or two channels.
    """
    session.connection().execute(
        upsert(session.get_bind().dialect.name),
        {
            "invitation_id": invitation.id,
            "question_key": step.key,
            "item": step.question.id,
            "measure": step.question.measure,
            "outcome_index": step.outcome_index,
            "value_num": parsed.value_num,
            "value_text": parsed.value_text,
            "value_json": parsed.value_json,
            "channel": channel,
            "answered_at": now,
        },
    )
    expire_loaded(session, invitation, {step.key})
    survey.answers[step.key] = AnswerRecord(
        step.key, step.question.id, parsed.value_num, parsed.value_text, parsed.value_json
    )


def _forget_unasked(session: Session, survey: Survey) -> None:
    """Drop answers to conditional questions that no longer apply (an earlier answer changed)."""
    asked = {step.key for step in survey.steps()}
    gone = set()
    for key, answer in survey.answers.items():
        question = survey.definition.question(answer.item)
        if question is not None and question.when and key not in asked:
            gone.add(key)
    if not gone:
        return
    for row in session.exec(
        select(Answer).where(
            Answer.invitation_id == survey.invitation.id, col(Answer.question_key).in_(gone)
        )
    ):
        session.delete(row)
    for key in gone:
        del survey.answers[key]
