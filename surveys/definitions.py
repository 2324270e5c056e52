"""Survey definitions: the questions of each stage, as YAML a partnership can edit.

The defaults ship in ``surveys/definitions/<stage>.yaml``; a partnership overrides any of them by
putting a file of the same name in the folder named by ``survey_definitions_dir`` (a stage whose
file is absent there keeps the default). A file looks like::

    stage: impact
    title: Three months on
    intro: Optional words shown before the first question.
    thanks: Optional words shown when the survey is finished.
    questions:
      - id: applied                 # letters, digits and _; the item's name in every report
        kind: yesno                 # scale, single, multiple, yesno or text
        text: Have you used what you learned?
      - id: barriers
        kind: multiple
        text: What got in the way?
        when: {applied: "no"}       # asked only when an earlier answer says so
        options:
          - {key: time, label: Workload or lack of time}
          - {key: other, label: Something else}
      - id: confidence
        kind: scale                 # min/max default to 1-5; min_label and max_label name the ends
        measure: confidence         # knowledge or confidence: compared across pre, end and impact
        per_outcome: true           # asked once for each of the course's learning outcomes
        text: How confident are you that you can {outcome}?
        text_without_outcomes: How confident are you in the subject of this course?

Texts may use ``{outcome}`` (per-outcome questions only), ``{course}`` (the course title) and
``{delegate}`` (the delegate's name, for the manager's survey). ``optional: true`` lets a question
be skipped; ``max_length`` limits a free-text answer (1000 characters unless set).

A definition is checked when it is loaded; ``DefinitionError`` names the file, the question and
what was expected. Its version is a hash of its content: ``snapshot`` stores that content once in
``SurveyDefinitionVersion``, and each invitation keeps the version it was sent with, so editing a
file never changes how earlier answers are read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from surveys.models import Stage, SurveyDefinitionVersion

BUILTIN_DIR = Path(__file__).resolve().parent / "definitions"
MEASURES = ("knowledge", "confidence")
PLACEHOLDERS = ("outcome", "course", "delegate")
DEFAULT_MAX_LENGTH = 1000
LONGEST_TEXT_ANSWER = 10_000
_ID = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_TOP_KEYS = ("stage", "title", "intro", "thanks", "questions")


class DefinitionError(ValueError):
    """A survey definition that cannot be used; the message names the file and the question."""


class Kind(StrEnum):
    SCALE = "scale"
    SINGLE = "single"
    MULTIPLE = "multiple"
    YESNO = "yesno"
    TEXT = "text"


_QUESTION_KEYS: dict[Kind, frozenset[str]] = {
    kind: frozenset(
        {"id", "kind", "text", "hint", "optional", "when", "per_outcome", "text_without_outcomes"}
        | extra
    )
    for kind, extra in {
        Kind.SCALE: {"min", "max", "min_label", "max_label", "measure"},
        Kind.SINGLE: {"options"},
        Kind.MULTIPLE: {"options"},
        Kind.YESNO: set(),
        Kind.TEXT: {"max_length"},
    }.items()
}
YES_NO: tuple[tuple[str, str], ...] = (("yes", "Yes"), ("no", "No"))


@dataclass(frozen=True)
class Question:
    id: str
    kind: Kind
    text: str
    hint: str | None = None
    optional: bool = False
    measure: str | None = None
    per_outcome: bool = False
    text_without_outcomes: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # (key, label) for single and multiple choice
    scale_min: int = 1
    scale_max: int = 5
    min_label: str | None = None
    max_label: str | None = None
    max_length: int | None = None
    # Asked only when, for every (question id, accepted values) pair, the earlier answer is one
    # of the values (for a multiple-choice question: includes one of them).
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def choices(self) -> list[tuple[str, str]]:
        """The answers a person picks from, as (value, label); empty for free text."""
        if self.kind is Kind.SCALE:
            return [(str(n), str(n)) for n in range(self.scale_min, self.scale_max + 1)]
        if self.kind is Kind.YESNO:
            return list(YES_NO)
        return list(self.options)


@dataclass(frozen=True)
class Definition:
    stage: Stage
    title: str
    intro: str | None
    thanks: str | None
    questions: tuple[Question, ...]
    content: dict[str, Any]
    version: str
    source: str
    uses_delegate: bool = False  # whether any question names the delegate

    @property
    def deciders(self) -> frozenset[str]:
        """The ids of questions whose answers decide whether a later question is asked."""
        return frozenset(ref for question in self.questions for ref, _ in question.when)

    def question(self, question_id: str) -> Question | None:
        for question in self.questions:
            if question.id == question_id:
                return question
        return None


def content_version(content: Mapping[str, Any]) -> str:
    """The version of a definition: the SHA-256 of its content as canonical JSON."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fill(text: str, values: Mapping[str, str]) -> str:
    """Put the outcome, course and delegate into a question's text."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


# --- checking ------------------------------------------------------------------------------


class _Checker:
    """Reads one definition's content, collecting nothing: the first problem raises."""

    def __init__(self, source: str, stage: Stage | None):
        self.source = source
        self.stage = stage

    def fail(self, where: str, message: str) -> DefinitionError:
        return DefinitionError(f"{self.source}: {where}: {message}")

    def text(self, where: str, raw: Mapping[str, Any], key: str, *, required: bool) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                raise self.fail(where, f"'{key}' is missing; expected some text")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"'{key}' must be some text (given: {value!r})")
        return value.strip()

    def flag(self, where: str, raw: Mapping[str, Any], key: str) -> bool:
        value = raw.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(where, f"'{key}' must be true or false (given: {value!r})")
        return value

    def integer(self, where: str, raw: Mapping[str, Any], key: str, default: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"'{key}' must be a whole number (given: {value!r})")
        return value

    def definition(self, content: Any) -> Definition:
        if not isinstance(content, dict):
            raise DefinitionError(
                f"{self.source}: expected a mapping with stage, title and questions "
                f"(given: {type(content).__name__})"
            )
        unknown = sorted(set(map(str, content)) - set(_TOP_KEYS))
        if unknown:
            raise self.fail(
                "top level", f"unknown key {unknown[0]!r}; expected one of {', '.join(_TOP_KEYS)}"
            )
        stage_text = content.get("stage")
        try:
            stage = Stage(str(stage_text))
        except ValueError:
            allowed = ", ".join(s.value for s in Stage)
            raise self.fail("stage", f"expected one of {allowed} (given: {stage_text!r})") from None
        if self.stage is not None and stage is not self.stage:
            raise self.fail(
                "stage", f"this file is for stage {self.stage.value!r}, not {stage.value!r}"
            )
        title = self.text("top level", content, "title", required=True)
        intro = self.text("top level", content, "intro", required=False)
        thanks = self.text("top level", content, "thanks", required=False)
        for key, value in (("title", title), ("intro", intro), ("thanks", thanks)):
            if value is not None:
                self.placeholders("top level", key, value, per_outcome=False)
        raw_questions = content.get("questions")
        if not isinstance(raw_questions, list) or not raw_questions:
            raise self.fail("questions", "expected a list of at least one question")
        questions: list[Question] = []
        for number, raw in enumerate(raw_questions, start=1):
            questions.append(self.question(number, raw, questions, stage))
        return Definition(
            stage=stage,
            title=title or "",
            intro=intro,
            thanks=thanks,
            questions=tuple(questions),
            content=content,
            version=content_version(content),
            source=self.source,
            uses_delegate=any(
                "{delegate}" in (q.text + (q.hint or "") + (q.text_without_outcomes or ""))
                for q in questions
            ),
        )

    def question(
        self, number: int, raw: Any, earlier: Sequence[Question], stage: Stage
    ) -> Question:
        where = f"question {number}"
        if not isinstance(raw, dict):
            raise self.fail(where, f"expected a mapping with id, kind and text (given: {raw!r})")
        qid = raw.get("id")
        if not isinstance(qid, str) or not _ID.match(qid):
            raise self.fail(
                where,
                "'id' must be lower-case letters, digits and _ starting with a letter, "
                f"at most 60 characters (given: {qid!r})",
            )
        where = f"question {qid!r}"
        if any(q.id == qid for q in earlier):
            raise self.fail(where, "this id is used by an earlier question; ids must be unique")
        try:
            kind = Kind(str(raw.get("kind")))
        except ValueError:
            allowed = ", ".join(k.value for k in Kind)
            raise self.fail(
                where, f"'kind' must be one of {allowed} (given: {raw.get('kind')!r})"
            ) from None
        unknown = sorted(set(map(str, raw)) - _QUESTION_KEYS[kind])
        if unknown:
            allowed = ", ".join(sorted(_QUESTION_KEYS[kind]))
            raise self.fail(
                where, f"unknown key {unknown[0]!r} for a {kind.value} question; expected {allowed}"
            )
        text = self.text(where, raw, "text", required=True) or ""
        per_outcome = self.flag(where, raw, "per_outcome")
        without = self.text(where, raw, "text_without_outcomes", required=False)
        self.placeholders(where, "text", text, per_outcome=per_outcome)
        if per_outcome:
            if "{outcome}" not in text:
                raise self.fail(where, "a per_outcome question's text must contain {outcome}")
            if without is None:
                raise self.fail(
                    where,
                    "'text_without_outcomes' is missing; a per_outcome question needs it for "
                    "courses that list no learning outcomes",
                )
            self.placeholders(where, "text_without_outcomes", without, per_outcome=False)
        elif without is not None:
            raise self.fail(where, "'text_without_outcomes' is only for per_outcome questions")
        hint = self.text(where, raw, "hint", required=False)
        if hint is not None:
            self.placeholders(where, "hint", hint, per_outcome=per_outcome)
        measure = raw.get("measure")
        if measure is not None:
            if measure not in MEASURES:
                raise self.fail(
                    where, f"'measure' must be knowledge or confidence (given: {measure!r})"
                )
            if stage is Stage.MANAGER:
                raise self.fail(
                    where,
                    "'measure' is for the delegate's own pre, end and impact surveys, "
                    "not the manager's",
                )
        question = Question(
            id=qid,
            kind=kind,
            text=text,
            hint=hint,
            optional=self.flag(where, raw, "optional"),
            measure=measure,
            per_outcome=per_outcome,
            text_without_outcomes=without,
            when=self.conditions(where, raw.get("when"), earlier),
        )
        if kind is Kind.SCALE:
            return self.scale(where, raw, question)
        if kind in (Kind.SINGLE, Kind.MULTIPLE):
            return replace(question, options=self.options(where, raw.get("options")))
        if kind is Kind.TEXT:
            limit = self.integer(where, raw, "max_length", DEFAULT_MAX_LENGTH)
            if not 1 <= limit <= LONGEST_TEXT_ANSWER:
                raise self.fail(
                    where, f"'max_length' must be from 1 to {LONGEST_TEXT_ANSWER} (given: {limit})"
                )
            return replace(question, max_length=limit)
        return question

    def placeholders(self, where: str, key: str, text: str, *, per_outcome: bool) -> None:
        allowed = PLACEHOLDERS if per_outcome else tuple(p for p in PLACEHOLDERS if p != "outcome")
        for name in _PLACEHOLDER.findall(text):
            if name not in allowed:
                shown = ", ".join("{" + p + "}" for p in allowed)
                raise self.fail(
                    where,
                    f"'{key}' uses {{{name}}}; the placeholders it may use are {shown}"
                    + ("" if per_outcome else " ({outcome} needs per_outcome: true)"),
                )

    def scale(self, where: str, raw: Mapping[str, Any], question: Question) -> Question:
        low = self.integer(where, raw, "min", 1)
        high = self.integer(where, raw, "max", 5)
        if not 0 <= low < high or high - low > 10:
            raise self.fail(
                where,
                f"a scale needs 0 <= min < max with at most 11 points (given: {low} to {high})",
            )
        return replace(
            question,
            scale_min=low,
            scale_max=high,
            min_label=self.text(where, raw, "min_label", required=False),
            max_label=self.text(where, raw, "max_label", required=False),
        )

    def options(self, where: str, raw: Any) -> tuple[tuple[str, str], ...]:
        if not isinstance(raw, list) or len(raw) < 2:
            raise self.fail(where, "'options' must be a list of at least two {key, label} entries")
        seen: list[tuple[str, str]] = []
        for number, option in enumerate(raw, start=1):
            if not isinstance(option, dict) or set(map(str, option)) != {"key", "label"}:
                raise self.fail(
                    where,
                    f"option {number} must be a mapping with exactly key and label "
                    f"(given: {option!r})",
                )
            key = _yaml_word(option["key"])
            if not isinstance(key, str) or not _KEY.match(key):
                raise self.fail(
                    where,
                    f"option {number}: 'key' must be lower-case letters, digits, _ or -, "
                    f"at most 40 characters (given: {option['key']!r})",
                )
            if any(key == k for k, _ in seen):
                raise self.fail(where, f"option {number}: the key {key!r} is used twice")
            label = option["label"]
            if not isinstance(label, str) or not label.strip():
                raise self.fail(where, f"option {number}: 'label' must be some text")
            seen.append((key, label.strip()))
        return tuple(seen)

    def conditions(
        self, where: str, raw: Any, earlier: Sequence[Question]
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict) or not raw:
            raise self.fail(
                where, f"'when' must map an earlier question's id to its answer (given: {raw!r})"
            )
        found: list[tuple[str, tuple[str, ...]]] = []
        for ref, wanted in raw.items():
            target = next((q for q in earlier if q.id == ref), None)
            if target is None:
                ids = ", ".join(q.id for q in earlier if not q.per_outcome) or "none"
                raise self.fail(
                    where,
                    f"'when' refers to {ref!r}, which is not an earlier question "
                    f"(expected one of: {ids})",
                )
            if target.per_outcome:
                raise self.fail(
                    where, f"'when' refers to {ref!r}, which is asked per outcome; it cannot decide"
                )
            if target.kind is Kind.TEXT:
                raise self.fail(
                    where, f"'when' refers to {ref!r}, a free-text question; it cannot decide"
                )
            values = wanted if isinstance(wanted, list) else [wanted]
            allowed = [value for value, _ in target.choices()]
            accepted: list[str] = []
            for value in values:
                text = _yaml_word(value)
                text = str(text) if isinstance(text, int) and not isinstance(text, bool) else text
                if text not in allowed:
                    raise self.fail(
                        where,
                        f"'when' expects {ref!r} to be {value!r}, which it cannot be "
                        f"(expected one of: {', '.join(allowed)})",
                    )
                accepted.append(str(text))
            found.append((ref, tuple(accepted)))
        return tuple(found)


