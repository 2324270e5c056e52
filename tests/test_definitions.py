"""Survey definitions: the shipped question sets, overrides, every kind of mistake, snapshots."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from surveys.definitions import (
    BUILTIN_DIR,
    DefinitionError,
    Kind,
    first_question_preview,
    load_definition,
    load_definitions,
    snapshot,
    stored_definition,
)
from surveys.models import Stage, SurveyDefinitionVersion

OUTCOMES = ["recognise the signs of neglect", "make a referral to children's social care"]


def default(stage: str) -> dict[str, Any]:
    return yaml.safe_load((BUILTIN_DIR / f"{stage}.yaml").read_text())


def question(content: dict[str, Any], qid: str) -> dict[str, Any]:
    return next(q for q in content["questions"] if q["id"] == qid)


def override(folder: Path, stage: str, change: Callable[[dict[str, Any]], Any]) -> Path:
    """Write ``folder/<stage>.yaml``: the default definition with ``change`` applied."""
    folder.mkdir(exist_ok=True)
    content = copy.deepcopy(default(stage))
    change(content)
    path = folder / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


# --- the shipped definitions ---------------------------------------------------------------


def test_the_shipped_definitions_follow_the_three_stage_evaluation():
    found = load_definitions()
    assert set(found) == set(Stage)
    ids = {stage: [q.id for q in d.questions] for stage, d in found.items()}
    # The same measured items before, at the end and after: each delegate's change can be computed.
    for stage in (Stage.PRE, Stage.END, Stage.IMPACT):
        measured = {q.id: q.measure for q in found[stage].questions if q.measure}
        assert measured == {"knowledge": "knowledge", "confidence": "confidence"}
        assert all(q.per_outcome for q in found[stage].questions if q.measure)
    assert "expectations" in ids[Stage.PRE]
    assert {
        "satisfaction_content",
        "satisfaction_trainer",
        "satisfaction_venue",
        "accessibility",
        "will_do_differently",
    } <= set(ids[Stage.END])
    assert {"applied", "example", "barriers"} <= set(ids[Stage.IMPACT])
    assert "manager_change_seen" in ids[Stage.MANAGER]
    impact = found[Stage.IMPACT]
    assert impact.question("barriers").when == (("applied", ("no",)),)
    assert impact.question("example").when == (("applied", ("yes",)),)
    assert impact.question("barriers").kind is Kind.MULTIPLE
    assert impact.question("applied").kind is Kind.YESNO
    assert all(q.max_length for q in impact.questions if q.kind is Kind.TEXT)


def test_version_is_a_hash_of_the_content(tmp_path: Path):
    before = load_definition(Stage.PRE)
    assert len(before.version) == 64 and before.version == load_definition(Stage.PRE).version
    override(tmp_path, "pre", lambda c: c.update(title="Before you come"))
    changed = load_definition(Stage.PRE, tmp_path)
    assert changed.title == "Before you come" and changed.version != before.version
    # A stage without its own file in the folder keeps the default.
    assert load_definition(Stage.END, tmp_path).version == load_definition(Stage.END).version


def test_a_bare_yaml_no_means_the_word(tmp_path: Path):
    path = tmp_path / "impact.yaml"
    text = (
        (BUILTIN_DIR / "impact.yaml")
        .read_text()
        .replace('when: {applied: "no"}', "when: {applied: no}")
    )
    assert "when: {applied: no}" in text
    path.write_text(text)
    assert load_definition(Stage.IMPACT, tmp_path).question("barriers").when == (
        ("applied", ("no",)),
    )


# --- every kind of mistake names the file and the question ---------------------------------


def _set(qid: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def change(content: dict[str, Any]) -> None:
        question(content, qid).update(values)

    return change


def _drop(qid: str, key: str) -> Callable[[dict[str, Any]], None]:
    def change(content: dict[str, Any]) -> None:
        del question(content, qid)[key]

    return change


def _duplicate(content: dict[str, Any]) -> None:
    content["questions"].append(dict(question(content, "applied")))


def _move_barriers_first(content: dict[str, Any]) -> None:
    content["questions"].insert(0, content["questions"].pop(2))


MISTAKES = [
    (
        "unknown kind",
        _set("applied", kind="yes-no"),
        "question 'applied': 'kind' must be one of scale, single, multiple, yesno, text (given: 'yes-no')",
    ),
    (
        "misspelt key",
        _set("example", optinal=True),
        "question 'example': unknown key 'optinal' for a text question",
    ),
    ("missing text", _drop("applied", "text"), "question 'applied': 'text' is missing"),
    ("duplicate id", _duplicate, "question 'applied': this id is used by an earlier question"),
    ("bad id", _set("applied", id="Applied?"), "question 1: 'id' must be lower-case letters"),
    (
        "condition on a later question",
        _move_barriers_first,
        "question 'barriers': 'when' refers to 'applied', which is not an earlier question",
    ),
    (
        "condition on an unknown question",
        _set("barriers", when={"aplied": "no"}),
        "'when' refers to 'aplied', which is not an earlier question (expected one of: applied, example)",
    ),
    (
        "condition on an impossible answer",
        _set("barriers", when={"applied": "maybe"}),
        "question 'barriers': 'when' expects 'applied' to be 'maybe', which it cannot be (expected one of: yes, no)",
    ),
    (
        "condition on free text",
        _set("barriers", when={"example": "x"}),
        "question 'barriers': 'when' refers to 'example', a free-text question",
    ),
    (
        "condition on a per-outcome question",
        _set("further_support", when={"knowledge": "1"}),
        "question 'further_support': 'when' refers to 'knowledge', which is asked per outcome",
    ),
    (
        "too few options",
        _set("barriers", options=[{"key": "time", "label": "Time"}]),
        "question 'barriers': 'options' must be a list of at least two",
    ),
    (
        "repeated option",
        _set("barriers", options=[{"key": "time", "label": "A"}, {"key": "time", "label": "B"}]),
        "question 'barriers': option 2: the key 'time' is used twice",
    ),
    (
        "option without label",
        _set("barriers", options=[{"key": "time"}, {"key": "other", "label": "B"}]),
        "question 'barriers': option 1 must be a mapping with exactly key and label",
    ),
    (
        "backwards scale",
        _set("confidence", min=5, max=1),
        "question 'confidence': a scale needs 0 <= min < max",
    ),
    (
        "scale of words",
        _set("confidence", max="five"),
        "question 'confidence': 'max' must be a whole number",
    ),
    (
        "per outcome without the outcome",
        _set("knowledge", text="How much do you know?"),
        "question 'knowledge': a per_outcome question's text must contain {outcome}",
    ),
    (
        "per outcome without a fallback",
        _drop("knowledge", "text_without_outcomes"),
        "question 'knowledge': 'text_without_outcomes' is missing",
    ),
    (
        "unknown placeholder",
        _set("example", text="What changed for {child}?"),
        "question 'example': 'text' uses {child}; the placeholders it may use are {course}, {delegate}",
    ),
    (
        "outcome outside a per-outcome question",
        _set("example", text="Did you {outcome}?"),
        "({outcome} needs per_outcome: true)",
    ),
    (
        "unknown measure",
        _set("knowledge", measure="skill"),
        "question 'knowledge': 'measure' must be knowledge or confidence (given: 'skill')",
    ),
    (
        "limit out of range",
        _set("example", max_length=0),
        "question 'example': 'max_length' must be from 1 to 10000",
    ),
    (
        "optional not a flag",
        _set("example", optional="sometimes"),
        "question 'example': 'optional' must be true or false",
    ),
    (
        "wrong stage",
        lambda c: c.update(stage="end"),
        "stage: this file is for stage 'impact', not 'end'",
    ),
    (
        "unknown top-level key",
        lambda c: c.update(questoins=[]),
        "top level: unknown key 'questoins'",
    ),
    (
        "no questions",
        lambda c: c.update(questions=[]),
        "questions: expected a list of at least one question",
    ),
    (
        "measured item unlike the others",
        _set("confidence", max=10),
        "question 'confidence': a measured item must match",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_each_mistake_is_reported_with_file_question_and_expectation(
    tmp_path: Path, change, expected
):
    path = override(tmp_path, "impact", change)
    with pytest.raises(DefinitionError) as caught:
        load_definitions(tmp_path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message


def test_measure_in_the_managers_survey_is_refused(tmp_path: Path):
    path = override(tmp_path, "manager", _set("manager_rating", measure="confidence"))
    with pytest.raises(
        DefinitionError, match="question 'manager_rating': 'measure' is for the delegate"
    ):
        load_definitions(tmp_path)
    assert path.exists()


def test_yaml_syntax_error_gives_the_line(tmp_path: Path):
    (tmp_path / "pre.yaml").write_text(
        "stage: pre\ntitle: Before\nquestions:\n  - id: x\n   kind: text\n"
    )
    with pytest.raises(DefinitionError) as caught:
        load_definitions(tmp_path)
    assert f"{tmp_path / 'pre.yaml'}: not valid YAML at line 5" in str(caught.value)


def test_not_a_mapping(tmp_path: Path):
    (tmp_path / "end.yaml").write_text("- just\n- a list\n")
    with pytest.raises(
        DefinitionError, match=r"end\.yaml: expected a mapping with stage, title and questions"
    ):
        load_definitions(tmp_path)


def test_unexpected_file_and_missing_folder(tmp_path: Path):
    (tmp_path / "post.yaml").write_text("stage: end\n")
    with pytest.raises(
        DefinitionError,
        match=r"post\.yaml: not a survey Evalbot knows; expected files named end\.yaml",
    ):
        load_definitions(tmp_path)
    with pytest.raises(DefinitionError, match=r"EVALBOT_SURVEY_DEFINITIONS_DIR.*does not exist"):
        load_definitions(tmp_path / "nowhere")


def test_surveys_check_command_lists_or_names_the_mistake(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["surveys", "check"])
    assert result.exit_code == 0, result.output
    assert "barriers" in result.output and "when applied is no" in result.output
    override(tmp_path / "defs", "impact", _set("barriers", when={"applied": "maybe"}))
    result = runner.invoke(app, ["surveys", "check", str(tmp_path / "defs")])
    assert result.exit_code == 2
    assert "impact.yaml: question 'barriers'" in result.output


# --- snapshots and the email's first question ----------------------------------------------


def test_snapshot_stores_each_version_once(session, tmp_path: Path):
    first = snapshot(session, Stage.IMPACT)
    again = snapshot(session, Stage.IMPACT)
    session.commit()
    assert first.id == again.id and first.version == load_definition(Stage.IMPACT).version
    override(tmp_path, "impact", lambda c: c.update(title="Six weeks on"))
    edited = snapshot(session, Stage.IMPACT, tmp_path)
    session.commit()
    assert edited.id != first.id and edited.title == "Six weeks on"
    rows = session.exec(select(SurveyDefinitionVersion)).all()
    assert len(rows) == 2
    # The stored content reads back as the definition it was.
    assert stored_definition(first).title == "Three months on"
    assert [q.id for q in stored_definition(first).questions] == [
        q.id for q in load_definition(Stage.IMPACT).questions
    ]


def test_first_question_preview_fills_the_outcome():
    preview = first_question_preview(load_definition(Stage.PRE).content, OUTCOMES)
    assert preview["key"] == "knowledge.0"
    assert "recognise the signs of neglect" in preview["text"]
    assert [o["value"] for o in preview["options"]] == ["1", "2", "3", "4", "5"]
    assert preview["options"][0]["label"] == "1 – Very little"
    without = first_question_preview(
        load_definition(Stage.PRE).content, [], course_title="Working Together"
    )
    assert without["key"] == "knowledge" and "Working Together" in without["text"]
    manager = first_question_preview(
        load_definition(Stage.MANAGER).content, OUTCOMES, delegate_name="Alice Okafor"
    )
    assert manager["key"] == "manager_change_seen"
    assert "Alice Okafor" in manager["text"]
    assert manager["options"] == [{"value": "yes", "label": "Yes"}, {"value": "no", "label": "No"}]
