"""Merging checked export rows into the database, one chunk of rows at a time.

Sessions and bookings are matched by reference, people by email (stored lower-case), agencies
by name and courses by title, case-insensitively. People and bookings, tens of thousands in a
big export, are read and written with Core statements (``surveys.bulk``); agencies, courses and
sessions, a few hundred at most, through the ORM. What later chunks compare with is kept small:
each person's stored values, each session, and the references handled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, select

from surveys.audit import record
from surveys.booking_csv import Problem, Row
from surveys.booking_fields import clip, length_of
from surveys.bulk import insert_many, insert_new, select_in, update_rows
from surveys.import_people import PERSON, People, Tally, chunks, defaults
from surveys.models import Agency, Booking, BookingStatus, Course, CourseSession, Duration

BOOKING = Booking.__table__  # type: ignore[attr-defined]
SESSION = CourseSession.__table__  # type: ignore[attr-defined]
_HOLDS_A_PLACE = (BookingStatus.BOOKED, BookingStatus.ATTENDED, BookingStatus.PARTLY_ATTENDED)


class _Outcomes:
    """What happened to each thing the file names: created, updated or left unchanged."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def note(self, key: str, *, created: bool = False, changed: bool = False) -> None:
        outcome = "created" if created else "updated" if changed else "unchanged"
        before = self.seen.get(key)
        if before is None or (before == "unchanged" and outcome == "updated"):
            self.seen[key] = outcome

    def tally(self) -> Tally:
        counts = Counter(self.seen.values())
        return Tally(counts["created"], counts["updated"], counts["unchanged"])


@dataclass(slots=True)
class _Booking:
    """A booking as stored, with its holder."""

    id: int
    session_id: int
    manager_id: int | None
    booked_at: datetime | None
    status: BookingStatus
    status_changed_at: datetime | None
    cancelled_at: datetime | None
    planned_version: int
    holder: str
    erased: bool


