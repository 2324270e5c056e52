"""Planning: each booking's survey invitations and messages, for its session's current times.

A booking is planned for its session's ``schedule_version`` (``Booking.planned_version``); the
import bumps the version when a session's time changes (and resets a booking moved to another
session to 0), so the bookings to plan are exactly those whose two numbers differ. Planning a
booking:

- creates or moves its invitations (pre, end, impact; manager when the policy enables it and the
  booking has an approving manager) with their opening and closing times, never creating one
  that has already closed;
- queues its ``booking-confirmation`` (joining details and the cancel link; "changed" when an
  earlier confirmation went out), due in the sending window;
- withdraws its unsent messages planned for other times. Keys end with the session and version
  (``booking:7:confirmation:s3v2``, ``inv:42:open:s3v2``), so a message for new times is a new
  message while a sent one stays sent.

Each survey message is queued when it falls due, by ``schedules.tick``: the invitation when its
survey opens (``queue_invitation_messages``, in ``schedules.survey_messages``), each reminder
when its offset comes and only while the survey is open and unfinished. Queued then rather than
at import, a message goes by the channel the person uses by then and previews the survey's
current first question; an invitation whose message already went out is never sent again, even
after its session moves.

A cancelled session's bookings are planned once more: their unsent messages and invitations are
withdrawn, the delegates and managers are told (``session-cancelled``), and ``planned_version``
becomes ``SESSION_CANCELLED``.

Bookings are claimed with a conditional ``UPDATE`` of ``planned_version`` before anything is
written, so several processes planning at once never plan one booking twice. Planning works on
the tables with SQLAlchemy Core (no ORM objects): an import of 100,000 bookings is planned in
batches, each committed on its own.

This module is where callers import planning from; its parts live in modules of their own:
``plan_constants`` (statuses, markers, templates, tables), ``message_facts`` (what messages read
of the rows), ``survey_timing``, ``message_context``, ``message_links``, ``outbox_rows``
(queueing one message), ``withdrawal``, ``plan_changes`` (replanning a booking, cancelling a
session), ``survey_messages`` (survey messages queued by the tick), ``planner_rows``,
``planner`` (``Planner`` and ``plan``) with its parts ``planner_batch``, ``planner_context``,
``planner_invitations``, ``planner_replans`` and ``planner_notices``, and ``bulk_insert``, all
under ``schedules``.
"""

from __future__ import annotations

from schedules.bulk_insert import _bulk_insert as _bulk_insert
from schedules.message_context import FirstQuestions as FirstQuestions
from schedules.message_context import booking_context as booking_context
from schedules.message_context import charge_pence as charge_pence
from schedules.message_context import day_length as day_length
from schedules.message_context import session_context as session_context
from schedules.message_context import survey_context as survey_context
from schedules.message_facts import BookingFacts as BookingFacts
from schedules.message_facts import CourseFacts as CourseFacts
from schedules.message_facts import InvitationFacts as InvitationFacts
from schedules.message_facts import MarkedBookingFacts as MarkedBookingFacts
from schedules.message_facts import PersonFacts as PersonFacts
from schedules.message_facts import SessionFacts as SessionFacts
from schedules.message_facts import SurveyCourseFacts as SurveyCourseFacts
from schedules.message_links import issue_links as issue_links
from schedules.message_links import link_fields as link_fields
from schedules.message_links import link_rows as link_rows
from schedules.message_links import offer_telegram as offer_telegram
from schedules.message_links import person_links as person_links
from schedules.outbox_rows import outbox_row as outbox_row
from schedules.outbox_rows import queue_message as queue_message
from schedules.plan_changes import cancel_session as cancel_session
from schedules.plan_changes import request_replan as request_replan
from schedules.plan_constants import ACTIVE as ACTIVE
from schedules.plan_constants import BOOKING_INACTIVE as BOOKING_INACTIVE
from schedules.plan_constants import BOOKING_TABLE as BOOKING_TABLE
from schedules.plan_constants import CHUNK as CHUNK
from schedules.plan_constants import CONFIRMATION as CONFIRMATION
from schedules.plan_constants import COURSE_TABLE as COURSE_TABLE
from schedules.plan_constants import HANDLED as HANDLED
from schedules.plan_constants import INACTIVE as INACTIVE
from schedules.plan_constants import INVITATION as INVITATION
from schedules.plan_constants import INVITATION_TABLE as INVITATION_TABLE
from schedules.plan_constants import LINK_TABLE as LINK_TABLE
from schedules.plan_constants import LIVE_INVITATION as LIVE_INVITATION
from schedules.plan_constants import OUTBOX_TABLE as OUTBOX_TABLE
from schedules.plan_constants import PERSON_TABLE as PERSON_TABLE
from schedules.plan_constants import PLANNED_TEMPLATES as PLANNED_TEMPLATES
from schedules.plan_constants import REMINDER as REMINDER
from schedules.plan_constants import SESSION_CANCELLED as SESSION_CANCELLED
from schedules.plan_constants import SESSION_CANCELLED_NOTICE as SESSION_CANCELLED_NOTICE
from schedules.plan_constants import SESSION_TABLE as SESSION_TABLE
from schedules.plan_constants import UNSENT as UNSENT
from schedules.planner import Planner as Planner
from schedules.planner import plan as plan
from schedules.planner_invitations import _went_out as _went_out
from schedules.planner_rows import PlanReport as PlanReport
from schedules.planner_rows import _Booking as _Booking
from schedules.planner_rows import _Course as _Course
from schedules.planner_rows import _Invitation as _Invitation
from schedules.planner_rows import _Person as _Person
from schedules.planner_rows import _Row as _Row
from schedules.planner_rows import _Session as _Session
from schedules.survey_messages import queue_invitation_messages as queue_invitation_messages
from schedules.survey_messages import queue_survey_message as queue_survey_message
from schedules.survey_messages import select_open_invitations as select_open_invitations
from schedules.survey_timing import signature as signature
from schedules.survey_timing import stage_times as stage_times
from schedules.survey_timing import stages_for as stages_for
from schedules.withdrawal import chunks as chunks
from schedules.withdrawal import planned_messages as planned_messages
from schedules.withdrawal import withdraw_booking as withdraw_booking
from schedules.withdrawal import withdraw_invitations as withdraw_invitations
from schedules.withdrawal import withdraw_messages as withdraw_messages
from schedules.withdrawal import withdraw_unsent as withdraw_unsent
