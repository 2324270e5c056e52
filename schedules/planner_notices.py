"""The notices planning queues: a scheduled booking's ``booking-confirmation`` (joining details
and the cancel link, "changed" when an earlier one went out), and a cancelled session's
``session-cancelled`` to its delegates and managers, once its messages and invitations are
withdrawn."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schedules.calendar import cancellation_cutoff, next_send_time
from schedules.message_context import booking_context, charge_pence, session_context
from schedules.message_links import link_rows, person_links
from schedules.plan_constants import (
    CONFIRMATION,
    HANDLED,
    REPLACEMENT_JOINING,
    SESSION_CANCELLED_NOTICE,
)
from schedules.planner_context import PlanContext
from schedules.planner_replans import last_confirmation
from schedules.planner_rows import _Row
from schedules.policy import Policy
from schedules.survey_timing import signature
from schedules.withdrawal import withdraw_invitations, withdraw_unsent
from surveys.models import LinkPurpose, MessageKind, OutboxState, Stage


class Notices:
    """Queues a pass's notices; what a session's bookings share is worked out once."""

    def __init__(self, context: PlanContext):
        self.context = context
        self._send_times: dict[tuple[int, datetime], datetime] = {}
        # Per session and course policy: the bookings of one session share these.
        self._session_texts: dict[tuple[int, int], dict[str, Any]] = {}

    def session_cancelled(self, rows: list[_Row]) -> None:
        """Withdraw the bookings' unsent messages and invitations; tell their people."""
        context, report = self.context, self.context.report
        ids = [row.booking.id for row in rows]
        report.messages_withdrawn += withdraw_unsent(context.session, ids, "session cancelled")
        report.invitations_withdrawn += withdraw_invitations(context.session, ids)
        for row in rows:
            report.sessions_cancelled += 1
            if context.now >= row.course_session.starts_at:
                continue  # cancelled after the event: tidying records, nobody to tell
            delegate = context.people[row.booking.delegate_id]
            text = booking_context(row.course_session, row.course, row.booking, delegate)
            recipients = [("delegate", delegate)]
            if row.booking.manager_id is not None:
                recipients.append(("manager", context.people[row.booking.manager_id]))
            for role, person in recipients:
                # Not held for the sending window: people may be about to travel.
                context.output.queue(
                    key=f"booking:{row.booking.id}:session-cancelled:{role}",
                    person=person,
                    template=SESSION_CANCELLED_NOTICE,
                    context={**text, "role": role},
                    due_at=context.now,
                    kind=MessageKind.NOTICE,
                    booking_id=row.booking.id,
                )

    def confirmation(self, row: _Row, known: dict[str, OutboxState]) -> None:
        """Queue the booking's confirmation for the session's current times, if it is due."""
        context = self.context
        now = context.now
        booking, course_session = row.booking, row.course_session
        due = self._send_time(now, row.policy)
        if due >= course_session.starts_at:
            return  # it would arrive after the start
        prefix = f"booking:{booking.id}:confirmation:"
        session_text = self._session_text(row)
        told = None
        if booking.replaces_id is not None:
            # A replacement's joining details come with the nomination (sent, or about to go
            # with what the session was then): a change after that is told as to anyone.
            told = last_confirmation(
                context.session, booking.id, (REPLACEMENT_JOINING, CONFIRMATION), TOLD_OR_TELLING
            )
            if told is None:
                return
        elif any(key.startswith(prefix) and state in HANDLED for key, state in known.items()):
            told = last_confirmation(context.session, booking.id, (CONFIRMATION,))
        change = what_changed(told, session_text)
        if told is not None and not change:
            return  # the session is back where and when the delegate was last told
        delegate = context.people[booking.delegate_id]
        links = {"cancel": [LinkPurpose.CANCEL.value, f"booking:{booking.id}"]}
        links.update(person_links(delegate, context.telegram))
        pre = row.invitations.get(Stage.PRE)
        text = {
            **session_text,
            "booking_ref": booking.ref,
            **change,
            # When the pre-course questionnaire comes: later (a date), now (with this), or never.
            "pre_opens_at": (
                pre.opens_at.isoformat() if pre is not None and pre.opens_at > now else None
            ),
            "pre_open": pre is not None and pre.opens_at <= now,
            "links": links,
        }
        context.output.add_links(
            link_rows(
                context.secret,
                links,
                person=delegate,
                booking=booking,
                invitation=None,
                starts_at=course_session.starts_at,
                created_at=now,
            )
        )
        context.output.queue(
            key=f"{prefix}{signature(course_session)}",
            person=delegate,
            template=CONFIRMATION,
            context=text,
            due_at=due,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
            known=known,
        )

    def _send_time(self, at: datetime, policy: Policy) -> datetime:
        key = (id(policy), at)
        found = self._send_times.get(key)
        if found is None:
            found = self._send_times[key] = next_send_time(at, policy, self.context.zone)
        return found

    def _session_text(self, row: _Row) -> dict[str, Any]:
        """What a confirmation says of the session, the same for all its bookings."""
        key = (row.course_session.id, id(row.policy))
        found = self._session_texts.get(key)
        if found is None:
            cutoff = cancellation_cutoff(
                row.course_session.starts_at, row.policy, self.context.zone
            )
            found = self._session_texts[key] = {
                **session_context(row.course_session, row.course),
                "cancel_by": cutoff.isoformat(),
                # For people: "by 23:59 on Thursday" rather than "by 00:00 on Friday".
                "cancel_until": (cutoff - timedelta(minutes=1)).isoformat(),
                "charge_pence": charge_pence(row.policy, row.course),
                "cancellation_terms": row.policy.cancellation_terms,
                "accessibility_statement": row.policy.accessibility_statement,
            }
        return found


def what_changed(told: dict[str, Any] | None, now: dict[str, Any]) -> dict[str, Any]:
    """How a confirmation differs from the last one the delegate was sent: ``changed``, with
    ``time_changed`` and ``previous_starts_at``, ``place_changed`` and ``previous_venue``. Empty
    when the delegate was told exactly this before; all false when nothing was sent before."""
    if told is None:
        return {**NOT_CHANGED}

    def differs(*names: str) -> bool:
        return any((told.get(name) or None) != (now.get(name) or None) for name in names)

    time_changed = differs("session_starts_at", "session_ends_at")
    place_changed = differs("venue", "online", "joining_link")
    if not (time_changed or place_changed):
        return {}
    return {
        "changed": True,
        "time_changed": time_changed,
        "previous_starts_at": told.get("session_starts_at") if time_changed else None,
        "place_changed": place_changed,
        "previous_venue": (
            told.get("venue") or None if place_changed and not told.get("online") else None
        ),
    }


# A replacement's joining details are "told" from when they are queued: they go out with the
# session as it was then, whenever the sending window lets them.
TOLD_OR_TELLING = (OutboxState.SENT, OutboxState.CLAIMED, OutboxState.PENDING, OutboxState.FAILED)

NOT_CHANGED: dict[str, Any] = {
    "changed": False,
    "time_changed": False,
    "previous_starts_at": None,
    "place_changed": False,
    "previous_venue": None,
}
