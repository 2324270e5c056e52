"""Booking import: merging a checked export into the database.

``surveys.booking_csv`` reads and checks the whole file first; only a clean file reaches the
merge, which runs in the caller's transaction: sessions and bookings are matched by reference,
people by email (stored lower-case), agencies by name and courses by title, case-insensitively.
New people and bookings go in as bulk inserts, because an export can hold tens of thousands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic_core import PydanticUndefined
from sqlalchemy import insert
from sqlmodel import Session, SQLModel, col, select

from surveys.audit import record
from surveys.booking_csv import REQUIRED, ImportFailed, Problem, Row, read_rows
from surveys.models import Agency, Booking, BookingStatus, Course, CourseSession, Person

__all__ = ["REQUIRED", "ImportFailed", "ImportResult", "Problem", "Tally", "import_bookings"]


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportResult:
    rows: int
    sessions: Tally = field(default_factory=Tally)
    bookings: Tally = field(default_factory=Tally)
    people: Tally = field(default_factory=Tally)
    agencies: Tally = field(default_factory=Tally)
    rescheduled: list[str] = field(default_factory=list)
    erased: int = 0  # rows left alone: their booking belongs to someone erased


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


def _defaults(model: type[SQLModel]) -> dict[str, Any]:
    """The values a model's constructor would fill in, for rows written by bulk insert."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == "id":
            continue
        if info.default_factory is not None:
            values[name] = info.default_factory()  # type: ignore[call-arg]
        elif info.default is not PydanticUndefined:
            values[name] = info.default
    return values