class Writer:
    """Takes checked rows chunk by chunk; stops writing at the first problem (the caller then
    rolls back) but keeps checking what only the database can tell."""

    def __init__(self, session: Session, now: datetime, actor: str, columns: Collection[str]):
        self.session, self.now, self.actor = session, now, actor
        self.columns = set(columns)
        self.agencies = {a.name.lower(): a for a in session.exec(select(Agency)).all()}
        self.courses = {c.title.lower(): c for c in session.exec(select(Course)).all()}
        self.longest: dict[str, Duration] = {}  # each course's longest session in the export
        self.people = People(session, now)
        self.sessions: dict[str, CourseSession] = {}  # those stored before this import
        self.session_ids: dict[str, int] = {}
        self._session_defaults = defaults(CourseSession)
        self.left_alone: set[str] = set()  # bookings of erased people
        self.outcomes = {kind: _Outcomes() for kind in ("agency", "person", "session", "booking")}
        self.rescheduled: list[str] = []
        self.relocated: list[str] = []  # same time, a new venue or joining link
        self.erased = 0
        self.writing = True
        self.fresh = session.execute(select(BOOKING.c.id).limit(1)).first() is None
        # With no session stored before, a session not yet written by this import is new.
        self.no_sessions = session.execute(select(SESSION.c.id).limit(1)).first() is None
        self._booking_defaults = defaults(Booking)

    # One chunk -------------------------------------------------------------------------------

    def take(self, rows: list[Row], problems: list[Problem]) -> None:
        if not rows:
            return
        seen = self.outcomes["booking"].seen
        if self.fresh:  # no bookings before this import: only its own can be found
            refs = {r.booking_ref for r in rows if r.booking_ref in seen}
        else:
            refs = {r.booking_ref for r in rows}
        stored = self._stored_bookings(sorted(refs))
        problems.extend(self._conflicts(rows, stored))
        if problems:
            self.writing = False
        if not self.writing:
            return
        kept = rows if not (stored or self.left_alone) else []
        for row in rows if kept is not rows else ():
            booking = stored.get(row.booking_ref)
            if row.booking_ref in self.left_alone or (booking is not None and booking.erased):
                self.left_alone.add(row.booking_ref)
                self.erased += 1
            else:
                kept.append(row)
        # Every row of an agency gives it the same sector (checked): one row of each is enough.
        done = self.outcomes["agency"].seen
        for agency in {r.agency_key: r for r in kept if r.agency_key not in done}.values():
            self._agency(agency)
        self.session.flush()
        self.people.take(kept, {key: agency.id for key, agency in self.agencies.items()})
        # Every row of a session agrees (checked): its first row describes it and its course.
        firsts = {r.session_ref: r for r in reversed(kept)}
        firsts = {
            ref: row for ref, row in firsts.items() if ref not in self.outcomes["session"].seen
        }
        for row in firsts.values():
            self._course(row)
        self.session.flush()
        if not self.no_sessions:
            self._load_sessions(sorted(firsts.keys() - self.sessions.keys()))
        new_sessions: dict[str, dict[str, Any]] = {}
        for row in firsts.values():
            self._course_session(row, new_sessions)
        self.session.flush()
        self._insert_sessions(new_sessions)
        self._bookings(kept, stored)

    def finish(self, given: Mapping[str, tuple[int, Duration | None, str | None]]) -> None:
        """Each course's length and type: as the export gives them (``given``, by lower-case
        title), or for the length, the longest of its sessions (at most 4 hours: a half day)."""
        for key, longest in self.longest.items():
            _, length, kind = given.get(key, (0, None, None))
            updates: dict[str, Any] = {"duration": length or longest}
            if kind:
                updates["course_type"] = kind
            _apply(self.courses[key], updates)
        self.session.flush()

    # Checks only the database can make ---------------------------------------------------------

    def _stored_bookings(self, refs: list[str]) -> dict[str, _Booking]:
        found: dict[str, _Booking] = {}
        query = (
            "SELECT b.ref, b.id, b.session_id, b.manager_id, b.booked_at, b.status, "
            "b.status_changed_at, b.cancelled_at, b.planned_version, p.email, p.erased_at "
            "FROM booking AS b JOIN person AS p ON p.id = b.delegate_id WHERE b.ref"
        )
        for (
            ref, id_, session_id, manager_id, booked_at, status, changed_at, cancelled_at,
            version, email, erased_at,
        ) in select_in(self.session, query, refs):  # fmt: skip
            found[ref] = _Booking(
                id_,
                session_id,
                manager_id,
                _utc(booked_at),
                _STATUS[status],
                _utc(changed_at),
                _utc(cancelled_at),
                version,
                email,
                erased_at is not None,
            )
        return found

    def _conflicts(self, rows: list[Row], stored: dict[str, _Booking]) -> list[Problem]:
        problems = []
        reported: set[str] = set()
        for row in rows if stored else ():
            booking = stored.get(row.booking_ref)
            if (
                booking is None
                or booking.erased
                or row.booking_ref in self.outcomes["booking"].seen  # written by this import
                or row.booking_ref in reported
                or booking.holder == row.delegate_email
            ):
                continue
            reported.add(row.booking_ref)
            problems.append(
                Problem(
                    row.line,
                    "delegate_email",
                    f"booking {clip(row.booking_ref)} is already held by "
                    f"{clip(booking.holder)}; a different delegate needs a new booking reference "
                    "(or a replacement through Evalbot)",
                )
            )
        return problems + self._waiting_but_booked(rows)

    def _waiting_but_booked(self, rows: list[Row]) -> list[Problem]:
        """A waiting-list row for someone already holding a place on that session."""
        waiting = {
            (r.delegate_email, r.session_ref): r for r in rows if r.status is BookingStatus.WAITING
        }
        if not waiting:
            return []
        b, p = BOOKING.c, PERSON.c
        s = SESSION.c
        query = (
            select(b.ref, p.email, s.ref.label("session_ref"))
            .select_from(
                BOOKING.join(PERSON, p.id == b.delegate_id).join(
                    SESSION,
                    s.id == b.session_id,
                )
            )
            .where(
                p.email.in_(sorted({email for email, _ in waiting})),
                s.ref.in_(sorted({ref for _, ref in waiting})),
                b.status.in_([status.value for status in _HOLDS_A_PLACE]),
            )
        )
        problems = []
        for held in self.session.execute(query):
            row = waiting.get((held.email, held.session_ref))
            if row is not None and held.ref != row.booking_ref:
                problems.append(
                    Problem(
                        row.line,
                        "status",
                        f"{clip(row.delegate_email)} is on the waiting list for session "
                        f"{clip(row.session_ref)} here but already holds a place on it (booking "
                        f"{clip(held.ref)}); remove the waiting-list row",
                    )
                )
        return problems

    # Agencies, courses and sessions -----------------------------------------------------------

    def _agency(self, row: Row) -> None:
        key = row.agency_key
        agency = self.agencies.get(key)
        if agency is None:
            self.agencies[key] = Agency(name=row.agency, sector=row.sector)
            self.session.add(self.agencies[key])
            self.outcomes["agency"].note(key, created=True)
        else:
            self.outcomes["agency"].note(key, changed=_apply(agency, {"sector": row.sector}))

    def _course(self, row: Row) -> None:
        key = row.course_title.lower()
        course = self.courses.get(key)
        if course is None:
            course = Course(title=row.course_title, level=row.course_level)
            self.courses[key] = course
            self.session.add(course)
        elif row.course_level:
            _apply(course, {"level": row.course_level})
        if length_of(row.starts_at, row.ends_at) is Duration.FULL:
            self.longest[key] = Duration.FULL
        else:
            self.longest.setdefault(key, Duration.HALF)

    def _load_sessions(self, refs: list[str]) -> None:
        for chunk in chunks(refs):
            query = select(CourseSession).where(col(CourseSession.ref).in_(chunk))
            self.sessions.update((s.ref, s) for s in self.session.exec(query).all())

    def _insert_sessions(self, new: dict[str, dict[str, Any]]) -> None:
        if not new:
            return
        table = SESSION
        names = list(next(iter(new.values())))
        rows = [tuple(row[name] for name in names) for row in new.values()]
        self.session_ids.update(insert_new(self.session, table, "ref", names, rows))

    def _course_session(self, row: Row, new: dict[str, dict[str, Any]]) -> None:
        existing = self.sessions.get(row.session_ref)
        # An export without the column keeps the link the session has.
        link = (
            row.joining_link
            if "joining_link" in self.columns or existing is None
            else existing.joining_link
        )
        fields: dict[str, Any] = {
            "course_id": self.courses[row.course_title.lower()].id,
            "ends_at": row.ends_at,
            "venue": row.venue,
            "online": _looks_online(row.venue) or bool(link),
            "min_places": row.min_places,
            "max_places": row.max_places,
        }
        if "joining_link" in self.columns or existing is None:
            fields["joining_link"] = row.joining_link
        if row.trainer_email or existing is None:
            fields["trainer_id"] = (
                self.people.known[row.trainer_email].id if row.trainer_email else None
            )
        if existing is None:
            new[row.session_ref] = {
                **self._session_defaults,
                **fields,
                "ref": row.session_ref,
                "starts_at": row.starts_at,
                "created_at": self.now,
                "updated_at": self.now,
            }
            self.outcomes["session"].note(row.session_ref, created=True)
            return
        assert existing.id is not None
        self.session_ids[row.session_ref] = existing.id
        moved = existing.starts_at != row.starts_at or existing.ends_at != row.ends_at
        # Where it is, as a delegate's confirmation and calendar entry say it.
        relocated = any(
            getattr(existing, name) != fields[name]
            for name in ("venue", "online", "joining_link")
            if name in fields
        )
        if existing.starts_at != row.starts_at:
            existing.previous_starts_at = existing.starts_at
            existing.starts_at = row.starts_at
        changed = _apply(existing, fields) or moved
        if moved or relocated:
            self._rescheduled(existing, moved=moved)
        if changed:
            existing.updated_at = self.now
        self.outcomes["session"].note(row.session_ref, changed=changed)

    def _rescheduled(self, course_session: CourseSession, *, moved: bool) -> None:
        """A session with a new time, or a new venue or joining link: a new schedule version.

        Planning compares each booking's planned_version with it, moves unsent messages and
        sends each delegate a changed confirmation (and calendar update) saying what changed.
        """
        course_session.schedule_version += 1
        if not moved:
            self.relocated.append(course_session.ref)
            record(
                self.session,
                at=self.now,
                actor=self.actor,
                action="session.relocated",
                entity="course_session",
                entity_id=course_session.id,
                venue=course_session.venue,
                online=course_session.online,
                joining_link=bool(course_session.joining_link),
            )
            return
        course_session.time_changed_at = self.now
        self.rescheduled.append(course_session.ref)
        record(
            self.session,
            at=self.now,
            actor=self.actor,
            action="session.rescheduled",
            entity="course_session",
            entity_id=course_session.id,
            starts_at=course_session.starts_at.isoformat(),
            ends_at=course_session.ends_at.isoformat(),
            previous_starts_at=_iso(course_session.previous_starts_at),
        )

    # Bookings ------------------------------------------------------------------------------------

    def _bookings(self, rows: list[Row], stored: dict[str, _Booking]) -> None:
        new: dict[str, tuple[Any, ...]] = {}
        changed: dict[str, _Booking] = {}
        seen = self.outcomes["booking"].seen
        people, session_ids = self.people.known, self.session_ids
        for row in rows:
            session_id = session_ids[row.session_ref]
            manager_id = people[row.manager_email].id
            booking = stored.get(row.booking_ref) if stored else None
            if booking is None:
                new[row.booking_ref] = (
                    row.booking_ref,
                    session_id,
                    people[row.delegate_email].id,
                    manager_id,
                    row.booked_at or self.now,
                    _STATUS_TEXT[row.status],
                )
                seen.setdefault(row.booking_ref, "created")  # as _Outcomes.note(created=True)
                continue
            if self._update(booking, row, session_id, manager_id):
                changed[row.booking_ref] = booking
                self.outcomes["booking"].note(row.booking_ref, changed=True)
            else:
                self.outcomes["booking"].note(row.booking_ref)
        insert_many(
            self.session,
            BOOKING,
            ("ref", "session_id", "delegate_id", "manager_id", "booked_at", "status"),
            list(new.values()),
            {
                **self._booking_defaults,
                "status_changed_at": self.now,
                "created_at": self.now,
                "updated_at": self.now,
            },
        )
        update_rows(
            self.session,
            BOOKING,
            [
                {
                    "id": b.id,
                    "session_id": b.session_id,
                    "manager_id": b.manager_id,
                    "booked_at": b.booked_at,
                    "status": b.status.value,
                    "status_changed_at": b.status_changed_at,
                    "cancelled_at": b.cancelled_at,
                    "planned_version": b.planned_version,
                    "updated_at": self.now,
                }
                for b in changed.values()
            ],
        )

    def _update(self, booking: _Booking, row: Row, session_id: int, manager_id: int | None) -> bool:
        """Apply a row to a stored booking; whether anything changed."""
        before = (booking.session_id, booking.manager_id, booking.booked_at, booking.status)
        if booking.session_id != session_id:
            booking.planned_version = 0  # moved to another session: plan it afresh
        booking.session_id, booking.manager_id = session_id, manager_id
        if row.booked_at is not None:
            booking.booked_at = row.booked_at
        if _new_status(booking.status, row.status):
            assert row.status is not None
            booking.status = row.status
            booking.status_changed_at = self.now
            if row.status in (BookingStatus.CANCELLED, BookingStatus.LATE_CANCELLATION):
                booking.cancelled_at = self.now
            record(
                self.session,
                at=self.now,
                actor=self.actor,
                action="booking.status_imported",
                entity="booking",
                entity_id=booking.id,
                status=str(row.status),
            )
        after = (booking.session_id, booking.manager_id, booking.booked_at, booking.status)
        return before != after

    def result_tallies(self) -> dict[str, Tally]:
        tallies = {kind: outcomes.tally() for kind, outcomes in self.outcomes.items()}
        tallies["person"] = self.people.tally()
        return tallies


