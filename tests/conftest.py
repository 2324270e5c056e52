"""Fixtures every test shares.

Personas, as in a partnership's own bookings: Alice Okafor (social worker, Riverside Children's
Services) books a course approved by her manager Bob Whitfield; Chloé O'Brien <Health & Care>
(health visitor, whose name breaks careless escaping) books the same session approved by Dev
Patel; the trainer is Tariq Aziz.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings, load_settings
from surveys import db
from surveys.models import (
    Agency,
    Booking,
    Course,
    CourseSession,
    Duration,
    Person,
    Sector,
)

POSTGRES_ENV = "EVALBOT_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder with no stray EVALBOT_* settings."""
    for name in list(os.environ):
        if name.startswith("EVALBOT_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALBOT_SECRET_KEY", "test-secret-key-not-for-production")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evalbot.db'}"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated SQLite database of this test's own."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(database_url=database_url, mail_dir=tmp_path / "mail")


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL to test against")
    name = f"evalbot_test_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


def utc(text_: str) -> datetime:
    """``utc("2026-03-02 09:30")``: a UTC datetime, for brevity in tests."""
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


class World:
    """Builds a small partnership in a test's database, with the personas above."""

    def __init__(self, session: Session):
        self.session = session

    def agency(
        self,
        name: str = "Riverside Children's Services",
        sector: Sector = Sector.CHILDRENS_SOCIAL_CARE,
    ) -> Agency:
        agency = Agency(name=name, sector=sector)
        self.session.add(agency)
        self.session.flush()
        return agency

    def person(self, name: str, email: str, agency: Agency | None = None, **extra: Any) -> Person:
        person = Person(
            name=name, email=email.lower(), agency_id=agency.id if agency else None, **extra
        )
        self.session.add(person)
        self.session.flush()
        return person

    def course(
        self,
        title: str = "Working Together to Safeguard Children",
        outcomes: list[str] | None = None,
        duration: Duration = Duration.FULL,
    ) -> Course:
        course = Course(
            title=title,
            level="2",
            learning_outcomes=outcomes
            or [
                "recognise the signs of neglect",
                "share information under the multi-agency procedures",
                "make a referral to children's social care",
            ],
            duration=duration,
        )
        self.session.add(course)
        self.session.flush()
        return course

    def course_session(
        self,
        course: Course,
        ref: str = "WT-2026-03-16",
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        **extra: Any,
    ) -> CourseSession:
        starts = starts_at or utc("2026-03-16 09:30")
        row = CourseSession(
            ref=ref,
            course_id=course.id,  # type: ignore[arg-type]
            starts_at=starts,
            ends_at=ends_at or starts.replace(hour=16, minute=30),
            venue="Civic Centre, Room 2",
            max_places=20,
            min_places=12,
            **extra,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def booking(
        self,
        course_session: CourseSession,
        delegate: Person,
        manager: Person | None,
        ref: str,
        **extra: Any,
    ) -> Booking:
        booking = Booking(
            ref=ref,
            session_id=course_session.id,  # type: ignore[arg-type]
            delegate_id=delegate.id,  # type: ignore[arg-type]
            manager_id=manager.id if manager else None,
            booked_at=utc("2026-01-10 10:00"),
            **extra,
        )
        self.session.add(booking)
        self.session.flush()
        return booking

    def standard(self) -> dict[str, Any]:
        """Alice and Chloé booked on one session of one course, with their managers."""
        riverside = self.agency()
        health = self.agency("Northgate NHS Trust", Sector.HEALTH)
        alice = self.person(
            "Alice Okafor", "alice.okafor@riverside.example", riverside, role="Social worker"
        )
        bob = self.person(
            "Bob Whitfield", "bob.whitfield@riverside.example", riverside, role="Team manager"
        )
        chloe = self.person(
            "Chloé O'Brien <Health & Care>", "chloe.obrien@northgate.example", health
        )
        dev = self.person("Dev Patel", "dev.patel@northgate.example", health)
        tariq = self.person("Tariq Aziz", "tariq.aziz@partnership.example")
        course = self.course()
        course_session = self.course_session(course, trainer_id=tariq.id)
        b1 = self.booking(course_session, alice, bob, "BK-1001")
        b2 = self.booking(course_session, chloe, dev, "BK-1002")
        self.session.commit()
        return {
            "riverside": riverside,
            "health": health,
            "alice": alice,
            "bob": bob,
            "chloe": chloe,
            "dev": dev,
            "tariq": tariq,
            "course": course,
            "session": course_session,
            "alice_booking": b1,
            "chloe_booking": b2,
        }


@pytest.fixture
def world(session: Session) -> World:
    return World(session)
