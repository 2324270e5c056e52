"""The waiting list's tables: a place that became free (``Vacancy``) and each offer of it.

A waiting-list entry is a ``Booking`` with status ``waiting``; its place in the queue is its
``booked_at`` (then its id). A place freed by a cancellation is a ``Vacancy``; it is offered to
one waiting person at a time (``PlaceOffer``), and passes down the list as offers lapse, until
someone accepts it or nobody is left. See ``schedules.waitlist``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from surveys.models import UTCDateTime

# A session's waiting list is read by session and status together: ``ix_booking_session_status``
# (surveys/models.py, migration 0003_console) serves it.


class VacancyState(StrEnum):
    NOMINATING = "nominating"  # a late cancellation: the manager may nominate until ``opens_at``
    OFFERING = "offering"  # offered down the waiting list, one person at a time
    FILLED = "filled"  # someone from the waiting list accepted it
    UNFILLED = "unfilled"  # nobody (left) on the list, or too near the start: coordinator told
    WITHDRAWN = "withdrawn"  # the session was cancelled, or a nominated colleague took it


class OfferState(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    LAPSED = "lapsed"  # not accepted by ``expires_at``
    WITHDRAWN = "withdrawn"  # the session was cancelled, or the place went another way


class Vacancy(SQLModel, table=True):
    """A place on a session freed by a cancellation, while someone is waiting for one."""

    __tablename__ = "vacancy"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="course_session.id", index=True)
    # The booking whose place this is: a booking frees its place once.
    freed_booking_id: int = Field(foreign_key="booking.id", unique=True)
    reason: str = Field(sa_type=String(20))  # cancelled / late / imported
    state: VacancyState = Field(sa_type=String(20), index=True)
    opens_at: datetime = Field(sa_type=UTCDateTime, nullable=False)  # offers may start
    filled_by_id: int | None = Field(default=None, foreign_key="booking.id")
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class PlaceOffer(SQLModel, table=True):
    """One waiting person offered one vacancy, with the accept link's token hash."""

    __tablename__ = "place_offer"
    __table_args__ = (
        UniqueConstraint("vacancy_id", "booking_id"),
        Index("ix_place_offer_state_expires", "state", "expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    vacancy_id: int = Field(foreign_key="vacancy.id", index=True)
    booking_id: int = Field(foreign_key="booking.id", index=True)  # the waiting-list entry
    token_hash: str | None = Field(default=None, sa_type=String(64), unique=True)
    offered_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    state: OfferState = Field(default=OfferState.OPEN, sa_type=String(20))
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
