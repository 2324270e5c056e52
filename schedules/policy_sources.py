"""The policy in force, value by value, with where each value comes from.

``evalbot policy show`` prints this so a coordinator can check what Evalbot will do: each value is
the ``default``, set by the ``partnership`` in ``[policy]``, or set for one ``course`` in
``[policy.courses."Title"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any

from schedules.policy import (
    DAYS,
    STAGE_KEYS,
    TOP_KEYS,
    Policy,
    Span,
    course_key,
    load_policy,
)
from surveys.models import Stage


@dataclass(frozen=True)
class PolicyValue:
    key: str  # "window_start", "stages.impact.opens_after"
    value: str  # as a person would read it
    source: str  # "default", "partnership" or "course"


def _text(value: Any) -> str:
    if isinstance(value, Span):
        return str(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, set):
        return ", ".join(DAYS[day] for day in sorted(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_text(item) for item in value) + "]"
    if value is None:
        return "not set"
    return str(value)


def _course_table(raw: Mapping[str, Any], title: str) -> Mapping[str, Any] | None:
    for name, table in (raw.get("courses") or {}).items():
        if course_key(name) == course_key(title) and isinstance(table, Mapping):
            return table
    return None


def _source(
    path: tuple[str, ...], partnership: Mapping[str, Any], course: Mapping[str, Any] | None
) -> str:
    def has(table: Mapping[str, Any] | None) -> bool:
        for part in path:
            if not isinstance(table, Mapping) or part not in table:
                return False
            table = table[part]
        return True

    if has(course):
        return "course"
    return "partnership" if has(partnership) else "default"


def policy_values(
    raw: Mapping[str, Any] | None, course_title: str | None = None
) -> list[PolicyValue]:
    """Every value of the policy in force (for ``course_title`` when given); raises PolicyError."""
    raw = dict(raw or {})
    policy: Policy = load_policy(raw)
    course = _course_table(raw, course_title) if course_title else None
    if course_title:
        policy = policy.for_course(course_title)
    values: list[PolicyValue] = []
    for name in TOP_KEYS:
        if name in ("stages", "courses"):
            continue
        values.append(
            PolicyValue(name, _text(getattr(policy, name)), _source((name,), raw, course))
        )
    for stage in Stage:
        stage_policy = policy.stage(stage)
        for name in STAGE_KEYS:
            values.append(
                PolicyValue(
                    f"stages.{stage.value}.{name}",
                    _text(getattr(stage_policy, name)),
                    _source(("stages", stage.value, name), raw, course),
                )
            )
    return values
