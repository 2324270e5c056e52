"""The register: marking attendance, closing it, and the no-show notices that follow.

The register opens ``policy.register_opens_before`` (15 minutes) before the start. A trainer marks
each booking attended, partly attended or no-show and closes the register; after that only an
admin may change a mark, and the change is audited. Once a register is closed, each no-show who
gave no prior notice gets a notice, and so does the line manager who approved the booking, with
the policy's charge (if any) recorded. A notice already sent about a mark that is later changed is
followed by a correction; one still waiting in the outbox is withdrawn instead.

Prior notice is a reason recorded while the register was still open (``mark(...,
prior_notice=...)``): the delegate rang the trainer or the training team to say they could not come.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from schedules.calendar import next_send_time
from schedules.cancellation import (
    BookingFacts,
    booking_link,
    charge_for,
    facts,
    format_pence,
)
from schedules.certificates import certificate_link
from schedules.planning import day_length, offer_telegram, request_replan
from schedules.policy import Policy, default_policy
from surveys import audit, outbox
from surveys.booking_csv import ImportFailed, _decode, _dialect, _header_key
from surveys.models import (
    Booking,
    BookingStatus,
    Course,
    CourseSession,
    LinkPurpose,
    MessageKind,
    OutboxMessage,
    OutboxState,
    SessionStatus,
)
from surveys.text import clean_text

log = logging.getLogger(__name__)

MARKS = (BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED, BookingStatus.NO_SHOW)
# Bookings that belong on the register: still booked, or already marked.
ON_REGISTER = (BookingStatus.BOOKED, *MARKS)
NO_SHOW_TEMPLATES = ("no-show-delegate", "no-show-manager")
# How long the delegate's link to give a reason for a no-show keeps working.
REASON_LINK_LIFE = timedelta(days=90)
LONDON = ZoneInfo("Europe/London")


class AttendanceError(ValueError):
    """A mark or a closing that cannot be made; the message says why, for the person."""


def register_opens_at(course_session: CourseSession, policy: Policy) -> datetime:
    return (-policy.register_opens_before).after(course_session.starts_at)


def register_is_open(course_session: CourseSession, now: datetime, policy: Policy) -> bool:
    """Whether the trainer can mark the register at ``now``: opened, and not closed yet."""
    return (
        course_session.status == SessionStatus.SCHEDULED
        and course_session.register_closed_at is None
        and now >= register_opens_at(course_session, policy)
    )


def register_bookings(session: Session, course_session: CourseSession) -> list[Booking]:
    """The bookings on a session's register, by reference."""
    return list(
        session.exec(
            select(Booking)
            .where(
                Booking.session_id == course_session.id,
                col(Booking.status).in_(ON_REGISTER),
            )
            .order_by(col(Booking.ref))
        ).all()
    )


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


def unmarked(session: Session, course_session: CourseSession) -> list[Booking]:
    return [
        booking
        for booking in register_bookings(session, course_session)
        if booking.status == BookingStatus.BOOKED
    ]