class _Merger:
    """Applies checked rows to the database, one kind of thing at a time."""

    def __init__(self, session: Session, now: datetime, actor: str):
        self.session, self.now, self.actor = session, now, actor
        self.agencies = {a.name.lower(): a for a in session.exec(select(Agency)).all()}
        self.courses = {c.title.lower(): c for c in session.exec(select(Course)).all()}
        self.people: dict[str, Person] = {}  # existing people named by the file, by email
        self.person_ids: dict[str, int] = {}
        self.new_people: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, CourseSession] = {}
        self.bookings: dict[str, Booking] = {}
        self.outcomes = {kind: _Outcomes() for kind in ("agency", "person", "session", "booking")}
        self.rescheduled: list[str] = []

    def preload(self, rows: list[Row]) -> None:
        emails = {r.delegate_email for r in rows} | {r.manager_email for r in rows}
        emails |= {r.trainer_email for r in rows if r.trainer_email}
        for chunk in _chunks(sorted(emails)):
            people = select(Person).where(Person.email.in_(chunk))  # type: ignore[attr-defined]
            self.people.update((p.email, p) for p in self.session.exec(people).all())
        self.person_ids = {email: p.id for email, p in self.people.items() if p.id is not None}
        for chunk in _chunks(sorted({r.session_ref for r in rows})):
            sessions = select(CourseSession).where(CourseSession.ref.in_(chunk))  # type: ignore[attr-defined]
            self.sessions.update((s.ref, s) for s in self.session.exec(sessions).all())
        for chunk in _chunks(sorted({r.booking_ref for r in rows})):
            bookings = select(Booking).where(Booking.ref.in_(chunk))  # type: ignore[attr-defined]
            self.bookings.update((b.ref, b) for b in self.session.exec(bookings).all())

    def merge(self, rows: list[Row]) -> None:
        for row in rows:
            self.agency(row)
        self.session.flush()
        for row in rows:
            agency = self.agencies[row.agency.lower()]
            self.person(row.delegate_name, row.delegate_email, agency, row.role)
            self.person(row.manager_name, row.manager_email, None, fallback=agency)
            if row.trainer_email:
                self.person(
                    row.trainer_email.split("@")[0], row.trainer_email, None, keep_name=True
                )
        self._insert_people()
        for row in rows:
            self.course(row)
        self.session.flush()
        for row in rows:
            self.course_session(row)
        self.session.flush()
        new_bookings = [booking for row in rows if (booking := self.booking(row)) is not None]
        _bulk_insert(self.session, Booking, new_bookings)
        self.session.flush()

    def agency(self, row: Row) -> None:
        key = row.agency.lower()
        agency = self.agencies.get(key)
        if agency is None:
            self.agencies[key] = Agency(name=row.agency, sector=row.sector)
            self.session.add(self.agencies[key])
            self.outcomes["agency"].note(key, created=True)
        else:
            self.outcomes["agency"].note(key, changed=_apply(agency, {"sector": row.sector}))

    def person(
        self,
        name: str,
        email: str,
        agency: Agency | None,
        role: str | None = None,
        *,
        fallback: Agency | None = None,
        keep_name: bool = False,
    ) -> None:
        """Note a person the file names; ``keep_name`` for trainers, known only by email."""
        existing = self.people.get(email)
        if existing is None:
            home = agency or fallback
            new = self.new_people.setdefault(
                email, {"email": email, "name": name, "agency_id": None}
            )
            if not keep_name:
                new["name"] = name
            if agency is not None or new["agency_id"] is None:
                new["agency_id"] = home.id if home else new["agency_id"]
            if role:
                new["role"] = role
            self.outcomes["person"].note(email, created=True)
            return
        updates: dict[str, Any] = {} if keep_name else {"name": name}
        if agency is not None:
            updates["agency_id"] = agency.id
        elif existing.agency_id is None and fallback is not None:
            updates["agency_id"] = fallback.id
        if role:
            updates["role"] = role
        changed = _apply(existing, updates)
        if changed:
            existing.updated_at = self.now
        self.outcomes["person"].note(email, changed=changed)

    def _insert_people(self) -> None:
        _bulk_insert(self.session, Person, list(self.new_people.values()))
        for chunk in _chunks(sorted(self.new_people)):
            query = select(Person.email, Person.id).where(Person.email.in_(chunk))  # type: ignore[attr-defined]
            found = self.session.exec(query).all()
            self.person_ids.update((email, id_) for email, id_ in found if id_ is not None)

    def course(self, row: Row) -> None:
        course = self.courses.get(row.course_title.lower())
        if course is None:
            course = Course(title=row.course_title, level=row.course_level)
            self.courses[row.course_title.lower()] = course
            self.session.add(course)
        elif row.course_level:
            _apply(course, {"level": row.course_level})

    def course_session(self, row: Row) -> None:
        if row.session_ref in self.outcomes["session"].seen:
            return  # every row of a session agrees (checked): the first describes it
        existing = self.sessions.get(row.session_ref)
        fields: dict[str, Any] = {
            "course_id": self.courses[row.course_title.lower()].id,
            "ends_at": row.ends_at,
            "venue": row.venue,
            "online": _looks_online(row.venue),
            "min_places": row.min_places,
            "max_places": row.max_places,
        }
        if row.trainer_email:
            fields["trainer_id"] = self.person_ids[row.trainer_email]
        if existing is None:
            existing = CourseSession(ref=row.session_ref, starts_at=row.starts_at, **fields)
            self.sessions[row.session_ref] = existing
            self.session.add(existing)
            self.outcomes["session"].note(row.session_ref, created=True)
            return
        moved = existing.starts_at != row.starts_at or existing.ends_at != row.ends_at
        if existing.starts_at != row.starts_at:
            existing.previous_starts_at = existing.starts_at
            existing.starts_at = row.starts_at
        changed = _apply(existing, fields) or moved
        if moved:
            self._rescheduled(existing)
        if changed:
            existing.updated_at = self.now
        self.outcomes["session"].note(row.session_ref, changed=changed)

    def _rescheduled(self, course_session: CourseSession) -> None:
        # Planning compares each booking's planned_version with this to move unsent messages.
        course_session.schedule_version += 1
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

    def booking(self, row: Row) -> dict[str, Any] | None:
        """Update an existing booking, or return the values of a new one to insert."""
        course_session = self.sessions[row.session_ref]
        manager_id = self.person_ids[row.manager_email]
        existing = self.bookings.get(row.booking_ref)
        if existing is None:
            self.outcomes["booking"].note(row.booking_ref, created=True)
            return {
                "ref": row.booking_ref,
                "session_id": course_session.id,
                "delegate_id": self.person_ids[row.delegate_email],
                "manager_id": manager_id,
                "booked_at": row.booked_at or self.now,
                "status": row.status or BookingStatus.BOOKED,
                "status_changed_at": self.now,
            }
        updates: dict[str, Any] = {"session_id": course_session.id, "manager_id": manager_id}
        if row.booked_at is not None:
            updates["booked_at"] = row.booked_at
        # Only a booking system's own change (a cancellation made there) overrides what Evalbot
        # knows: "booked" in an old export never undoes a cancellation or a register mark.
        new_status = (
            row.status not in (None, BookingStatus.BOOKED) and existing.status != row.status
        )
        if new_status:
            updates["status"] = row.status
            updates["status_changed_at"] = self.now
            if row.status in (BookingStatus.CANCELLED, BookingStatus.LATE_CANCELLATION):
                updates["cancelled_at"] = self.now
        if course_session.id != existing.session_id:
            updates["planned_version"] = 0  # moved to another session: plan it afresh
        changed = _apply(existing, updates)
        if changed:
            existing.updated_at = self.now
        if new_status:
            record(
                self.session,
                at=self.now,
                actor=self.actor,
                action="booking.status_imported",
                entity="booking",
                entity_id=existing.id,
                status=str(row.status),
            )
        self.outcomes["booking"].note(row.booking_ref, changed=changed)
        return None

    def without_erased(self, rows: list[Row]) -> list[Row]:
        """The rows to merge: a booking whose delegate was erased is left as it is, so an export
        that still lists them brings nobody back."""
        delegates = sorted({b.delegate_id for b in self.bookings.values()})
        erased: set[int] = set()
        for chunk in _chunks(delegates):
            query = select(Person.id).where(
                col(Person.id).in_(chunk), col(Person.erased_at).is_not(None)
            )
            erased.update(i for i in self.session.exec(query).all() if i is not None)
        keep = []
        for row in rows:
            booking = self.bookings.get(row.booking_ref)
            if booking is None or booking.delegate_id not in erased:
                keep.append(row)
        return keep

    def check_holders(self, rows: list[Row]) -> list[Problem]:
        """A booking already held by one person cannot be re-imported for another."""
        holders = {p.id: p.email for p in self.people.values()}
        unknown = sorted({b.delegate_id for b in self.bookings.values()} - set(holders))
        for chunk in _chunks(unknown):
            query = select(Person.id, Person.email).where(Person.id.in_(chunk))  # type: ignore[union-attr]
            holders.update(self.session.exec(query).all())
        problems = []
        for row in rows:
            booking = self.bookings.get(row.booking_ref)
            holder = holders.get(booking.delegate_id) if booking else None
            if holder is not None and holder != row.delegate_email:
                problems.append(
                    Problem(
                        row.line,
                        "delegate_email",
                        f"booking {row.booking_ref} is already held by {holder}; a different "
                        "delegate needs a new booking reference (or a replacement through Evalbot)",
                    )
                )
        return problems

    def result(self, rows: int) -> ImportResult:
        return ImportResult(
            rows=rows,
            sessions=self.outcomes["session"].tally(),
            bookings=self.outcomes["booking"].tally(),
            people=self.outcomes["person"].tally(),
            agencies=self.outcomes["agency"].tally(),
            rescheduled=self.rescheduled,
        )


