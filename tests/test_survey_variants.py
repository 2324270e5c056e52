"""Survey variants per kind of course: the course's type picks end.<type>.yaml, else end.yaml."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from schedules.planning import FirstQuestions, survey_context
from surveys.definitions import (
    BUILTIN_DIR,
    DefinitionError,
    load_definition,
    load_definitions,
    load_variants,
    snapshot,
    stored_definition,
)
from surveys.models import (
    Course,
    InvitationStatus,
    Stage,
    SurveyDefinitionVersion,
    SurveyInvitation,
)
from tests.report_world import NM, WT, QuarterWorld, read_csv
from tests.report_world import cli_env as cli_env
from tests.report_world import quarter_world as quarter_world
from tests.test_web_form import answer, client, clock, csrf_of, heading, invite, people, stored

__all__ = ["client", "clock", "people"]  # fixtures shared with the web form's tests


def shipped(name: str) -> dict[str, object]:
    loaded = yaml.safe_load((BUILTIN_DIR / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return copy.deepcopy(loaded)


def set_type(session: Session, course, course_type: str) -> None:
    course.course_type = course_type
    session.add(course)
    session.commit()


# --- through the web form ------------------------------------------------------------------


def test_an_e_learning_course_gets_the_e_learning_survey(client, session, settings, people):
    set_type(session, people["course"], "e-learning")
    invitation, token = invite(session, settings, people["alice_booking"], Stage.END)
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    assert "End of the e-learning course" in page.text
    assert "Question 1 of 13" in page.text  # 3 outcomes x 2 measures, then 7 more
    for key in ("knowledge.0", "knowledge.1", "knowledge.2"):
        page = answer(client, token, key, "4")
    for key in ("confidence.0", "confidence.1", "confidence.2"):
        page = answer(client, token, key, "5")
    page = answer(client, token, "satisfaction_content", "4")
    assert heading(page.text) == (
        "How satisfied are you with the e-learning platform the course ran on?"
    )
    page = answer(client, token, "satisfaction_platform", "2")
    assert heading(page.text) == "Did anything on the platform get in your way? (optional)"
    page = answer(client, token, "platform_problems", "video", "device")
    assert heading(page.text) == "About how long did the course take you?"
    assert "venue" not in page.text.lower() and "trainer" not in page.text.lower()
    got = stored(session, invitation)
    assert got["platform_problems"].value_json == ["device", "video"]
    # The snapshot taken with the first answer records the variant it holds.
    session.refresh(invitation)
    kept = session.get(SurveyDefinitionVersion, invitation.definition_id)
    assert kept is not None and kept.course_type == "e-learning"
    assert kept.title == "End of the e-learning course"
    assert stored_definition(kept).question("satisfaction_platform") is not None


def test_a_face_to_face_course_gets_the_general_survey(client, session, settings, people):
    assert people["course"].course_type == "face to face"
    invitation, token = invite(session, settings, people["alice_booking"], Stage.END)
    page = client.get(f"/s/{token}")
    assert "End of the course" in page.text and "e-learning" not in page.text
    assert "Question 1 of 12" in page.text
    answer(client, token, "knowledge.0", "3")
    session.refresh(invitation)
    kept = session.get(SurveyDefinitionVersion, invitation.definition_id)
    assert kept is not None and kept.course_type is None
    assert kept.version == load_definition(Stage.END).version
    assert stored_definition(kept).question("satisfaction_venue") is not None


def test_a_type_without_a_variant_falls_back_to_the_general_survey(
    client, session, settings, people
):
    set_type(session, people["course"], "conference")  # no end.conference.yaml is shipped
    invitation, token = invite(session, settings, people["alice_booking"], Stage.END)
    page = client.get(f"/s/{token}")
    assert "End of the course" in page.text and "Question 1 of 12" in page.text
    answer(client, token, "knowledge.0", "3")
    session.refresh(invitation)
    kept = session.get(SurveyDefinitionVersion, invitation.definition_id)
    assert kept is not None and kept.course_type is None
    # The other stages of an e-learning course have no variant either.
    set_type(session, people["course"], "e-learning")
    _pre, pre_token = invite(session, settings, people["chloe_booking"], Stage.PRE)
    assert "Before the course" in client.get(f"/s/{pre_token}").text


def test_a_briefing_is_short_and_finishes(client, session, settings, people):
    set_type(session, people["course"], "briefing")
    invitation, token = invite(session, settings, people["alice_booking"], Stage.END)
    page = client.get(f"/s/{token}")
    assert "After the briefing" in page.text and "Question 1 of 6" in page.text
    for key in ("confidence.0", "confidence.1", "confidence.2"):
        page = answer(client, token, key, "4")
    page = answer(client, token, "satisfaction_content", "5")
    page = answer(client, token, "accessibility", "yes")
    page = answer(client, token, "will_do_differently", "Check the referral pathway first")
    assert heading(page.text) == "Check your answers"
    done = client.post(f"/s/{token}", data={"csrf": csrf_of(page.text), "action": "finish"})
    assert "Thank you" in done.text
    session.refresh(invitation)
    assert invitation.status == InvitationStatus.FINISHED


def test_a_snapshot_keeps_its_variant_when_the_course_type_changes(
    client, session, settings, people
):
    set_type(session, people["course"], "e-learning")
    invitation, token = invite(session, settings, people["alice_booking"], Stage.END)
    answer(client, token, "knowledge.0", "3")
    set_type(session, people["course"], "face to face")
    page = client.get(f"/s/{token}")
    assert "End of the e-learning course" in page.text
    assert stored(session, invitation)["knowledge.0"].value_num == 3.0


# --- the email's first question --------------------------------------------------------------


def test_the_invitation_previews_the_variant_first_question(session, settings, people):
    set_type(session, people["course"], "briefing")
    invitation = SurveyInvitation(
        booking_id=people["chloe_booking"].id,
        person_id=people["chloe"].id,
        stage=Stage.END,
        opens_at=people["session"].ends_at,
        closes_at=people["session"].ends_at,
    )
    context = survey_context(
        invitation,
        people["chloe_booking"],
        people["session"],
        people["course"],
        people["chloe"],
        people["chloe"],
        FirstQuestions(None),
    )
    first = context["first_question"]
    assert first["key"] == "confidence.0"  # the briefing asks no knowledge question
    assert first["text"] == "How confident are you now that you can recognise the signs of neglect?"


# --- loading and checking ------------------------------------------------------------------


def test_a_partnership_variant_overrides_the_shipped_one_file_by_file(tmp_path: Path):
    own = shipped("end.e-learning.yaml")
    own["title"] = "After the online module"
    (tmp_path / "end.e-learning.yaml").write_text(yaml.safe_dump(own))
    general = shipped("end.yaml")
    general["title"] = "Our own end of course survey"
    (tmp_path / "end.yaml").write_text(yaml.safe_dump(general))
    assert load_definition(Stage.END, tmp_path, "e-learning").title == "After the online module"
    assert load_definition(Stage.END, tmp_path).title == "Our own end of course survey"
    assert load_definition(Stage.END, tmp_path, "face to face").title == (
        "Our own end of course survey"
    )
    assert load_definition(Stage.END, tmp_path, "briefing").title == "After the briefing"


def test_a_variant_copied_word_for_word_is_still_recorded_as_the_variant(session, tmp_path: Path):
    (tmp_path / "end.conference.yaml").write_text(
        (BUILTIN_DIR / "end.yaml").read_text(encoding="utf-8")
    )
    general = snapshot(session, Stage.END, tmp_path)
    conference = snapshot(session, Stage.END, tmp_path, "conference")
    session.commit()
    assert general.id != conference.id
    assert (general.course_type, conference.course_type) == (None, "conference")
    assert stored_definition(conference).version == conference.version
    assert len(session.exec(select(SurveyDefinitionVersion)).all()) == 2


def test_surveys_check_lists_every_variant():
    result = CliRunner().invoke(app, ["surveys", "check"])
    assert result.exit_code == 0, result.output
    assert "end (e-learning) End of the e-learning course: 10 questions" in result.output
    assert "end (briefing)   After the briefing: 5 questions" in result.output
    assert "end.briefing.yaml" in result.output
    assert set(load_variants()) == {(Stage.END, "e-learning"), (Stage.END, "briefing")}


def test_surveys_check_names_a_variant_with_a_syntax_error(tmp_path: Path):
    broken = tmp_path / "end.e-learning.yaml"
    broken.write_text("stage: end\ntitle: Online\nquestions:\n  - id: x\n   kind: text\n")
    result = CliRunner().invoke(app, ["surveys", "check", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{broken}: not valid YAML at line 5" in " ".join(result.output.split())
    with pytest.raises(DefinitionError, match=r"end\.e-learning\.yaml: not valid YAML at line 5"):
        load_definitions(tmp_path)


def test_a_variant_for_an_unknown_kind_of_course_is_named(tmp_path: Path):
    (tmp_path / "end.webinar.yaml").write_text(yaml.safe_dump(shipped("end.yaml")))
    result = CliRunner().invoke(app, ["surveys", "check", str(tmp_path)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "end.webinar.yaml: 'webinar' is not a kind of course" in output
    assert "face-to-face, e-learning, conference, briefing" in output


def test_a_variant_for_the_wrong_stage_or_unlike_measures_is_refused(tmp_path: Path):
    (tmp_path / "impact.briefing.yaml").write_text(yaml.safe_dump(shipped("end.briefing.yaml")))
    with pytest.raises(
        DefinitionError, match=r"impact\.briefing\.yaml: stage: this file is for stage 'impact'"
    ):
        load_definitions(tmp_path)
    (tmp_path / "impact.briefing.yaml").unlink()
    unlike = shipped("end.briefing.yaml")
    questions = unlike["questions"]
    assert isinstance(questions, list)
    questions[0]["max"] = 10
    (tmp_path / "end.briefing.yaml").write_text(yaml.safe_dump(unlike))
    with pytest.raises(
        DefinitionError,
        match=r"end\.briefing\.yaml: question 'confidence': a measured item must match",
    ):
        load_definitions(tmp_path)


# --- the quarterly report ------------------------------------------------------------------


def test_the_report_says_each_course_s_type_beside_its_satisfaction(
    session: Session, quarter_world: QuarterWorld, cli_env: CliRunner, tmp_path: Path
) -> None:
    course = session.exec(select(Course).where(Course.title == NM)).one()
    set_type(session, course, "e-learning")
    out = tmp_path / "q1"
    result = cli_env.invoke(
        app, ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-15T10:00"]
    )
    assert result.exit_code == 0, result.output
    types = {row["course"]: row["course_type"] for row in read_csv(out / "satisfaction.csv")}
    assert types == {WT: "face to face", NM: "e-learning", "All courses": ""}
    page = (out / "report.html").read_text()
    assert f"<td>{NM} (e-learning)</td>" in page and f"<td>{WT}</td>" in page


def test_a_variant_added_to_the_folder_later_is_used_from_then_on(tmp_path: Path):
    assert load_definition(Stage.END, tmp_path, "conference").course_type is None
    own = shipped("end.yaml")
    own["title"] = "After the conference"
    (tmp_path / "end.conference.yaml").write_text(yaml.safe_dump(own))
    found = load_definition(Stage.END, tmp_path, "conference")
    assert (found.course_type, found.title) == ("conference", "After the conference")
    (tmp_path / "end.conference.yaml").unlink()
    assert load_definition(Stage.END, tmp_path, "conference").title == "End of the course"
