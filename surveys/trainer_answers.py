"""A session's trainer's report (``Stage.TRAINER``) as the staff console shows it: where it
stands, and each question answered with its answer in words, in the order the survey asks them.

The console is for the partnership's own staff, who act on what a trainer reports (a
safeguarding concern above all): the answers are shown as written. The quarterly report quotes
them with names taken out (``surveys.report.trainers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from surveys import engine
from surveys.answering import QuestionView
from surveys.models import Person, Stage, SurveyInvitation


@dataclass(frozen=True)
class TrainerAnswer:
    question: str
    answer: str  # in words: an option's label, "4 of 5", the text; "Not answered" if skipped


@dataclass(frozen=True)
class TrainerReportView:
    trainer: str
    status: str  # planned, open, finished, closed, withdrawn
    opens_at: datetime
    closes_at: datetime
    finished_at: datetime | None
    answers: list[TrainerAnswer] = field(default_factory=list)


def trainer_invitation(session: Session, session_id: int) -> SurveyInvitation | None:
    """The session's trainer's report invitation, if it was ever planned."""
    return session.exec(
        select(SurveyInvitation).where(
            SurveyInvitation.session_id == session_id,
            SurveyInvitation.stage == Stage.TRAINER,
        )
    ).first()


def session_trainer_report(
    session: Session, session_id: int, *, directory: Path | None = None
) -> TrainerReportView | None:
    """The session's trainer's report and its answers so far; None if it has none."""
    invitation = trainer_invitation(session, session_id)
    if invitation is None:
        return None
    trainer = session.get(Person, invitation.person_id)
    survey = engine.load_survey(session, invitation, directory=directory)
    answers = [
        TrainerAnswer(view.text, in_words(view))
        for view in survey.answered_questions()
        if view.answered
    ]
    return TrainerReportView(
        trainer=trainer.name if trainer is not None else "",
        status=str(invitation.status),
        opens_at=invitation.opens_at,
        closes_at=invitation.closes_at,
        finished_at=invitation.finished_at,
        answers=answers,
    )


def in_words(view: QuestionView) -> str:
    """An answer as a person reads it."""
    given = view.answer
    if given is None or given == "" or given == []:
        return "Not answered"
    if view.kind == "scale":
        top = view.options[-1][0] if view.options else "5"
        return f"{given} of {top}"
    labels = dict(view.options)
    if isinstance(given, list):
        return ", ".join(labels.get(value, value) for value in given)
    return labels.get(given, given)
