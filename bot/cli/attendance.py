"""``evalbot attendance ...`` (the register) and ``evalbot cancel ...`` (a cancellation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session, select
from typer.core import TyperCommand

from bot.cli.common import Context, fail, load_context, parse_now
from schedules.attendance import (
    AttendanceError,
    MarkRequest,
    MarkResult,
    RegisterError,
    apply_marks,
    close_register,
    read_marks_csv,
    register_bookings,
    unmarked,
)
from schedules.cancellation import CancelStatus, cancel_booking, facts
from surveys.db import session_scope
from surveys.models import Booking, BookingStatus, Course, CourseSession
from surveys.text import plural

MARK_OPTIONS = {
    "--attended": BookingStatus.ATTENDED,
    "--partly": BookingStatus.PARTLY_ATTENDED,
    "--no-show": BookingStatus.NO_SHOW,
}

# ``--now`` of both commands.
_Now = Annotated[
    str | None,
    typer.Option(
        metavar="ISO", help="Act as if it were this time (ISO; local time if no zone is given)."
    ),
]


class _ManyValues(TyperCommand):
    """Lets ``--attended BK-1 BK-2`` mean ``--attended BK-1 --attended BK-2``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Typer's own Click context
        return super().parse_args(ctx, spread(args))


def spread(args: list[str]) -> list[str]:
    """Repeat a mark option before each of the references that follow it."""
    out: list[str] = []
    current: str | None = None
    has_value = False
    for index, arg in enumerate(args):
        if arg == "--":
            out.extend(args[index:])
            break
        if arg in MARK_OPTIONS:
            current, has_value = arg, False
        elif arg.startswith("-"):
            current = None
        elif current is not None:
            if has_value:
                out.append(current)
            has_value = True
        out.append(arg)
    return out