_STATUS = {s.value: s for s in BookingStatus}  # as stored: read without the enum's own lookup

# What a new booking's status is stored as (a row without one is booked).
_STATUS_TEXT: dict[BookingStatus | None, str] = {
    None: BookingStatus.BOOKED.value,
    **{s: s.value for s in BookingStatus},
}


def _new_status(stored: BookingStatus, given: BookingStatus | None) -> bool:
    """Only a booking system's own change (a cancellation made there, a waiting-list place
    given) overrides what Evalbot knows: "booked" in an old export never undoes a cancellation
    or a register mark, and "waiting" never takes a place away."""
    if given is None or given == stored or given is BookingStatus.WAITING:
        return False
    return given is not BookingStatus.BOOKED or stored is BookingStatus.WAITING


def _apply(target: Any, updates: dict[str, Any]) -> bool:
    changed = False
    for name, value in updates.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


def _utc(value: datetime | str | None) -> datetime | None:
    """A time read by plain SQL: SQLite gives text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        return _utc_text(value)
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


@lru_cache(maxsize=4096)
def _utc_text(value: str) -> datetime:
    """A time as SQLite stores it (UTC, as text); the bookings of one import share theirs."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _looks_online(venue: str) -> bool:
    return any(word in venue.lower() for word in ("online", "teams", "zoom", "virtual", "webinar"))