def _yaml_word(value: Any) -> Any:
    """YAML 1.1 reads a bare yes/no as true/false; in keys and answers they mean the words."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value


def parse_definition(content: Any, *, source: str, stage: Stage | None = None) -> Definition:
    """Check a definition's content (as read from YAML, or from a stored snapshot)."""
    return _Checker(source, stage).definition(content)


def check_measures(definitions: Mapping[Stage, Definition]) -> None:
    """Measured items must be asked the same way in every stage, or no change can be computed."""
    first_seen: dict[str, tuple[Definition, Question]] = {}
    for definition in definitions.values():
        for question in definition.questions:
            if question.measure is None:
                continue
            shape = _measure_shape(question)
            if question.id not in first_seen:
                first_seen[question.id] = (definition, question)
                continue
            other_def, other = first_seen[question.id]
            if _measure_shape(other) != shape:
                raise DefinitionError(
                    f"{definition.source}: question {question.id!r}: a measured item must match "
                    f"{other_def.source} (measure, per_outcome, scale {other.scale_min}-"
                    f"{other.scale_max}) so that change can be computed"
                )


def _measure_shape(question: Question) -> tuple[Any, ...]:
    return (question.measure, question.per_outcome, question.scale_min, question.scale_max)


# --- loading -------------------------------------------------------------------------------


