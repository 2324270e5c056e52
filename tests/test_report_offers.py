"""The quarterly report's waiting-list figures: places freed while someone was waiting, how many
were offered and taken (the fill rate), and the offers made, accepted and lapsed, per course and
in all, in the page and in place_offers.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app as cli
from surveys.models import BookingStatus
from surveys.waitlist_models import OfferState, PlaceOffer, Vacancy, VacancyState
from tests.conftest import World, utc


@pytest.fixture
def offered(session: Session, world: World) -> None:
    """Two places freed on WT-2026-03-16: the first offered to Ed, who let it lapse, then to
    Fay, who took it; the second offered to Ed again, who let it lapse too, and nobody else was
    waiting."""
    people = world.standard()
    course_session = people["session"]
    ed = world.person("Ed Gray", "ed.gray@riverside.example", people["riverside"])
    fay = world.person("Fay Hill", "fay.hill@riverside.example", people["riverside"])
    waiting_ed = world.booking(
        course_session, ed, people["bob"], "BK-W1", status=BookingStatus.WAITING
    )
    taken_fay = world.booking(course_session, fay, people["bob"], "BK-W2")
    at = utc("2026-03-05 10:00")
    first = Vacancy(session_id=course_session.id, freed_booking_id=people["alice_booking"].id,
                    reason="cancelled", state=VacancyState.FILLED, opens_at=at, created_at=at,
                    filled_by_id=taken_fay.id)  # fmt: skip
    second = Vacancy(session_id=course_session.id, freed_booking_id=people["chloe_booking"].id,
                     reason="cancelled", state=VacancyState.UNFILLED, opens_at=at, created_at=at)  # fmt: skip
    session.add_all([first, second])
    session.flush()
    for vacancy, booking, state in (
        (first, waiting_ed, OfferState.LAPSED),
        (first, taken_fay, OfferState.ACCEPTED),
        (second, waiting_ed, OfferState.LAPSED),
    ):
        session.add(PlaceOffer(vacancy_id=vacancy.id, booking_id=booking.id, offered_at=at,
                               expires_at=utc("2026-03-06 10:00"), state=state))  # fmt: skip
    session.commit()


def test_the_report_counts_places_offered_taken_and_lapsed(
    offered: None, database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-10T09:00"],
        env={"EVALBOT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    with (out / "place_offers.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    course = "Working Together to Safeguard Children"
    figures = {
        "places_freed": "2", "places_offered": "2", "places_taken": "1", "offers_made": "3",
        "offers_accepted": "1", "offers_lapsed": "2",
    }  # fmt: skip
    assert [r["course"] for r in rows] == [course, "All courses"]
    for row in rows:
        assert {key: row[key] for key in figures} == figures
        assert float(row["fill_rate"]) in (0.5, 50.0)
    page = (out / "report.html").read_text()
    assert "Places offered to the waiting list" in page


def test_no_table_when_no_place_was_freed_while_someone_waited(
    session: Session, world: World, database_url: str, tmp_path: Path
) -> None:
    world.standard()
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        ["report", "quarterly", "2026Q1", "--out", str(out), "--now", "2026-04-10T09:00"],
        env={"EVALBOT_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    assert "Places offered to the waiting list" not in (out / "report.html").read_text()
