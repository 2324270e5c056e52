"""The answering engine: per-outcome questions, branching, idempotent answers, resuming, going back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select

from surveys import engine
from surveys.definitions import BUILTIN_DIR
from surveys.engine import AnswerError, SurveyClosed, UnknownQuestion
from surveys.models import (
    Answer,
    InvitationStatus,
    Stage,
    SurveyDefinitionVersion,
    SurveyInvitation,
)
from tests.conftest import utc

NOW = utc("2026-03-16 17:00")


def invite(session: Session, booking, stage: Stage, *, person=None, **extra) -> SurveyInvitation:
    fields = {
        "opens_at": NOW - timedelta(hours=1),
        "closes_at": NOW + timedelta(days=14),
        "status": InvitationStatus.OPEN,
        **extra,
    }
    invitation = SurveyInvitation(
        booking_id=booking.id,
        person_id=(person.id if person else booking.delegate_id),
        stage=stage,
        **fields,
    )
    session.add(invitation)
    session.commit()
    return invitation


def answers(session: Session, invitation: SurveyInvitation) -> dict[str, Answer]:
    rows = session.exec(select(Answer).where(Answer.invitation_id == invitation.id)).all()
    return {row.question_key: row for row in rows}


def answer_all(session, invitation, given: dict[str, object], channel: str = "web") -> None:
    for key, value in given.items():
        engine.submit_answer(session, invitation, key, value, now=NOW, channel=channel)  # type: ignore[arg-type]
    session.commit()


@pytest.fixture
def people(world):
    return world.standard()


def test_per_outcome_questions_are_asked_once_for_each_outcome(session, people):
    invitation = invite(session, people["alice_booking"], Stage.PRE)
    first = engine.next_question(session, invitation)
    assert first is not None
    assert (first.key, first.item, first.measure, first.outcome_index) == (
        "knowledge.0",
        "knowledge",
        "knowledge",
        0,
    )
    assert (
        first.text
        == "Before the course, how would you rate your knowledge of how to recognise the signs of neglect?"
    )
    assert (first.position, first.total) == (1, 7)
    assert first.options == [(str(n), str(n)) for n in range(1, 6)]
    assert (first.min_label, first.max_label) == ("Very little", "Very well")
    keys = [v.key for v in engine.load_survey(session, invitation).answered_questions()]
    assert keys == [
        "knowledge.0",
        "knowledge.1",
        "knowledge.2",
        "confidence.0",
        "confidence.1",
        "confidence.2",
        "expectations",
    ]
    third = engine.question(session, invitation, "confidence.2")
    assert (
        third.text
        == "How confident are you now that you can make a referral to children's social care?"
    )

    engine.submit_answer(session, invitation, "confidence.2", "4", now=NOW, channel="web")
    session.commit()
    row = answers(session, invitation)["confidence.2"]
    assert (row.item, row.measure, row.outcome_index, row.value_num) == (
        "confidence",
        "confidence",
        2,
        4.0,
    )


def test_a_course_without_outcomes_asks_about_the_course_as_a_whole(session, world):
    course = world.course("Online Safety", outcomes=[])
    course.learning_outcomes = []
    session.add(course)
    delegate = world.person("Eve Adeyemi", "eve@example.org")
    booking = world.booking(world.course_session(course, ref="OS-1"), delegate, None, "BK-9")
    session.commit()
    invitation = invite(session, booking, Stage.END)
    first = engine.next_question(session, invitation)
    assert first is not None and first.key == "knowledge" and first.outcome_index is None
    assert "the subject of Online Safety" in first.text
    engine.submit_answer(session, invitation, "knowledge", "3", now=NOW, channel="web")
    row = answers(session, invitation)["knowledge"]
    assert (row.measure, row.outcome_index, row.value_num) == ("knowledge", None, 3.0)


def test_barriers_only_when_learning_was_not_applied(session, people):
    invitation = invite(session, people["alice_booking"], Stage.IMPACT)
    assert engine.next_question(session, invitation).key == "applied"
    # applied, knowledge and confidence for 3 outcomes, further support
    assert engine.progress(session, invitation) == (0, 8)

    engine.submit_answer(session, invitation, "applied", "no", now=NOW, channel="web")
    following = engine.next_question(session, invitation)
    assert following.key == "barriers" and following.kind == "multiple"
    assert (following.position, following.total) == (2, 9)
    with pytest.raises(UnknownQuestion):
        engine.submit_answer(session, invitation, "example", "I did", now=NOW, channel="web")

    engine.submit_answer(session, invitation, "barriers", ["time", "other"], now=NOW, channel="web")
    assert engine.next_question(session, invitation).key == "barriers_other"
    engine.submit_answer(
        session, invitation, "barriers_other", "Staff shortages", now=NOW, channel="web"
    )
    session.commit()
    stored = answers(session, invitation)
    assert stored["applied"].value_num == 0.0 and stored["applied"].value_text == "no"
    assert stored["barriers"].value_json == ["time", "other"]

    # Changing the answer that decided them drops the answers that no longer apply.
    engine.submit_answer(session, invitation, "applied", "Yes", now=NOW, channel="web")
    session.commit()
    stored = answers(session, invitation)
    assert "barriers" not in stored and "barriers_other" not in stored
    assert stored["applied"].value_text == "yes" and stored["applied"].value_num == 1.0
    assert engine.next_question(session, invitation).key == "example"


def test_answering_again_replaces_the_answer(session, people):
    invitation = invite(session, people["alice_booking"], Stage.PRE)
    engine.submit_answer(session, invitation, "knowledge.0", "2", now=NOW, channel="web")
    session.commit()
    later = NOW + timedelta(minutes=5)
    engine.submit_answer(session, invitation, "knowledge.0", "4", now=later, channel="telegram")
    session.commit()
    rows = session.exec(select(Answer).where(Answer.invitation_id == invitation.id)).all()
    assert len(rows) == 1
    assert (rows[0].value_num, rows[0].channel, rows[0].answered_at) == (4.0, "telegram", later)
    assert invitation.started_at == NOW  # the first answer started it


def test_progress_is_kept_between_sessions_and_channels(engine_db_pair):
    make_session, invitation_id = engine_db_pair
    with make_session() as first:
        invitation = first.get(SurveyInvitation, invitation_id)
        answer_all(first, invitation, {"knowledge.0": "1", "knowledge.1": "2"}, channel="telegram")
    with make_session() as later:
        invitation = later.get(SurveyInvitation, invitation_id)
        view = engine.next_question(later, invitation)
        assert view.key == "knowledge.2" and view.position == 3
        assert engine.progress(later, invitation) == (2, 7)
        back = engine.previous_question(later, invitation, view.key)
        assert back.key == "knowledge.1" and back.answer == "2" and back.answered
        assert engine.previous_question(later, invitation, "knowledge.0") is None


@pytest.fixture
def engine_db_pair(engine, session, people):
    invitation = invite(session, people["alice_booking"], Stage.PRE)

    def make_session() -> Session:
        return Session(engine, expire_on_commit=False)

    return make_session, invitation.id


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("knowledge.0", None, "Choose a number from 1 to 5."),
        ("knowledge.0", "6", "That is not one of the answers you can give here"),
        ("knowledge.0", "3.5", "That is not one of the answers you can give here"),
        ("knowledge.0", ["2", "3"], "That is not one of the answers you can give here"),
        ("accessibility", "", "Choose one of the answers."),
        ("accessibility", "maybe", "That is not one of the answers you can give here"),
        ("will_do_differently", "   ", "Write your answer in the box."),
        (
            "will_do_differently",
            "x" * 1001,
            "Your answer is 1,001 characters long; please shorten it to 1,000",
        ),
    ],
)
def test_bad_answers_are_refused_with_a_reason(session, people, key, value, message):
    invitation = invite(session, people["alice_booking"], Stage.END)
    with pytest.raises(AnswerError) as caught:
        engine.submit_answer(session, invitation, key, value, now=NOW, channel="web")
    assert message in caught.value.message
    assert answers(session, invitation) == {}


def test_multiple_choice_checks_every_key(session, people):
    invitation = invite(session, people["alice_booking"], Stage.IMPACT)
    engine.submit_answer(session, invitation, "applied", "no", now=NOW, channel="web")
    with pytest.raises(AnswerError, match="Choose at least one answer"):
        engine.submit_answer(session, invitation, "barriers", [], now=NOW, channel="web")
    with pytest.raises(AnswerError, match="not one of the answers"):
        engine.submit_answer(
            session, invitation, "barriers", ["time", "money"], now=NOW, channel="web"
        )
    # Kept in the definition's order, once each.
    engine.submit_answer(
        session, invitation, "barriers", ["support", "time", "support"], now=NOW, channel="web"
    )
    assert answers(session, invitation)["barriers"].value_json == ["time", "support"]


def test_text_is_cleaned_and_an_optional_question_can_be_skipped(session, people):
    invitation = invite(session, people["alice_booking"], Stage.PRE)
    text = "  Spot neglect sooner\r\nand refer\x00 well  "
    engine.submit_answer(session, invitation, "expectations", text, now=NOW, channel="web")
    assert (
        answers(session, invitation)["expectations"].value_text
        == "Spot neglect sooner\nand refer well"
    )
    engine.submit_answer(session, invitation, "expectations", None, now=NOW, channel="web")
    skipped = answers(session, invitation)["expectations"]
    assert (skipped.value_text, skipped.value_num, skipped.value_json) == (None, None, None)
    view = engine.question(session, invitation, "expectations")
    assert view.answered and view.answer is None and view.optional


def test_finish_needs_every_required_answer(session, people):
    invitation = invite(session, people["chloe_booking"], Stage.PRE)
    answer_all(session, invitation, {"knowledge.0": "1", "knowledge.1": "2"})
    with pytest.raises(AnswerError) as caught:
        engine.finish(session, invitation, now=NOW)
    assert caught.value.message == "4 questions still need an answer before you can finish."
    assert caught.value.key == "knowledge.2"
    answer_all(
        session,
        invitation,
        {"knowledge.2": "3", "confidence.0": "3", "confidence.1": "4", "confidence.2": "5"},
    )
    assert engine.next_question(session, invitation).key == "expectations"
    later = NOW + timedelta(minutes=3)
    engine.finish(session, invitation, now=later)  # the optional question may stay unanswered
    session.commit()
    assert invitation.status == InvitationStatus.FINISHED and invitation.finished_at == later
    # Finishing twice is harmless.
    engine.finish(session, invitation, now=later + timedelta(hours=1))
    assert invitation.finished_at == later
    with pytest.raises(SurveyClosed, match="already finished"):
        engine.submit_answer(session, invitation, "knowledge.0", "5", now=later, channel="web")


def test_closed_withdrawn_and_not_yet_open_surveys_take_no_answers(session, people):
    closed = invite(session, people["alice_booking"], Stage.END, status=InvitationStatus.CLOSED)
    with pytest.raises(SurveyClosed, match="has closed"):
        engine.submit_answer(session, closed, "knowledge.0", "3", now=NOW, channel="web")
    late = invite(session, people["alice_booking"], Stage.IMPACT)
    with pytest.raises(SurveyClosed, match="has closed"):
        engine.submit_answer(session, late, "applied", "yes", now=late.closes_at, channel="web")
    early = invite(
        session,
        people["chloe_booking"],
        Stage.IMPACT,
        opens_at=NOW + timedelta(days=1),
        status=InvitationStatus.PLANNED,
    )
    with pytest.raises(SurveyClosed, match="not open yet"):
        engine.submit_answer(session, early, "applied", "yes", now=NOW, channel="web")
    # Open from its opening time, even before the tick marks it so.
    assert engine.availability(early, NOW + timedelta(days=2)) == "open"


def test_reading_writes_nothing_and_the_first_answer_snapshots(session, people):
    invitation = invite(session, people["alice_booking"], Stage.END)
    engine.next_question(session, invitation)
    engine.progress(session, invitation)
    session.commit()
    assert invitation.definition_id is None
    assert session.exec(select(SurveyDefinitionVersion)).all() == []
    engine.submit_answer(session, invitation, "knowledge.0", "3", now=NOW, channel="web")
    session.commit()
    assert invitation.definition_id is not None
    assert session.get(SurveyDefinitionVersion, invitation.definition_id).stage == Stage.END


def test_an_edited_definition_does_not_change_a_survey_under_way(session, people, tmp_path: Path):
    invitation = invite(session, people["alice_booking"], Stage.IMPACT)
    engine.submit_answer(session, invitation, "applied", "yes", now=NOW, channel="web")
    session.commit()
    content = yaml.safe_load((BUILTIN_DIR / "impact.yaml").read_text())
    content["questions"] = [q for q in content["questions"] if q["id"] != "example"]
    (tmp_path / "impact.yaml").write_text(yaml.safe_dump(content))
    # The invitation keeps the version it started with: "example" is still asked.
    view = engine.next_question(session, invitation, directory=tmp_path)
    assert view.key == "example"
    engine.submit_answer(
        session,
        invitation,
        "example",
        "A child was referred sooner.",
        now=NOW,
        channel="web",
        directory=tmp_path,
    )
    # A new invitation gets the edited version.
    fresh = invite(session, people["chloe_booking"], Stage.IMPACT)
    engine.submit_answer(
        session, fresh, "applied", "yes", now=NOW, channel="web", directory=tmp_path
    )
    assert engine.next_question(session, fresh, directory=tmp_path).key == "knowledge.0"
    assert fresh.definition_id != invitation.definition_id


def test_the_managers_survey_names_the_delegate(session, people):
    invitation = invite(session, people["chloe_booking"], Stage.MANAGER, person=people["dev"])
    survey = engine.load_survey(session, invitation)
    view = survey.next_question()
    assert view.text == (
        "Since the course, have you seen a change in how Chloé O'Brien <Health & Care> "
        "safeguards children in their work?"
    )
    assert survey.intro.startswith("Chloé O'Brien <Health & Care> attended Working Together")


def test_answers_on_postgresql(postgres_engine):
    from tests.conftest import World

    with Session(postgres_engine, expire_on_commit=False) as pg:
        people = World(pg).standard()
        invitation = invite(pg, people["alice_booking"], Stage.IMPACT)
        answer_all(pg, invitation, {"applied": "no", "barriers": ["time"]})
        loaded = answers(pg, invitation)["barriers"]
        answer_all(pg, invitation, {"barriers": ["support", "other"], "applied": "no"})
        assert loaded.value_json == ["support", "other"]  # an answer already loaded reads afresh
        answer_all(pg, invitation, {"applied": "yes"})
        stored = answers(pg, invitation)
        assert set(stored) == {"applied"} and stored["applied"].value_num == 1.0
        assert invitation.definition_id is not None


def test_the_survey_an_answer_returns_is_the_one_a_fresh_load_sees(session, people):
    invitation = invite(session, people["alice_booking"], Stage.IMPACT)

    def same_as_fresh(returned: engine.Survey) -> None:
        fresh = engine.load_survey(session, invitation)
        assert set(returned.answers) == set(fresh.answers)
        assert returned.progress() == fresh.progress()
        got, expected = returned.next_question(), fresh.next_question()
        assert (got.key if got else None) == (expected.key if expected else None)

    after_no = engine.submit_answer(session, invitation, "applied", "no", now=NOW, channel="web")
    assert after_no.next_question().key == "barriers"
    same_as_fresh(after_no)
    with_barriers = engine.submit_answer(
        session, invitation, "barriers", ["time"], now=NOW, channel="web"
    )
    assert "barriers" in with_barriers.answers
    same_as_fresh(with_barriers)
    # Changing the deciding answer voids the barriers: the returned survey no longer holds them.
    after_yes = engine.submit_answer(session, invitation, "applied", "yes", now=NOW, channel="web")
    assert "barriers" not in after_yes.answers
    same_as_fresh(after_yes)
