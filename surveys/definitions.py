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

A stage may have a variant for a kind of course (the course's ``course_type``):
``end.e-learning.yaml`` beside ``end.yaml`` is the end-of-course survey of e-learning courses.
The type is written with hyphens for spaces: ``face-to-face``, ``e-learning``, ``conference`` or
``briefing``. Each file is overridden on its own, so a partnership's ``end.yaml`` does not
replace the shipped ``end.e-learning.yaml``; a course whose type has no variant gets the general
file. A snapshot records the course type of the variant it holds (none for the general file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from surveys.booking_fields import COURSE_TYPES
from surveys.definition_check import (
    YES_NO,
    Definition,
    DefinitionError,
    Kind,
    Question,
    check_measures,
    content_version,
    fill,
    parse_definition,
)
from surveys.models import Stage, SurveyDefinitionVersion

__all__ = [
    "BUILTIN_DIR",
    "COURSE_TYPES",
    "YES_NO",
    "Definition",
    "DefinitionError",
    "Kind",
    "Question",
    "cached_definition",
    "check_measures",
    "content_version",
    "definition_path",
    "fill",
    "first_question_preview",
    "load_definition",
    "load_definitions",
    "load_file",
    "load_variants",
    "parse_definition",
    "snapshot",
    "stored_definition",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "definitions"
# A variant's file names its course type with hyphens for spaces: end.face-to-face.yaml.
_BY_SLUG = {kind.replace(" ", "-"): kind for kind in COURSE_TYPES}


# --- loading -------------------------------------------------------------------------------


def file_name(stage: Stage, course_type: str | None = None) -> str:
    """``end.yaml``, or ``end.e-learning.yaml`` for the e-learning variant."""
    if course_type is None:
        return f"{stage.value}.yaml"
    return f"{stage.value}.{course_type.replace(' ', '-')}.yaml"


def definition_path(
    stage: Stage, directory: Path | None = None, course_type: str | None = None
) -> Path:
    """The file a stage's definition comes from for a kind of course.

    The variant for the course type if there is one (the override folder's, else the shipped
    one), else the general file (the override folder's, else the shipped one).
    """
    names = [file_name(stage)] if course_type is None else [file_name(stage, course_type)]
    if course_type is not None:
        names.append(file_name(stage))
    for name in names:
        for folder in (directory, BUILTIN_DIR):
            if folder is not None and (Path(folder) / name).is_file():
                return Path(folder) / name
    return BUILTIN_DIR / file_name(stage)


def load_file(path: Path, stage: Stage | None = None, course_type: str | None = None) -> Definition:
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
    return parse_definition(content, source=str(path), stage=stage, course_type=course_type)


def _check_folder(directory: Path) -> None:
    """Every YAML file in an override folder must be a stage's file or one of its variants."""
    if not directory.is_dir():
        raise DefinitionError(
            f"{directory}: the survey definitions folder (EVALBOT_SURVEY_DEFINITIONS_DIR) "
            "does not exist"
        )
    stages = {stage.value for stage in Stage}
    for found in sorted(directory.glob("*.y*ml")):
        parts = found.name.split(".")
        if found.suffix != ".yaml" or parts[0] not in stages or len(parts) not in (2, 3):
            raise DefinitionError(
                f"{found}: not a survey Evalbot knows; expected files named "
                f"{', '.join(sorted(f'{stage}.yaml' for stage in stages))}, or a variant for a "
                "kind of course such as end.e-learning.yaml"
            )
        if len(parts) == 3 and parts[1] not in _BY_SLUG:
            raise DefinitionError(
                f"{found}: {parts[1]!r} is not a kind of course; a variant's name is "
                f"<stage>.<course type>.yaml with the type one of {', '.join(_BY_SLUG)}"
            )


# By (stage, course type): the definition that kind of course gets, the general one under None.
Loaded = dict[tuple[Stage, str | None], Definition]
_loaded: dict[tuple[Any, ...], Loaded] = {}


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The YAML files in a folder, each with its modification time and size."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith((".yaml", ".yml")) and entry.is_file():
                    status = entry.stat()
                    found.append((entry.name, status.st_mtime_ns, status.st_size))
    except OSError:
        if folder == BUILTIN_DIR:
            raise
        raise DefinitionError(
            f"{folder}: the survey definitions folder (EVALBOT_SURVEY_DEFINITIONS_DIR) "
            "does not exist"
        ) from None
    return tuple(sorted(found))


def _load_all(directory: Path | None) -> Loaded:
    """Every stage's definition for every kind of course, checked alone and together.

    Re-read only when a file is added, removed or changed: each call lists the two folders.
    """
    own = _listing(Path(directory)) if directory is not None else ()
    key = (str(directory), own, _listing(BUILTIN_DIR))
    cached = _loaded.get(key)
    if cached is not None:
        return cached
    if directory is not None:
        directory = Path(directory)
        _check_folder(directory)
    kinds: tuple[str | None, ...] = (None, *COURSE_TYPES)
    paths = {
        (stage, kind): definition_path(stage, directory, kind) for stage in Stage for kind in kinds
    }
    general = {stage: load_file(paths[(stage, None)], stage) for stage in Stage}
    check_measures(general)
    found: Loaded = {(stage, None): definition for stage, definition in general.items()}
    for kind in COURSE_TYPES:
        chosen: dict[Stage, Definition] = {}
        for stage in Stage:
            path = paths[(stage, kind)]
            variant = path.name == file_name(stage, kind)
            chosen[stage] = load_file(path, stage, kind) if variant else general[stage]
            found[(stage, kind)] = chosen[stage]
        check_measures(chosen)  # a variant's measured items must match the other stages'
    if len(_loaded) > 32:
        _loaded.clear()
    _loaded[key] = found
    return found


def load_definitions(directory: Path | None = None) -> dict[Stage, Definition]:
    """Every stage's general definition, checked with every variant; re-read when one changes."""
    return {
        stage: definition
        for (stage, kind), definition in _load_all(directory).items()
        if kind is None
    }


def load_variants(directory: Path | None = None) -> dict[tuple[Stage, str], Definition]:
    """The variants there are, by stage and course type (checked with the general files)."""
    return {
        (stage, kind): definition
        for (stage, kind), definition in _load_all(directory).items()
        if kind is not None and definition.course_type == kind
    }


def load_definition(
    stage: Stage, directory: Path | None = None, course_type: str | None = None
) -> Definition:
    """A stage's definition for a kind of course: its variant, else the general one."""
    loaded = _load_all(directory)
    return loaded.get((Stage(stage), course_type)) or loaded[(Stage(stage), None)]


def snapshot(
    session: Session,
    stage: Stage,
    directory: Path | None = None,
    course_type: str | None = None,
) -> SurveyDefinitionVersion:
    """The stored version of a stage's current definition for a kind of course, storing it the
    first time; it records the variant's course type (None for the general definition)."""
    definition = load_definition(stage, directory, course_type)
    found = _stored(session, definition)
    if found is not None:
        return found
    row = SurveyDefinitionVersion(
        stage=definition.stage,
        version=definition.version,
        title=definition.title,
        content=definition.content,
        course_type=definition.course_type,
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
        kind = f" ({row.course_type})" if row.course_type else ""
        cached = parse_definition(
            row.content,
            source=f"stored {row.stage}{kind} survey, version {row.version[:12]}",
            course_type=row.course_type,
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