def _bulk_insert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    defaults = _defaults(model)
    session.execute(insert(model), [{**defaults, **row} for row in rows])


def _apply(target: Any, updates: dict[str, Any]) -> bool:
    changed = False
    for name, value in updates.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _looks_online(venue: str) -> bool:
    return any(word in venue.lower() for word in ("online", "teams", "zoom", "virtual", "webinar"))


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def import_bookings(
    session: Session, data: bytes, *, zone: ZoneInfo, now: datetime, actor: str
) -> ImportResult:
    """Check and merge a whole export. Raises ``ImportFailed`` and writes nothing on any problem.

    The caller owns the transaction: commit on success, roll back on an exception.
    """
    rows = read_rows(data, zone)
    merger = _Merger(session, now, actor)
    merger.preload(rows)
    kept = merger.without_erased(rows)
    problems = merger.check_holders(kept)
    if problems:
        raise ImportFailed(problems)
    merger.merge(kept)
    result = merger.result(len(rows))
    result.erased = len(rows) - len(kept)
    record(
        session,
        at=now,
        actor=actor,
        action="bookings.imported",
        entity="import",
        rows=result.rows,
        bookings_created=result.bookings.created,
        bookings_updated=result.bookings.updated,
    )
    return result


def import_file(
    session: Session, path: Path, *, zone: ZoneInfo, now: datetime, actor: str
) -> ImportResult:
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = Problem(0, None, f"cannot read the file: {exc.strerror}")
        raise ImportFailed([problem]) from None
    return import_bookings(session, data, zone=zone, now=now, actor=actor)
