"""What planning and the tick agree on: which bookings are active, the planned_version markers,
the templates planning owns, the outbox and invitation states it reads, and the tables it writes."""

from __future__ import annotations

from sqlalchemy import Table
from sqlmodel import SQLModel

from surveys.models import (
    BookingStatus,
    InvitationStatus,
    OutboxState,
)

# Bookings whose people should hear about the course and be asked about it.
ACTIVE = (BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED)
INACTIVE = tuple(status for status in BookingStatus if status not in ACTIVE)
# planned_version beyond the session's schedule versions (0 is "not planned yet"):
SESSION_CANCELLED = -1  # its session was cancelled and its people told
BOOKING_INACTIVE = -2  # cancelled, replaced or no-show: its surveys and planned messages withdrawn
CHUNK = 500  # ids in one IN (...) list

CONFIRMATION = "booking-confirmation"
INVITATION = "survey-invitation"
REMINDER = "survey-reminder"
SESSION_CANCELLED_NOTICE = "session-cancelled"
REPLACEMENT_JOINING = "replacement-joining"  # a nominated colleague's joining details
# The messages planning and the tick own: the only ones they ever withdraw.
PLANNED_TEMPLATES = (CONFIRMATION, INVITATION, REMINDER)

UNSENT = (OutboxState.PENDING, OutboxState.FAILED)
# A message in one of these states has gone out (or been tried for good): never plan it again.
HANDLED = (OutboxState.SENT, OutboxState.CLAIMED, OutboxState.DEAD)
LIVE_INVITATION = (InvitationStatus.PLANNED, InvitationStatus.OPEN)

INVITATION_TABLE: Table = SQLModel.metadata.tables["survey_invitation"]
BOOKING_TABLE: Table = SQLModel.metadata.tables["booking"]
SESSION_TABLE: Table = SQLModel.metadata.tables["course_session"]
COURSE_TABLE: Table = SQLModel.metadata.tables["course"]
PERSON_TABLE: Table = SQLModel.metadata.tables["person"]
OUTBOX_TABLE: Table = SQLModel.metadata.tables["outbox"]
LINK_TABLE: Table = SQLModel.metadata.tables["link"]
