"""``/bookings``: a person's upcoming bookings, each with Cancel under the partnership's policy.

Cancel first says what cancelling now would do (in time, late with a nomination request, or
not possible) and asks to confirm; only the confirmation changes anything.
"""

from __future__ import annotations

from sqlmodel import Session, col, select
from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram import keyboards as kb
from bot.telegram.context import Services, actor, person_for_chat
from bot.telegram.html import escape
from bot.telegram.replies import Reply, respond
from bot.telegram.surveys import NOT_LINKED
from bot.templating import local_time
from schedules.cancellation import CancelStatus, cancel_booking, cancellation_terms
from surveys.models import Booking, BookingStatus, Course, CourseSession, Person, SessionStatus

PATTERN = r"^c[xyn]?:"


async def list_bookings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/bookings: upcoming bookings, each with a Cancel button."""
    await respond(update, context, upcoming)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Cancel (asks to confirm), Yes cancel, or Keep my place."""
    query = update.callback_query
    assert query is not None
    verb, args = kb.parse(query.data)
    await respond(update, context, tap, verb, args, actor(update))


def upcoming(session: Session, svc: Services, chat: int) -> Reply:
    person = person_for_chat(session, chat)
    if person is None:
        return Reply(NOT_LINKED)
    rows = session.exec(
        select(Booking, CourseSession, Course)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .join(Course, col(Course.id) == CourseSession.course_id)
        .where(
            Booking.delegate_id == person.id,
            Booking.status == BookingStatus.BOOKED,
            CourseSession.status == SessionStatus.SCHEDULED,
            CourseSession.starts_at > svc.now(),
        )
        .order_by(col(CourseSession.starts_at))
    ).all()
    if not rows:
        return Reply("You have no upcoming bookings.")
    lines = ["<b>Your upcoming bookings</b>", ""]
    buttons: list[list[kb.Button]] = []
    for booking, course_session, course in rows:
        lines.append(_describe(svc, booking, course_session, course))
        buttons.append([kb.button(f"Cancel {booking.ref}"[:60], "c", booking.id)])
    return Reply("\n".join(lines), kb.markup(buttons))


def _describe(
    svc: Services, booking: Booking, course_session: CourseSession, course: Course
) -> str:
    when = local_time(course_session.starts_at, svc.settings.timezone)
    where = "online" if course_session.online else (course_session.venue or "venue to follow")
    return (
        f"• <b>{escape(course.title)}</b>\n  {escape(when)}, {escape(where)} "
        f"(booking {escape(booking.ref)})"
    )


def tap(session: Session, svc: Services, chat: int, verb: str, args: list[str], who: str) -> Reply:
    person = person_for_chat(session, chat)
    if person is None:
        return Reply(toast=NOT_LINKED, alert=True)
    booking = _own_booking(session, person, args)
    if booking is None:
        return Reply(toast="That booking is not yours, or no longer exists.", alert=True)
    now = svc.now()
    if verb == "cn":
        return Reply(f"Kept: your place on booking {escape(booking.ref)} stands.", toast="Kept.")
    zone = svc.settings.zone
    if verb == "c":
        terms = cancellation_terms(session, booking, now=now, policy=svc.policy, zone=zone)
        if terms.status is CancelStatus.REFUSED:
            return Reply(escape(terms.consequence()), toast="This booking cannot be cancelled.")
        course_session = session.get(CourseSession, booking.session_id)
        course = session.get(Course, course_session.course_id) if course_session else None
        assert course_session is not None and course is not None
        text = "\n".join(
            [
                "<b>Cancel this booking?</b>",
                _describe(svc, booking, course_session, course),
                "",
                escape(terms.consequence()),
            ]
        )
        keyboard = kb.markup(
            [
                [kb.button("Yes, cancel my place", "cy", booking.id)],
                [kb.button("No, keep my place", "cn", booking.id)],
            ]
        )
        return Reply(text, keyboard, edit=False)
    if verb == "cy":
        outcome = cancel_booking(
            session,
            booking,
            now=now,
            policy=svc.policy,
            zone=zone,
            secret=svc.settings.secret,
            actor=who,
            reason="cancelled in Telegram",
            admin_email=svc.settings.admin_email,
        )
        toast = "Not cancelled." if outcome.status is CancelStatus.REFUSED else "Cancelled."
        return Reply(escape(outcome.message), toast=toast)
    return Reply(toast="That button is out of date: send /bookings again.")


def _own_booking(session: Session, person: Person, args: list[str]) -> Booking | None:
    try:
        booking = session.get(Booking, int(args[0]))
    except (IndexError, ValueError):
        return None
    if booking is None or booking.delegate_id != person.id:
        return None
    return booking
