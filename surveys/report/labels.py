"""Question texts and option labels from the survey definitions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.engine import Connection

from surveys.models import Stage
from surveys.report.query import (
    DEFINITION,
)

# Labels from the survey definitions ------------------------------------------------------------


def item_labels(
    connection: Connection, stage: Stage, directory: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Question texts by item id, and option labels by option key, for one stage.

    From the definitions the invitations were sent with (the newest snapshot wins where
    versions disagree), else from the current definition file. Placeholders such as
    ``{delegate}`` read as words ("the delegate").
    """
    query = (
        select(DEFINITION.c.content)
        .where(DEFINITION.c.stage == stage.value)
        .order_by(DEFINITION.c.created_at, DEFINITION.c.id)
    )
    contents = [content for (content,) in connection.execute(query)]
    if not contents:
        from surveys.definitions import DefinitionError, load_definition

        try:
            contents = [load_definition(stage, directory).content]
        except (DefinitionError, OSError):
            contents = []
    questions: dict[str, str] = {}
    options: dict[str, str] = {}
    for content in contents:
        for question in _questions(content):
            key = question.get("id") or question.get("key")
            if isinstance(key, str) and isinstance(question.get("text"), str):
                questions[key] = _PLACEHOLDER.sub(_placeholder, question["text"])
            for value, label in _options(question.get("options")):
                options[value] = label
    return questions, options


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _placeholder(match: re.Match[str]) -> str:
    return {"delegate": "the delegate", "course": "the course", "outcome": "..."}.get(
        match[1], match[0]
    )


def _questions(content: Any) -> Iterator[dict[str, Any]]:
    if isinstance(content, dict):
        found = content.get("questions")
        if isinstance(found, list):
            for question in found:
                if isinstance(question, dict):
                    yield question
        for value in content.values():
            if isinstance(value, dict | list) and value is not found:
                yield from _questions(value)
    elif isinstance(content, list):
        for value in content:
            yield from _questions(value)


def _options(raw: Any) -> Iterator[tuple[str, str]]:
    if isinstance(raw, dict):
        for value, label in raw.items():
            yield str(value), str(label)
    elif isinstance(raw, list):
        for option in raw:
            if isinstance(option, dict):
                value = option.get("key", option.get("value", option.get("id")))
                label = option.get("label", option.get("text", value))
                if value is not None:
                    yield str(value), str(label)
