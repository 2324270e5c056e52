"""What messages say: a session's context, a booking notice's, a survey message's context and
the first question it previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schedules.message_facts import (
    BookingFacts,
    CourseFacts,
    InvitationFacts,
    MarkedBookingFacts,
    PersonFacts,
    SessionFacts,
    SurveyCourseFacts,
)
from schedules.message_links import (
    person_links,
)
from schedules.policy import Policy
from surveys.models import (
    Duration,
    LinkPurpose,
    Stage,
)


def day_length(course: CourseFacts) -> str:
    """``"half day"`` or ``"full day"``: how messages, charges and certificates name its length."""
    return "half day" if course.duration == Duration.HALF else "full day"


def charge_pence(policy: Policy, course: CourseFacts) -> int:
    half = course.duration == Duration.HALF
    return policy.charge_half_day_pence if half else policy.charge_full_day_pence


def session_context(course_session: SessionFacts, course: CourseFacts) -> dict[str, Any]:
    """What every message about a session says of it (JSON only, dates as ISO text)."""
    return {
        "course_title": course.title,
        "day_length": day_length(course),
        "session_ref": course_session.ref,
        "session_starts_at": course_session.starts_at.isoformat(),
        "session_ends_at": course_session.ends_at.isoformat(),
        "venue": course_session.venue or "",
        "online": course_session.online,
        "joining_link": course_session.joining_link,
        # The calendar invitation's SEQUENCE counts from it (``bot.calendar_invite``).
        "schedule_version": course_session.schedule_version,
    }


def booking_context(
    course_session: SessionFacts, course: CourseFacts, booking: BookingFacts, delegate: PersonFacts
) -> dict[str, Any]:
    """What every notice about a booking starts from: its session, its reference and its
    delegate's name (JSON only, dates as ISO text)."""
    return {
        **session_context(course_session, course),
        "booking_ref": booking.ref,
        "delegate_name": delegate.name,
    }


class FirstQuestions:
    """The first question of each stage's current definition, as a message previews it."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def preview(
        self, stage: Stage, course: SurveyCourseFacts, delegate_name: str
    ) -> dict[str, Any]:
        from surveys.definitions import first_question_preview, load_definition

        name = delegate_name if stage == Stage.MANAGER else ""
        key = (stage, course.id, name)
        found = self._cache.get(key)
        if found is None:
            definition = load_definition(stage, self.directory, course.course_type)
            found = first_question_preview(
                definition.content,
                course.learning_outcomes,
                course_title=course.title,
                delegate_name=delegate_name,
            )
            self._cache[key] = found
        return found


def survey_context(
    invitation: InvitationFacts,
    booking: MarkedBookingFacts,
    course_session: SessionFacts,
    course: SurveyCourseFacts,
    recipient: PersonFacts,
    delegate: PersonFacts,
    questions: FirstQuestions,
    *,
    telegram: bool = True,
) -> dict[str, Any]:
    """The context of a ``survey-invitation`` or ``survey-reminder``."""
    links: dict[str, list[str]] = {
        "survey": [LinkPurpose.SURVEY.value, f"invitation:{invitation.id}"],
    }
    if invitation.stage == Stage.PRE:
        links["cancel"] = [LinkPurpose.CANCEL.value, f"booking:{booking.id}"]
    links.update(person_links(recipient, telegram))
    return {
        **session_context(course_session, course),
        "booking_ref": booking.ref,
        # The register's mark when the message is made ("attended", "partly attended", or
        # "booked" while unmarked): a partly attended delegate earns no certificate.
        "attendance": str(booking.status),
        "stage": str(invitation.stage),
        "opens_at": invitation.opens_at.isoformat(),
        "closes_at": invitation.closes_at.isoformat(),
        "delegate_name": delegate.name,
        "first_question": questions.preview(Stage(invitation.stage), course, delegate.name),
        "links": links,
    }