def definition_path(stage: Stage, directory: Path | None = None) -> Path:
    """The file a stage's definition comes from: the override folder's, else the default."""
    if directory is not None:
        candidate = Path(directory) / f"{stage.value}.yaml"
        if candidate.is_file():
            return candidate
    return BUILTIN_DIR / f"{stage.value}.yaml"


def load_file(path: Path, stage: Stage | None = None) -> Definition:
    """Read and check one definition file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(f"{path}: not valid YAML{where}: {problem}") from None
    try:
        json.dumps(content)
    except (TypeError, ValueError):
        raise DefinitionError(
            f"{path}: holds a value that is not plain text, a number, true/false, a list or a "
            "mapping (quote dates and times)"
        ) from None
    return parse_definition(content, source=str(path), stage=stage)


_loaded: dict[tuple[Any, ...], dict[Stage, Definition]] = {}


def load_definitions(directory: Path | None = None) -> dict[Stage, Definition]:
    """Every stage's definition, checked alone and together; re-read only when a file changes."""
    if directory is not None:
        directory = Path(directory)
        if not directory.is_dir():
            raise DefinitionError(
                f"{directory}: the survey definitions folder (EVALBOT_SURVEY_DEFINITIONS_DIR) "
                "does not exist"
            )
        expected = {f"{stage.value}.yaml" for stage in Stage}
        for found in sorted(directory.glob("*.y*ml")):
            if found.name not in expected:
                raise DefinitionError(
                    f"{found}: not a survey Evalbot knows; expected files named "
                    f"{', '.join(sorted(expected))}"
                )
    paths = {stage: definition_path(stage, directory) for stage in Stage}
    key = tuple((str(p), *_stamp(p)) for p in paths.values())
    cached = _loaded.get(key)
    if cached is not None:
        return cached
    definitions = {stage: load_file(path, stage) for stage, path in paths.items()}
    check_measures(definitions)
    if len(_loaded) > 32:
        _loaded.clear()
    _loaded[key] = definitions
    return definitions