def close_register(
    session: Session,
    course_session: CourseSession,
    *,
    now: datetime,
    actor: str,
    policy: Policy | None = None,
    zone: ZoneInfo = LONDON,
    rest: BookingStatus | None = None,
) -> bool:
    """Close the register; False if it was already closed. Raises ``AttendanceError``.

    Every booking must be marked first, unless ``rest`` gives the mark for those still unmarked
    (a trainer's "everyone else was a no-show"). The no-show notices follow on the next tick.
    """
    policy = _course_policy(session, course_session, policy or default_policy())
    if course_session.register_closed_at is not None:
        return False
    if course_session.status == SessionStatus.CANCELLED:
        raise AttendanceError(f"Session {course_session.ref} was cancelled, so it has no register.")
    opens = register_opens_at(course_session, policy)
    if now < opens:
        raise AttendanceError(
            f"The register for {course_session.ref} cannot be closed before it opens "
            f"({opens.astimezone(zone):%H:%M on %A %-d %B %Y})."
        )
    waiting = unmarked(session, course_session)
    if waiting and rest is None:
        names = ", ".join(
            f"{booking.ref} ({_delegate_name(session, booking)})" for booking in waiting
        )
        raise AttendanceError(
            f"The register for {course_session.ref} cannot be closed: {len(waiting)} "
            f"still to mark: {names}. Mark them attended, partly attended or no-show first."
        )
    for booking in waiting:
        mark(session, booking, rest or BookingStatus.NO_SHOW, now=now, actor=actor, policy=policy)
    result = session.execute(
        update(CourseSession)
        .where(
            col(CourseSession.id) == course_session.id,
            col(CourseSession.register_closed_at).is_(None),
        )
        .values(register_closed_at=now, register_closed_by=actor, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        session.refresh(course_session)
        return False
    session.refresh(course_session)
    counts = {value.value: 0 for value in MARKS}
    for booking in register_bookings(session, course_session):
        counts[str(booking.status)] = counts.get(str(booking.status), 0) + 1
    audit.record(
        session,
        at=now,
        actor=actor,
        action="register.closed",
        entity="course_session",
        entity_id=course_session.id,
        session_ref=course_session.ref,
        marks=counts,
    )
    return True


# -- No-show notices ------------------------------------------------------------------------------


def process_closed_registers(
    session: Session, *, now: datetime, policy: Policy, secret: bytes, zone: ZoneInfo
) -> int:
    """Queue the no-show notices of closed registers; returns how many bookings were notified.

    For each booking marked no-show on a closed register, with no prior notice and not notified
    yet: a notice to the delegate (with a link to give a reason) and one to the approving manager,
    due in the sending window; the policy's charge recorded; an audit entry. The tick calls this
    every pass; a booking is claimed with a conditional UPDATE, so it is notified once.
    """
    rows = session.exec(
        select(Booking, CourseSession)
        .join(CourseSession, col(CourseSession.id) == Booking.session_id)
        .where(
            Booking.status == BookingStatus.NO_SHOW,
            col(Booking.no_show_notified_at).is_(None),
            col(CourseSession.register_closed_at).is_not(None),
            CourseSession.status == SessionStatus.SCHEDULED,
            or_(
                col(Booking.no_show_reason_at).is_(None),
                col(Booking.no_show_reason_at) > col(CourseSession.register_closed_at),
            ),
        )
        .order_by(col(Booking.id))
    ).all()
    notified = 0
    for booking, _course_session in rows:
        claimed = session.execute(
            update(Booking)
            .where(
                col(Booking.id) == booking.id,
                col(Booking.status) == BookingStatus.NO_SHOW,
                col(Booking.no_show_notified_at).is_(None),
            )
            .values(no_show_notified_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            continue
        session.refresh(booking)
        _notify_no_show(
            session, facts(session, booking), now=now, policy=policy, secret=secret, zone=zone
        )
        notified += 1
    return notified


def _notify_no_show(
    session: Session,
    found: BookingFacts,
    *,
    now: datetime,
    policy: Policy,
    secret: bytes,
    zone: ZoneInfo,
) -> None:
    booking = found.booking
    own = policy.for_course(found.course.title)
    due = next_send_time(now, own, zone)
    amount = charge_for(policy, found.course)
    if amount > 0:
        booking.charge_pence = amount
        booking.charge_note = (
            f"No-show without prior notice at {found.course_session.ref}: "
            f"{day_length(found.course)} charge {format_pence(amount)}"
        )
        session.add(booking)
    round_ = _notice_round(session, booking)
    context = found.context() | {
        "charge": format_pence(amount) if amount else None,
        "manager_name": found.manager.name if found.manager else None,
        "no_show_terms": own.no_show_terms,
    }
    reason = booking_link(
        session,
        secret,
        LinkPurpose.REASON,
        booking,
        person_id=found.delegate.id,
        expires_at=now + REASON_LINK_LIFE,
    )
    outbox.enqueue(
        session,
        key=f"no-show:{booking.id}:{round_}:delegate",
        person=found.delegate,
        template="no-show-delegate",
        context=context | {"links": {"reason": reason}},
        due_at=due,
        kind=MessageKind.NOTICE,
        booking_id=booking.id,
    )
    if found.manager is not None:
        outbox.enqueue(
            session,
            key=f"no-show:{booking.id}:{round_}:manager",
            person=found.manager,
            template="no-show-manager",
            context=context | {"links": offer_telegram(session, secret, found.manager)},
            due_at=due,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
    else:
        log.warning("No-show %s has no approving manager to tell.", booking.ref)
    audit.record(
        session,
        at=now,
        actor="system",
        action="no_show.notified",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        session_ref=found.course_session.ref,
        delegate=found.delegate.email,
        manager=found.manager.email if found.manager else None,
        charge_pence=amount or None,
        due_at=due.isoformat(),
    )


def _notice_round(session: Session, booking: Booking) -> int:
    """0 for a booking's first no-show notices; 1 if those were corrected and it is marked again."""
    earlier = session.exec(
        select(OutboxMessage.id).where(
            OutboxMessage.booking_id == booking.id,
            OutboxMessage.template == "no-show-delegate",
        )
    ).all()
    return len(earlier)


def _take_back_no_show(
    session: Session,
    found: BookingFacts,
    *,
    now: datetime,
    actor: str,
    policy: Policy,
    zone: ZoneInfo,
    prior_notice: bool = False,
) -> tuple[int, int]:
    """A no-show mark changed after its notices were queued (or found to have had prior notice,
    ``prior_notice``): withdraw the notices not sent yet, correct those that were."""
    booking = found.booking
    notices = session.exec(
        select(OutboxMessage).where(
            OutboxMessage.booking_id == booking.id,
            col(OutboxMessage.template).in_(NO_SHOW_TEMPLATES),
            OutboxMessage.state != OutboxState.WITHDRAWN,
        )
    ).all()
    charge = format_pence(booking.charge_pence) if booking.charge_pence else None
    withdrawn = corrections = 0
    due = next_send_time(now, policy.for_course(found.course.title), zone)
    for notice in notices:
        if notice.state in (OutboxState.PENDING, OutboxState.FAILED):
            notice.state = OutboxState.WITHDRAWN
            notice.last_error = f"the no-show mark was changed to {booking.status}"
            session.add(notice)
            withdrawn += 1
            continue
        if notice.state == OutboxState.DEAD:
            continue  # never reached them, so there is nothing to correct
        person = found.manager if notice.template == "no-show-manager" else found.delegate
        if person is None:
            continue
        queued = outbox.enqueue(
            session,
            key=f"{notice.idempotency_key}:correction",
            person=person,
            template="no-show-correction",
            context=found.context()
            | {
                "status": str(booking.status),
                "to_manager": notice.template == "no-show-manager",
                "charge_withdrawn": charge,
                "prior_notice": prior_notice,
            },
            due_at=due,
            kind=MessageKind.NOTICE,
            booking_id=booking.id,
        )
        corrections += queued is not None
    if booking.charge_pence is not None:
        booking.charge_pence = None
        booking.charge_note = None
    booking.no_show_notified_at = None
    session.add(booking)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="no_show.corrected",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        status=str(booking.status),
        corrections=corrections,
        withdrawn=withdrawn,
        charge_withdrawn=charge,
        prior_notice=prior_notice,
    )
    return corrections, withdrawn


def record_reason(
    session: Session, booking: Booking, reason: str, *, now: datetime, actor: str
) -> None:
    """Store the delegate's reason for a no-show (from the reason page); audited."""
    reason = clean_text(reason)
    if not reason:
        raise AttendanceError("Please write a reason before sending.")
    if len(reason) > 2000:
        raise AttendanceError("Please keep the reason under 2000 characters.")
    if booking.status != BookingStatus.NO_SHOW:
        raise AttendanceError(
            f"Booking {booking.ref} is no longer recorded as a no-show, so no reason is needed."
        )
    booking.no_show_reason = reason
    booking.no_show_reason_at = now
    booking.updated_at = now
    session.add(booking)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="no_show.reason",
        entity="booking",
        entity_id=booking.id,
        booking=booking.ref,
        reason=reason,
    )


def _course_policy(session: Session, course_session: CourseSession, policy: Policy) -> Policy:
    course = session.get(Course, course_session.course_id)
    return policy.for_course(course.title) if course else policy


def _delegate_name(session: Session, booking: Booking) -> str:
    return facts(session, booking).delegate.name


def bookings_by_ref(session: Session, refs: Iterable[str]) -> dict[str, Booking]:
    """The bookings with these references (those that exist)."""
    wanted = sorted(set(refs))
    if not wanted:
        return {}
    found = session.exec(select(Booking).where(col(Booking.ref).in_(wanted))).all()
    return {booking.ref: booking for booking in found}


# -- Several marks at once: the CLI and the CSV import --------------------------------------------


@dataclass(frozen=True)
class MarkRequest:
    """One mark asked for, and where it was asked (for errors): a CLI option or a CSV line."""

    ref: str
    status: BookingStatus
    prior_notice: str | None = None
    option: str | None = None  # "--attended"
    filename: str | None = None
    line: int | None = None

    def where(self, column: str | None = None) -> str:
        if self.line is not None:
            place = f"{self.filename or 'the file'}, line {self.line}"
            return f"{place}, column {column}" if column else place
        return f"{self.option or 'mark'} {self.ref}"


class RegisterError(AttendanceError):
    """Marks that were not made; ``problems`` lists every reason, each naming where."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def apply_marks(
    session: Session,
    requests: list[MarkRequest],
    *,
    now: datetime,
    actor: str,
    policy: Policy,
    zone: ZoneInfo,
    admin: bool,
    course_session: CourseSession | None = None,
    secret: bytes | None = None,
) -> list[MarkResult]:
    """Check every mark, then make them all, or raise ``RegisterError`` having written nothing.

    With ``course_session`` every booking must be on that session.
    """
    problems: list[str] = []
    found = bookings_by_ref(session, (request.ref for request in requests))
    first: dict[str, MarkRequest] = {}
    for request in requests:
        earlier = first.setdefault(request.ref, request)
        if earlier is not request and (
            earlier.status != request.status or earlier.prior_notice != request.prior_notice
        ):
            problems.append(
                f"{request.where('booking_ref')}: {request.ref} is also marked {earlier.status} "
                f"({earlier.where()}); give one mark per booking"
            )
    sessions: dict[int, CourseSession] = {}
    for request in first.values():
        booking = found.get(request.ref)
        if booking is None:
            problems.append(f"{request.where('booking_ref')}: no booking has this reference")
            continue
        if course_session is not None and booking.session_id != course_session.id:
            other = session.get(CourseSession, booking.session_id)
            problems.append(
                f"{request.where('booking_ref')}: {request.ref} is booked on "
                f"{other.ref if other else 'another session'}, not {course_session.ref}"
            )
            continue
        if booking.session_id not in sessions:
            own = session.get(CourseSession, booking.session_id)
            assert own is not None
            sessions[booking.session_id] = own
        problem = check_mark(
            session, booking, request.status, now=now, policy=policy, admin=admin, zone=zone
        )
        if problem is not None:
            problems.append(f"{request.where()}: {problem}")
    if problems:
        raise RegisterError(problems)
    return [
        mark(
            session,
            found[request.ref],
            request.status,
            now=now,
            actor=actor,
            policy=policy,
            zone=zone,
            admin=admin,
            prior_notice=request.prior_notice,
            secret=secret,
        )
        for request in first.values()
    ]


def read_marks_csv(data: bytes, filename: str) -> list[MarkRequest]:
    """A register file: columns ``booking_ref`` and ``status`` (and optionally ``prior_notice``).

    Raises ``RegisterError`` listing every problem by line and column.
    """
    try:
        text = _decode(data)
    except ImportFailed as failed:
        raise RegisterError([problem.describe(filename) for problem in failed.problems]) from None
    if not text.strip():
        raise RegisterError([f"{filename}: the file is empty; expected booking_ref,status"])
    reader = csv.reader(io.StringIO(text, newline=""), dialect=_dialect(text))
    header = [_header_key(name) for name in next(reader)]
    missing = [name for name in ("booking_ref", "status") if name not in header]
    if missing:
        raise RegisterError(
            [
                f"{filename}, line 1: missing column {name}; the header must name "
                "booking_ref and status (prior_notice is optional)"
                for name in missing
            ]
        )
    columns = {
        name: header.index(name)
        for name in ("booking_ref", "status", "prior_notice")
        if name in header
    }
    problems: list[str] = []
    requests: list[MarkRequest] = []
    previous_line = reader.line_num
    for cells in reader:
        line = previous_line + 1
        previous_line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values = {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in columns.items()
        }
        where = f"{filename}, line {line}"
        if not values["booking_ref"]:
            problems.append(f"{where}, column booking_ref: empty; expected a booking reference")
        try:
            status = parse_mark(values["status"])
        except AttendanceError:
            problems.append(
                f"{where}, column status: {values['status']!r} is not a mark; "
                "expected attended, partly attended or no-show"
            )
            continue
        notice = values.get("prior_notice") or None
        if notice is not None and status is not BookingStatus.NO_SHOW:
            problems.append(f"{where}, column prior_notice: prior notice only goes with a no-show")
            continue
        if values["booking_ref"]:
            requests.append(
                MarkRequest(values["booking_ref"], status, notice, filename=filename, line=line)
            )
    if not requests and not problems:
        problems.append(f"{filename}: the file has a header but no marks")
    if problems:
        raise RegisterError(problems)
    return requests
