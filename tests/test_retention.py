"""The retention period, applied by the tick: `EVALBOT_RETENTION_YEARS` after a person's last
session they are erased, with no one running `person purge`."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from bot.cli import app
from schedules.retention import retention_cutoff
from surveys.models import Person
from tests.conftest import World, utc


def tick(now: str) -> str:
    result = CliRunner().invoke(app, ["tick", "--now", now])
    assert result.exit_code == 0, result.output
    return result.output


def names(session: Session) -> dict[str, str]:
    session.expire_all()
    return {p.email: p.name for p in session.exec(select(Person)).all()}


@pytest.fixture
def old_and_new(world: World, session: Session, database_url: str, monkeypatch) -> None:
    """Ann (managed by Ben) trained in June 2019; Cal then and again in June 2025."""
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    course = world.course()
    old = world.course_session(course, ref="WT-2019", starts_at=utc("2019-06-03 09:30"))
    recent = world.course_session(course, ref="WT-2025", starts_at=utc("2025-06-02 09:30"))
    agency = world.agency()
    then = utc("2019-05-01 10:00")
    ann = world.person("Ann Oldfield", "ann@riverside.example", agency, created_at=then)
    ben = world.person("Ben Manager", "ben@riverside.example", agency, created_at=then)
    cal = world.person("Cal Both", "cal@riverside.example", agency, created_at=then)
    dee = world.person("Dee New", "dee@riverside.example", agency, created_at=then)
    world.booking(old, ann, ben, "BK-OLD-1")
    world.booking(old, cal, ben, "BK-OLD-2")
    world.booking(recent, cal, dee, "BK-NEW-1")
    session.commit()


def test_the_tick_erases_people_six_years_after_their_last_session(
    old_and_new: None, session: Session
) -> None:
    # The day before six years have passed since the 2019 session ended: everyone is kept.
    before = tick("2025-06-03T09:00")
    assert "People erased, past the retention period: 0" in before
    assert list(names(session).values()).count("Erased person") == 0

    # The day after: Ann and her manager Ben go; Cal came back in 2025 and Dee manages him.
    after = tick("2025-06-04T09:00")
    assert "People erased, past the retention period: 2" in after
    kept = names(session)
    assert "ann@riverside.example" not in kept and "ben@riverside.example" not in kept
    assert kept["cal@riverside.example"] == "Cal Both"
    assert kept["dee@riverside.example"] == "Dee New"

    # Nothing is erased twice: the next tick finds no one.
    assert "People erased, past the retention period: 0" in tick("2025-06-04T09:01")


def test_the_retention_period_is_a_setting(
    old_and_new: None, session: Session, monkeypatch
) -> None:
    monkeypatch.setenv("EVALBOT_RETENTION_YEARS", "10")
    assert "People erased, past the retention period: 0" in tick("2025-06-04T09:00")
    assert "People erased, past the retention period: 2" in tick("2029-06-04T09:00")

    monkeypatch.setenv("EVALBOT_RETENTION_YEARS", "0")  # kept until erased by hand
    assert "People erased, past the retention period: 0" in tick("2045-01-01T09:00")


def test_a_dry_run_tick_erases_no_one(old_and_new: None, session: Session) -> None:
    result = CliRunner().invoke(app, ["tick", "--now", "2025-06-04T09:00", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "People erased, past the retention period: 2" in result.output
    assert list(names(session).values()).count("Erased person") == 0


def test_the_cutoff_is_the_same_day_years_before() -> None:
    assert retention_cutoff(utc("2026-03-02 09:00"), 6) == utc("2020-03-02 09:00")
    assert retention_cutoff(utc("2028-02-29 09:00"), 6) == utc("2022-02-28 09:00")