def _stamp(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError:
        return (0, 0)
    return (status.st_mtime_ns, status.st_size)


def load_definition(stage: Stage, directory: Path | None = None) -> Definition:
    return load_definitions(directory)[Stage(stage)]


def snapshot(
    session: Session, stage: Stage, directory: Path | None = None
) -> SurveyDefinitionVersion:
    """The stored version of a stage's current definition, storing it the first time."""
    definition = load_definition(stage, directory)
    found = _stored(session, definition)
    if found is not None:
        return found
    row = SurveyDefinitionVersion(
        stage=definition.stage,
        version=definition.version,
        title=definition.title,
        content=definition.content,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another worker stored the same version first: use theirs.
        found = _stored(session, definition)
        if found is None:
            raise
        return found
    return row


def _stored(session: Session, definition: Definition) -> SurveyDefinitionVersion | None:
    return session.exec(
        select(SurveyDefinitionVersion).where(
            SurveyDefinitionVersion.stage == definition.stage,
            SurveyDefinitionVersion.version == definition.version,
        )
    ).first()


_parsed: dict[str, Definition] = {}


def stored_definition(row: SurveyDefinitionVersion) -> Definition:
    """The definition a snapshot holds (parsed once per version)."""
    cached = _parsed.get(row.version)
    if cached is None:
        cached = parse_definition(
            row.content, source=f"stored {row.stage} survey, version {row.version[:12]}"
        )
        _parsed[row.version] = cached
    return cached


def cached_definition(version: str) -> Definition | None:
    """A stored definition already parsed in this process, by its version hash."""
    return _parsed.get(version)


def first_question_preview(
    definition_content: Mapping[str, Any],
    course_outcomes: Sequence[str],
    *,
    course_title: str = "the course",
    delegate_name: str = "your colleague",
) -> dict[str, Any]:
    """The first question as an email shows it, each option a link into the form.

    Returns ``{"key", "text", "hint", "kind", "options": [{"value", "label"}], "min_label",
    "max_label"}``: put it in a survey message's context as ``first_question``; the templates
    link each option to ``<survey link>?q=<key>&a=<value>``, which opens the form with that
    answer chosen (nothing is saved until the person submits). Free-text questions have no
    options.
    """
    definition = parse_definition(dict(definition_content), source="survey definition")
    question = definition.questions[0]  # never conditional: a condition needs an earlier question
    values = {"course": course_title, "delegate": delegate_name}
    if question.per_outcome and course_outcomes:
        key = f"{question.id}.0"
        text = fill(question.text, {**values, "outcome": course_outcomes[0]})
    else:
        key = question.id
        text = fill(question.text_without_outcomes or question.text, values)
    hint = fill(question.hint, {**values, "outcome": ""}) if question.hint else None
    options = [{"value": value, "label": label} for value, label in question.choices()]
    if question.kind is Kind.SCALE and options:
        if question.min_label:
            options[0]["label"] = f"{options[0]['label']} – {question.min_label}"
        if question.max_label:
            options[-1]["label"] = f"{options[-1]['label']} – {question.max_label}"
    return {
        "key": key,
        "text": text,
        "hint": hint,
        "kind": question.kind.value,
        "options": options if question.kind is not Kind.MULTIPLE else [],
        "min_label": question.min_label,
        "max_label": question.max_label,
    }