def _refs(values: list[str] | None) -> list[str]:
    """References from repeated options, also split at commas: ``--attended BK-1,BK-2``."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _mark_option(option: str, help: str) -> Any:
    """One of ``MARK_OPTIONS``: booking references, repeated or spread (``_ManyValues``)."""
    return typer.Option(option, metavar="REF...", help=help, show_default=False)


def attendance(
    target: Annotated[
        str,
        typer.Argument(
            metavar="SESSION_REF|import",
            help="The session whose register to mark, or `import` followed by a CSV file.",
            show_default=False,
        ),
    ],
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE.csv",
            help="With `import`: a CSV file with columns booking_ref, status (and optionally "
            "prior_notice).",
            show_default=False,
        ),
    ] = None,
    attended: Annotated[
        list[str] | None, _mark_option("--attended", "Booking references that attended.")
    ] = None,
    partly: Annotated[
        list[str] | None, _mark_option("--partly", "Booking references that attended only part.")
    ] = None,
    no_show: Annotated[
        list[str] | None, _mark_option("--no-show", "Booking references that did not come.")
    ] = None,
    notice: Annotated[
        list[str] | None,
        typer.Option(
            "--notice",
            metavar="REF=TEXT",
            help="A no-show who gave prior notice, and what they said; they get no no-show notice.",
            show_default=False,
        ),
    ] = None,
    close: Annotated[
        bool, typer.Option("--close", help="Close the register once the marks are made.")
    ] = False,
    now: _Now = None,
) -> None:
    """Mark a session's register, or import marks from a CSV file.

    \b
    evalbot attendance WT-2026-03-16 --attended BK-1 BK-2 --partly BK-3 --no-show BK-4 --close
    evalbot attendance import register.csv [--close]

    The register opens 15 minutes before the start. Every mark is checked first: if any is
    wrong, nothing is written. After the register is closed, marks can still be changed here
    (the change is audited, and a no-show notice already sent is followed by a correction).
    With only a session reference, shows the register.
    """
    context = load_context()
    moment = parse_now(now, context.settings)
    requests = _requests_from_options(attended, partly, no_show, notice)
    if target == "import":
        if file is None:
            fail("evalbot attendance import: name the CSV file, e.g. register.csv", code=1)
        if requests:
            fail("evalbot attendance import: give the marks in the file, not as options", code=1)
        _import(context, file, close=close, now=moment)
        return
    if file is not None:
        fail(
            f"Unexpected argument {str(file)!r}: give references after --attended, --partly or "
            "--no-show (or use `evalbot attendance import FILE.csv`).",
            code=1,
        )
    _mark_session(context, target, requests, close=close, now=moment)


def _requests_from_options(
    attended: list[str] | None,
    partly: list[str] | None,
    no_show: list[str] | None,
    notice: list[str] | None,
) -> list[MarkRequest]:
    requests: list[MarkRequest] = []
    for option, values in (("--attended", attended), ("--partly", partly), ("--no-show", no_show)):
        status = MARK_OPTIONS[option]
        requests.extend(MarkRequest(ref, status, option=option) for ref in _refs(values))
    for value in notice or []:
        ref, sep, text = value.partition("=")
        if not sep or not ref.strip() or not text.strip():
            fail(
                f"--notice {value!r}: expected REF=TEXT, e.g. --notice 'BK-1=phoned in sick'",
                code=1,
            )
        requests.append(
            MarkRequest(ref.strip(), BookingStatus.NO_SHOW, text.strip(), option="--notice")
        )
    return requests


def _mark_session(
    context: Context, ref: str, requests: list[MarkRequest], *, close: bool, now: datetime
) -> None:
    with session_scope(context.engine) as session:
        course_session = session.exec(select(CourseSession).where(CourseSession.ref == ref)).first()
        if course_session is None:
            fail(f"No session has the reference {ref!r}.", code=1)
        with _all_or_nothing(session, "Nothing was marked"):
            results = _apply(context, session, requests, now, course_session=course_session)
            closed = _close(context, session, course_session, now) if close else False
        _report(session, context, course_session, results, closed=closed, close=close)


def _import(context: Context, file: Path, *, close: bool, now: datetime) -> None:
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"Cannot read {file}: {exc.strerror or exc}", code=1)
    with session_scope(context.engine) as session:
        with _all_or_nothing(session, f"Nothing was imported from {file.name}"):
            requests = read_marks_csv(data, file.name)
            results = _apply(context, session, requests, now)
            touched = _sessions_of(session, results)
            closed = {
                course_session.id: _close(context, session, course_session, now)
                for course_session in touched
                if close
            }
        for course_session in touched:
            own = [r for r in results if r.booking.session_id == course_session.id]
            _report(
                session,
                context,
                course_session,
                own,
                closed=closed.get(course_session.id, False),
                close=close,
            )


def _apply(
    context: Context,
    session: Session,
    requests: list[MarkRequest],
    now: datetime,
    *,
    course_session: CourseSession | None = None,
) -> list[MarkResult]:
    """Make the marks as an admin (``apply_marks``), with the configured policy and secret."""
    return apply_marks(
        session,
        requests,
        now=now,
        actor=context.actor,
        policy=context.policy,
        zone=context.settings.zone,
        admin=True,
        course_session=course_session,
        secret=context.settings.secret,
    )


def _close(
    context: Context, session: Session, course_session: CourseSession, now: datetime
) -> bool:
    """Close the session's register (``close_register``) with the configured policy."""
    return close_register(
        session,
        course_session,
        now=now,
        actor=context.actor,
        policy=context.policy,
        zone=context.settings.zone,
    )


@contextmanager
def _all_or_nothing(session: Session, failure: str) -> Iterator[None]:
    """Roll back and stop with every problem when a mark or a closing is refused; ``failure``
    begins the message ("Nothing was marked")."""
    try:
        yield
    except RegisterError as exc:
        session.rollback()
        fail(f"{failure}:\n" + "\n".join(f"  {p}" for p in exc.problems), code=1)
    except AttendanceError as exc:
        session.rollback()
        fail(f"{failure}: {exc}", code=1)


