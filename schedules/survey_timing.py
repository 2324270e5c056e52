"""Survey timings: which stages a booking has, when each stage's survey opens and closes, and
the signature (session and schedule version) a message is planned for."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from schedules.calendar import shift
from schedules.message_facts import (
    SessionFacts,
)
from schedules.policy import Policy, StagePolicy
from surveys.models import (
    Stage,
)


def signature(course_session: SessionFacts) -> str:
    """What a message was planned for: the session and its schedule version."""
    return f"s{course_session.id}v{course_session.schedule_version}"


def stage_times(
    course_session: SessionFacts, stage: StagePolicy, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """When a stage's survey opens and closes for this session (on the local clock)."""
    anchor = course_session.starts_at if stage.anchor == "start" else course_session.ends_at
    opens_at = shift(anchor, stage.opens_after, zone)
    return opens_at, shift(opens_at, stage.closes_after, zone)


def stages_for(manager_id: int | None, policy: Policy) -> list[Stage]:
    stages = [Stage.PRE, Stage.END, Stage.IMPACT]
    if policy.manager_survey and manager_id is not None:
        stages.append(Stage.MANAGER)
    return stages
