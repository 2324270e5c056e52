"""What a survey definition is, and checking one: its questions, kinds, conditions and measures.

``surveys.definitions`` loads definitions from files (with their variants per kind of course) and
stores snapshots; everything here works on content already read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from surveys.models import Stage

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
    course_type: str | None = None  # the kind of course a variant is for; None: the general one

    @property
    def deciders(self) -> frozenset[str]:
        """The ids of questions whose answers decide whether a later question is asked."""
        return frozenset(ref for question in self.questions for ref, _ in question.when)

    def question(self, question_id: str) -> Question | None:
        for question in self.questions:
            if question.id == question_id:
                return question
        return None


def content_version(content: Mapping[str, Any], course_type: str | None = None) -> str:
    """The version of a definition: the SHA-256 of its content as canonical JSON.

    A variant's version covers its course type too, so a variant that copies the general file
    word for word is still stored, and reported, as the variant it is.
    """
    hashed: Any = content if course_type is None else {"course_type": course_type, **content}
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fill(text: str, values: Mapping[str, str]) -> str:
    """Put the outcome, course and delegate into a question's text."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


# --- checking ------------------------------------------------------------------------------


class _Checker:
    """Reads one definition's content, collecting nothing: the first problem raises."""

    def __init__(self, source: str, stage: Stage | None, course_type: str | None = None):
        self.source = source
        self.stage = stage
        self.course_type = course_type

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
            version=content_version(content, self.course_type),
            source=self.source,
            uses_delegate=any(
                "{delegate}" in (q.text + (q.hint or "") + (q.text_without_outcomes or ""))
                for q in questions
            ),
            course_type=self.course_type,
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
            if stage in (Stage.MANAGER, Stage.TRAINER):
                raise self.fail(
                    where,
                    "'measure' is for the delegate's own pre, end and impact surveys, "
                    f"not the {stage.value}'s",
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


def parse_definition(
    content: Any, *, source: str, stage: Stage | None = None, course_type: str | None = None
) -> Definition:
    """Check a definition's content (as read from YAML, or from a stored snapshot)."""
    return _Checker(source, stage, course_type).definition(content)


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