def _sessions_of(session: Session, results: list[MarkResult]) -> list[CourseSession]:
    ids = sorted({result.booking.session_id for result in results})
    found = [session.get(CourseSession, id_) for id_ in ids]
    return sorted((row for row in found if row is not None), key=lambda row: row.starts_at)


def _report(
    session: Session,
    context: Context,
    course_session: CourseSession,
    results: list[MarkResult],
    *,
    closed: bool,
    close: bool,
) -> None:
    zone = context.settings.zone
    course = session.get(Course, course_session.course_id)
    title = course.title if course else ""
    typer.echo(
        f"{course_session.ref}: {title}, "
        f"{course_session.starts_at.astimezone(zone):%A %-d %B %Y, %H:%M}"
    )
    by_id = {result.booking.id: result for result in results}
    for booking in register_bookings(session, course_session):
        name = facts(session, booking).delegate.name
        line = f"  {booking.ref:<14} {name}: {_shown(booking)}"
        result = by_id.get(booking.id)
        if result is not None:
            line += _what_changed(result)
        typer.echo(line)
    if closed:
        typer.echo("Register closed. No-show notices go out with the next tick.")
    elif course_session.register_closed_at is not None:
        when = course_session.register_closed_at.astimezone(zone)
        typer.echo(f"The register was closed on {when:%A %-d %B %Y at %H:%M}.")
    else:
        waiting = unmarked(session, course_session)
        if waiting:
            typer.echo(f"Still to mark: {', '.join(booking.ref for booking in waiting)}.")
        if not close:
            typer.echo("The register is open; close it with --close.")


def _shown(booking: Booking) -> str:
    status = BookingStatus(booking.status)
    if status is BookingStatus.BOOKED:
        return "not marked"
    if status is BookingStatus.NO_SHOW and booking.no_show_reason:
        return f"no-show (reason: {booking.no_show_reason})"
    return status.value


def _what_changed(result: MarkResult) -> str:
    if not result.changed:
        return " (unchanged)"
    notes = []
    if result.previous is not BookingStatus.BOOKED:
        notes.append(f"was {result.previous.value}")
    if result.after_close:
        notes.append("changed after the register closed")
    if result.corrections:
        notes.append(f"{result.corrections} correction(s) queued")
    if result.withdrawn:
        notes.append(f"{result.withdrawn} unsent no-show notice(s) withdrawn")
    return f" ({'; '.join(notes)})" if notes else ""


def cancel(
    booking_ref: Annotated[
        str,
        typer.Argument(metavar="BOOKING_REF", help="The booking to cancel.", show_default=False),
    ],
    reason: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="Why the delegate cancelled.", show_default=False),
    ] = None,
    now: _Now = None,
) -> None:
    """Cancel a booking under the cancellation policy, and say what happened.

    Before the cut-off (2 working days before the course by default) the booking is cancelled,
    its unsent messages are withdrawn and the admin is told a place is free. After it, the
    cancellation is late: the approving manager is asked to nominate a colleague, and without a
    replacement by the start the policy's charge (if any) is recorded.
    """
    context = load_context()
    settings = context.settings
    moment = parse_now(now, settings)
    with session_scope(context.engine) as session:
        booking = session.exec(select(Booking).where(Booking.ref == booking_ref)).first()
        if booking is None:
            fail(f"No booking has the reference {booking_ref!r}.", code=1)
        outcome = cancel_booking(
            session,
            booking,
            now=moment,
            policy=context.policy,
            zone=settings.zone,
            secret=settings.secret,
            actor=context.actor,
            reason=reason,
            admin_email=settings.admin_email,
        )
    if outcome.status is CancelStatus.REFUSED:
        fail(f"Not cancelled: {outcome.message}", code=1)
    typer.echo(outcome.message)
    if outcome.withdrawn:
        typer.echo(f"Withdrew {plural(outcome.withdrawn, 'unsent message')} about this booking.")
    for who in outcome.told:
        typer.echo(f"Told: {who}.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("attendance", cls=_ManyValues)(attendance)
    app.command("cancel")(cancel)
