"""Calendar invitations: the ``.ics`` file a booking's emails carry (iCalendar, RFC 5545/5546).

Built with the ``icalendar`` package from the message's own context, as the message is rendered:

- ``booking-confirmation`` and ``replacement-joining``: ``METHOD:REQUEST``, the session's event;
- ``cancellation-confirmed``, and ``session-cancelled`` to the delegate: ``METHOD:CANCEL``.

One VEVENT per file, its UID fixed per booking (``booking-<ref>@<mail domain>``), so a calendar
updates the same entry: a moved session's new confirmation replaces it, a cancellation removes
it. SEQUENCE follows the session's ``schedule_version`` (which the import raises whenever the
session's time changes): a request for version N has SEQUENCE N - 1, and a cancel has N, above
every request sent before it. Times are written in the partnership's zone (``TZID``) with its
VTIMEZONE, as Outlook expects; the location is the venue, or the joining link of an online
session, and the description carries the cancel link.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from bot.channels.base import Attachment

METHODS: dict[str, str] = {
    "booking-confirmation": "REQUEST",
    "replacement-joining": "REQUEST",
    "cancellation-confirmed": "CANCEL",
    "session-cancelled": "CANCEL",
}
PRODID = "-//Evalbot//Safeguarding training evaluation//EN"


def invitation(
    template: str,
    context: Mapping[str, Any],
    *,
    mail_from: str,
    recipient: str,
    recipient_name: str,
    now: datetime,
) -> Attachment | None:
    """The ``invite.ics`` for an email of ``template``, or None when it carries none.

    ``context`` is the rendering context: the row's own (``booking_ref``, the session's times,
    ``venue``, ``joining_link``, ``schedule_version``) with ``links`` already turned into URLs.
    """
    method = METHODS.get(template)
    if method is None or "booking_ref" not in context:
        return None
    if template == "session-cancelled" and context.get("role") != "delegate":
        return None  # the manager was never sent the event
    data = build(
        context,
        method=method,
        mail_from=mail_from,
        recipient=recipient,
        recipient_name=recipient_name,
        now=now,
    )
    return Attachment(
        filename="invite.ics",
        content_type=f'text/calendar; method={method}; charset="utf-8"',
        data=data,
    )


def build(
    context: Mapping[str, Any],
    *,
    method: str,
    mail_from: str,
    recipient: str,
    recipient_name: str,
    now: datetime,
) -> bytes:
    """The iCalendar text (CRLF lines) of one booking's event."""
    zone = ZoneInfo(str(context.get("timezone") or "Europe/London"))
    starts = datetime.fromisoformat(context["session_starts_at"]).astimezone(zone)
    ends = datetime.fromisoformat(context["session_ends_at"]).astimezone(zone)
    version = int(context.get("schedule_version") or 1)
    organiser = parseaddr(mail_from)[1] or mail_from
    links = context.get("links") or {}

    event = Event()
    domain = organiser.rpartition("@")[2] or "localhost"
    event.add("uid", f"booking-{context['booking_ref']}@{domain}")
    event.add("sequence", version if method == "CANCEL" else version - 1)
    event.add("dtstamp", now)
    event.add("dtstart", starts)
    event.add("dtend", ends)
    event.add("summary", str(context["course_title"]))
    location = _location(context)
    if location:
        event.add("location", location)
    joining = context.get("joining_link")
    if context.get("online") and joining:
        event.add("url", joining)
    event.add("description", _description(context, links, method))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    partnership = str(context.get("partnership") or "")
    event.add("organizer", vCalAddress(f"mailto:{organiser}"), parameters={"CN": partnership})
    event.add(
        "attendee",
        vCalAddress(f"mailto:{recipient}"),
        parameters={
            "CN": recipient_name,
            "ROLE": "REQ-PARTICIPANT",
            "PARTSTAT": "ACCEPTED",
            "RSVP": "FALSE",
        },
    )

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    calendar.add("calscale", "GREGORIAN")
    calendar.add_component(event)
    # Only the zone's rules around the event: a short VTIMEZONE, not fifty years of them.
    calendar.add_missing_timezones(
        first_date=starts.date() - timedelta(days=366), last_date=ends.date() + timedelta(days=366)
    )
    data: bytes = calendar.to_ical()
    return data


def _location(context: Mapping[str, Any]) -> str:
    joining = context.get("joining_link")
    if context.get("online"):
        return str(joining or context.get("venue") or "Online")
    return str(context.get("venue") or "")


def _description(context: Mapping[str, Any], links: Mapping[str, str], method: str) -> vText:
    lines = [f"{context['course_title']} (booking {context['booking_ref']})."]
    if method == "CANCEL":
        lines.append("This booking is cancelled.")
    else:
        joining = context.get("joining_link")
        if context.get("online") and joining:
            lines.append(f"Join online: {joining}")
        elif context.get("venue"):
            lines.append(f"Venue: {context['venue']}")
        if links.get("cancel"):
            lines.append(f"If you can no longer come, cancel your place: {links['cancel']}")
    return vText("\n".join(lines))
