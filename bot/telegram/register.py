"""``/register`` for trainers: today's sessions, a button per delegate and mark, Close register.

Only chats listed in ``EVALBOT_TELEGRAM_TRAINERS`` (or ``EVALBOT_TELEGRAM_ADMINS``) may use it.
A trainer whose chat is linked to the trainer of one of today's sessions sees those sessions;
any other configured trainer (a co-trainer, a coordinator in the room) sees every session today.
Marks and closing go through ``schedules.attendance``, which enforces when a register is open.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session, col, select
from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram import keyboards as kb
from bot.telegram.context import Services, actor, chat_id, person_for_chat, services
from bot.telegram.html import escape
from bot.telegram.replies import Reply, deliver, respond
from bot.templating import local_time
from schedules.attendance import (
    AttendanceError,
    close_register,
    mark,
    register_bookings,
    register_opens_at,
)
from surveys.models import (
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    Person,
    SessionStatus,
)

log = logging.getLogger("evalbot.telegram")
PATTERN = r"^r[cxv]?:"
PAGE = 25  # delegates per message: three buttons each stays under Telegram's 100 buttons
MARKS = {
    "a": (BookingStatus.ATTENDED, "Attended"),
    "p": (BookingStatus.PARTLY_ATTENDED, "Partly"),
    "n": (BookingStatus.NO_SHOW, "No-show"),
}
REFUSED = "Only the trainers configured for this bot can use /register."


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/register: today's registers, with buttons to mark each delegate."""
    svc = services(context)
    chat = chat_id(update)
    if not svc.is_trainer(chat):
        log.warning("refused /register from chat %s: not a configured trainer", chat)
        await deliver(update, context, Reply(REFUSED))
        return
    replies = await svc.run(lambda session: todays_registers(session, svc, chat))
    for reply in replies:
        await deliver(update, context, reply)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A mark, Close register (asks to confirm), the confirmation, or back to the register."""
    query = update.callback_query
    assert query is not None
    svc = services(context)
    chat = chat_id(update)
    if not svc.is_trainer(chat):
        log.warning("refused a register button from chat %s: not a configured trainer", chat)
        await deliver(update, context, Reply(toast=REFUSED, alert=True))
        return
    verb, args = kb.parse(query.data)
    await respond(update, context, tap, verb, args, actor(update))


def todays_sessions(session: Session, svc: Services, chat: int) -> list[CourseSession]:
    now = svc.now()
    local = now.astimezone(svc.settings.zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = midnight, midnight + timedelta(days=1)
    sessions = list(
        session.exec(
            select(CourseSession)
            .where(
                CourseSession.starts_at >= start,
                CourseSession.starts_at < end,
                CourseSession.status == SessionStatus.SCHEDULED,
            )
            .order_by(col(CourseSession.starts_at), col(CourseSession.ref))
        ).all()
    )
    person = person_for_chat(session, chat)
    own = [s for s in sessions if person is not None and s.trainer_id == person.id]
    return own or sessions


def todays_registers(session: Session, svc: Services, chat: int) -> list[Reply]:
    found = todays_sessions(session, svc, chat)
    if not found:
        return [Reply("There are no sessions today, so there is no register to mark.")]
    return [register_view(session, svc, course_session, edit=False) for course_session in found]


def register_view(
    session: Session,
    svc: Services,
    course_session: CourseSession,
    *,
    page: int = 0,
    edit: bool = True,
    toast: str | None = None,
) -> Reply:
    """A session's register: each delegate's mark, and buttons while it can be marked."""
    course = session.get(Course, course_session.course_id)
    assert course is not None
    bookings = register_bookings(session, course_session)
    names = _names(session, bookings)
    now = svc.now()
    zone = svc.settings.timezone
    starts = local_time(course_session.starts_at, zone, "%H:%M")
    lines = [
        f"<b>Register: {escape(course.title)}</b>",
        f"{escape(course_session.ref)}, {starts}, {escape(course_session.venue or 'online')}",
        "",
    ]
    shown = bookings[page * PAGE : (page + 1) * PAGE]
    for number, booking in enumerate(shown, start=page * PAGE + 1):
        lines.append(f"{number}. {escape(names[booking.delegate_id])}: {_state(booking)}")
    if not bookings:
        lines.append("No one is booked on this session.")
    rows: list[list[kb.Button]] = []
    opens = register_opens_at(course_session, svc.policy.for_course(course.title))
    if course_session.register_closed_at is not None:
        closed = local_time(course_session.register_closed_at, zone, "%H:%M on %-d %B")
        lines += ["", f"The register was closed at {closed}."]
    elif now < opens:
        lines += ["", f"The register opens at {local_time(opens, zone, '%H:%M')}."]
    else:
        for number, booking in enumerate(shown, start=page * PAGE + 1):
            rows.append(
                [
                    kb.button(_label(number, label, booking, status), "r", booking.id, code, page)
                    for code, (status, label) in MARKS.items()
                ]
            )
        pages = []
        if page > 0:
            pages.append(kb.button("« Earlier", "rv", course_session.id, page - 1))
        if (page + 1) * PAGE < len(bookings):
            pages.append(kb.button("Later »", "rv", course_session.id, page + 1))
        rows.append(pages)
        rows.append([kb.button("Close register", "rc", course_session.id)])
    return Reply("\n".join(lines), kb.markup(rows), toast=toast, edit=edit)


def _names(session: Session, bookings: list[Booking]) -> dict[int, str]:
    ids = {booking.delegate_id for booking in bookings}
    if not ids:
        return {}
    people = session.exec(select(Person.id, Person.name).where(col(Person.id).in_(ids))).all()
    return {person_id: name for person_id, name in people if person_id is not None}


def _state(booking: Booking) -> str:
    if booking.status == BookingStatus.BOOKED:
        return "<i>not marked</i>"
    return escape(str(booking.status))


def _label(number: int, label: str, booking: Booking, status: BookingStatus) -> str:
    chosen = "✓ " if booking.status == status else ""
    return f"{chosen}{number} {label}"


def tap(session: Session, svc: Services, chat: int, verb: str, args: list[str], who: str) -> Reply:
    now = svc.now()
    try:
        number = int(args[0])
    except (IndexError, ValueError):
        return Reply(toast="That button is out of date: send /register again.")
    if verb == "r":
        return _mark(session, svc, chat, number, args, who, now)
    course_session = session.get(CourseSession, number)
    if course_session is None:
        return Reply(toast="That session no longer exists.")
    if verb == "rv":
        page = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        return register_view(session, svc, course_session, page=page, toast="")
    if verb == "rc":
        return _confirm_close(session, svc, course_session)
    if verb == "rx":
        return _close(session, svc, chat, course_session, who, now)
    return Reply(toast="That button is out of date: send /register again.")


def _mark(
    session: Session,
    svc: Services,
    chat: int,
    booking_id: int,
    args: list[str],
    who: str,
    now: datetime,
) -> Reply:
    booking = session.get(Booking, booking_id)
    if booking is None or len(args) < 2 or args[1] not in MARKS:
        return Reply(toast="That button is out of date: send /register again.")
    status, _ = MARKS[args[1]]
    page = int(args[2]) if len(args) > 2 and args[2].isdigit() else 0
    try:
        mark(
            session,
            booking,
            status,
            now=now,
            actor=who,
            policy=svc.policy,
            zone=svc.settings.zone,
            admin=svc.is_admin(chat),
            secret=svc.settings.secret,
        )
    except AttendanceError as exc:
        return Reply(toast=str(exc), alert=True)
    course_session = session.get(CourseSession, booking.session_id)
    assert course_session is not None
    name = session.get(Person, booking.delegate_id)
    toast = f"{name.name if name else booking.ref}: {status.value}"
    return register_view(session, svc, course_session, page=page, toast=toast)


def _confirm_close(session: Session, svc: Services, course_session: CourseSession) -> Reply:
    bookings = register_bookings(session, course_session)
    counts = {status: 0 for status, _ in MARKS.values()}
    waiting = 0
    for booking in bookings:
        if booking.status == BookingStatus.BOOKED:
            waiting += 1
        else:
            counts[BookingStatus(booking.status)] = counts.get(BookingStatus(booking.status), 0) + 1
    if waiting:
        return Reply(
            toast=f"{waiting} still to mark: mark everyone before closing the register.",
            alert=True,
        )
    summary = ", ".join(f"{count} {status.value}" for status, count in counts.items())
    text = "\n".join(
        [
            f"<b>Close the register for {escape(course_session.ref)}?</b>",
            escape(summary),
            "",
            "Once it is closed, each no-show gets a notice, and so does their line manager; "
            "only an admin can change a mark afterwards.",
        ]
    )
    keyboard = kb.markup(
        [
            [kb.button("Yes, close the register", "rx", course_session.id)],
            [kb.button("« Back to the register", "rv", course_session.id, 0)],
        ]
    )
    return Reply(text, keyboard, toast="")


def _close(
    session: Session,
    svc: Services,
    chat: int,
    course_session: CourseSession,
    who: str,
    now: datetime,
) -> Reply:
    try:
        closed = close_register(
            session,
            course_session,
            now=now,
            actor=who,
            policy=svc.policy,
            zone=svc.settings.zone,
        )
    except AttendanceError as exc:
        return Reply(toast=str(exc), alert=True)
    toast = "Register closed." if closed else "The register was already closed."
    return register_view(session, svc, course_session, toast=toast)
