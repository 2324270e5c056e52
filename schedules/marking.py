"""Marking the register: one booking's mark, checked, made and audited, with corrections.

A no-show mark changed after its notice went out is taken back by ``schedules.no_shows``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from schedules.cancellation import facts
from schedules.certificates import certificate_link
from schedules.no_shows import _take_back_no_show
from schedules.planning import request_replan
from schedules.policy import Policy, default_policy
from schedules.register import (
    LONDON,
    MARKS,
    ON_REGISTER,
    AttendanceError,
    _course_policy,
    register_opens_at,
)
from surveys import audit
from surveys.models import Booking, BookingStatus, CourseSession, SessionStatus


def parse_mark(text: str) -> BookingStatus:
    """``"attended"``, ``"partly attended"`` (or ``partly``), ``"no-show"`` (or ``no show``)."""
    word = " ".join(text.strip().lower().replace("_", " ").split())
    aliases = {
        "attended": BookingStatus.ATTENDED,
        "partly attended": BookingStatus.PARTLY_ATTENDED,
        "partly": BookingStatus.PARTLY_ATTENDED,
        "partial": BookingStatus.PARTLY_ATTENDED,
        "no-show": BookingStatus.NO_SHOW,
        "no show": BookingStatus.NO_SHOW,
        "noshow": BookingStatus.NO_SHOW,
    }
    if word not in aliases:
        raise AttendanceError(f"{text!r} is not a mark; use attended, partly attended or no-show")
    return aliases[word]


@dataclass(frozen=True)
class MarkResult:
    booking: Booking
    previous: BookingStatus
    changed: bool
    after_close: bool
    corrections: int = 0  # correction notices queued
    withdrawn: int = 0  # no-show notices withdrawn before they went out


def check_mark(
    session: Session,
    booking: Booking,
    status: BookingStatus,
    *,
    now: datetime,
    policy: Policy,
    admin: bool,
    zone: ZoneInfo = LONDON,
) -> str | None:
    """Why ``booking`` cannot be marked ``status`` at ``now``, or None when it can."""
    if status not in MARKS:
        return f"{status} is not a mark; use attended, partly attended or no-show"
    course_session = session.get(CourseSession, booking.session_id)
    assert course_session is not None
    own = _course_policy(session, course_session, policy)
    if course_session.status == SessionStatus.CANCELLED:
        return f"Session {course_session.ref} was cancelled, so it has no register."
    opens = register_opens_at(course_session, own)
    if now < opens:
        return (
            f"The register for {course_session.ref} opens at "
            f"{opens.astimezone(zone):%H:%M on %A %-d %B %Y}, "
            f"{own.register_opens_before} before the start."
        )
    if course_session.register_closed_at is not None and not admin:
        return (
            f"The register for {course_session.ref} was closed at "
            f"{course_session.register_closed_at.astimezone(zone):%H:%M on %A %-d %B %Y}; "
            "only an admin can change a mark now."
        )
    if booking.status not in ON_REGISTER:
        return f"Booking {booking.ref} is {booking.status}, so it is not on the register."
    return None


def mark(
    session: Session,
    booking: Booking,
    status: BookingStatus,
    *,
    now: datetime,
    actor: str,
    policy: Policy | None = None,
    zone: ZoneInfo = LONDON,
    admin: bool = False,
    prior_notice: str | None = None,
    secret: bytes | None = None,
) -> MarkResult:
    """Mark ``booking`` attended, partly attended or no-show; raises ``AttendanceError``.

    From ``register_opens_before`` the start. After the register is closed only ``admin`` may
    change a mark; taking back a no-show whose notice went out queues a correction to the
    delegate and the manager (and withdraws the no-show charge). ``prior_notice`` records that
    the delegate told someone beforehand (a no-show then gets no notice). With ``secret``, an
    attended booking's certificate link is recorded, so the thank-you page can link it at once.
    """
    policy = policy or default_policy()
    status = BookingStatus(status)
    problem = check_mark(session, booking, status, now=now, policy=policy, admin=admin, zone=zone)
    if problem is not None:
        raise AttendanceError(problem)
    prior_notice = (prior_notice or "").strip() or None
    if prior_notice is not None and status is not BookingStatus.NO_SHOW:
        raise AttendanceError(f"Booking {booking.ref}: prior notice only goes with a no-show.")
    course_session = session.get(CourseSession, booking.session_id)
    assert course_session is not None
    after_close = course_session.register_closed_at is not None
    previous = BookingStatus(booking.status)
    if previous is status and prior_notice is None:
        return MarkResult(booking, previous, changed=False, after_close=after_close)
    booking.status = status
    booking.status_changed_at = now
    booking.updated_at = now
    if prior_notice is not None:
        booking.no_show_reason = prior_notice
        # Notice given before the course, though recorded after the register closed, counts
        # from the closing (a reason given later through the link does not); the audit entry
        # keeps when it was recorded.
        closed_at = course_session.register_closed_at
        booking.no_show_reason_at = min(now, closed_at) if closed_at is not None else now
    session.add(booking)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="attendance.changed" if after_close else "attendance.marked",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        session_ref=course_session.ref,
        status=status.value,
        previous=previous.value,
        prior_notice=prior_notice,
    )
    if status is BookingStatus.ATTENDED and secret is not None:
        certificate_link(session, booking, secret=secret)
    if previous is BookingStatus.NO_SHOW:
        # The tick withdrew a no-show's surveys; planning gives them back to an attendee.
        request_replan(session, booking)
    corrections = withdrawn = 0
    # A no-show notice (and charge) already given is taken back when the mark changes, or when
    # it turns out the delegate had told someone beforehand.
    if (
        previous is BookingStatus.NO_SHOW
        and booking.no_show_notified_at is not None
        and (status is not BookingStatus.NO_SHOW or prior_notice is not None)
    ):
        corrections, withdrawn = _take_back_no_show(
            session,
            facts(session, booking),
            now=now,
            actor=actor,
            policy=policy,
            zone=zone,
            prior_notice=status is BookingStatus.NO_SHOW,
        )
    return MarkResult(
        booking,
        previous,
        changed=True,
        after_close=after_close,
        corrections=corrections,
        withdrawn=withdrawn,
    )
