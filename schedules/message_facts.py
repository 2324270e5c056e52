"""What messages read of the rows: protocols met by the tables' rows and by planning's plain
copies of them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from surveys import outbox


class SessionFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def ref(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def venue(self) -> str | None: ...
    @property
    def online(self) -> bool: ...
    @property
    def schedule_version(self) -> int: ...
    @property
    def joining_link(self) -> str | None: ...


class CourseFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def title(self) -> str: ...
    @property
    def duration(self) -> str: ...
    @property
    def learning_outcomes(self) -> list[str]: ...


class SurveyCourseFacts(CourseFacts, Protocol):
    """A course as a survey message needs it: its type picks the survey's variant."""

    @property
    def course_type(self) -> str: ...


class PersonFacts(outbox.Addressee, Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def name(self) -> str: ...
    @property
    def telegram_link_generation(self) -> int: ...


class BookingFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def ref(self) -> str: ...


class MarkedBookingFacts(BookingFacts, Protocol):
    @property
    def status(self) -> str: ...


class InvitationFacts(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def stage(self) -> str: ...
    @property
    def opens_at(self) -> datetime: ...
    @property
    def closes_at(self) -> datetime: ...
